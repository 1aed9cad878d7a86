"""Files in and out: an output is never half-written, and is checked before work starts.

Every output goes to a temporary file beside its target and is renamed into place, so a
failure or an interruption leaves either the old file or the new one, never a mixture, and
no temporary file behind. A new file gets the usual permissions (0666 minus the umask); a
replaced one keeps its own.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".tmp"
"""Temporary files are ``.NAME.<random>.tmp`` beside the target."""


def write_atomically(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` (UTF-8) via a temporary file in the same folder and a
    rename; a symbolic link at ``path`` is followed, so the file it names is replaced."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A fresh temporary path beside ``path`` for the block to write; when the block ends
    normally it is renamed over ``path``, otherwise removed. Creates missing folders."""
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_beside(target)
    try:
        yield tmp
        if target.exists():
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_beside(target: Path) -> Path:
    """An empty new file next to ``target``, created with mode 0666 so that the umask
    applies, as for any file a program creates (``mkstemp`` would make it 0600)."""
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp


def output_problem(path: str) -> str | None:
    """Why ``path`` cannot be written as an output file, or ``None`` if it can: checked
    before any work, by creating and removing a file where the output would go."""
    try:
        target = Path(os.path.realpath(path))
        if not path.strip():
            return "the output path is empty"
        if target.is_dir():
            return f"{path} is a directory; name a file"
        if target.exists() and not target.is_file():
            return f"{path} is not a regular file"
        folder = target.parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir():
            return f"cannot write {path}: {folder} is not a folder"
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        return f"cannot write {path}: {reason}"
    try:
        _create_beside(folder / ".porcupine-probe").unlink()
    except OSError as e:
        return f"cannot write {path}: cannot create a file in {folder} ({e.strerror or e})"
    return None


def same_file(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name the same file (existing or not)."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError):
        return False
