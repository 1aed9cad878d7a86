"""Hostile input: random command lines over random files, from a fixed seed.

Every run must end with an exit status of the contract (0, 1 or 2: nothing here sends a
signal), print no traceback and no internal error, and leave nothing half-written: no
temporary file anywhere, no output from a run that failed, and an output that parses from
one that succeeded. Most cases run in this process (``main``), where an escaping exception
fails the test outright; a few run as real processes, where the interpreter itself would
print a traceback, and exercise ``--max-memory``, which must not be lowered in here.

Each run gets ``--timeout 2`` (unless the case itself puts a bad one first), so a search
that the random input happens to make hard ends quickly. The in-process cases come in two
halves from two seeds, two tests that the two test workers can run side by side (most of
their time is the few ``calibrate`` runs that measure OpenFHE for real).
"""

from __future__ import annotations

import ast
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import BLUR_KERNEL, BLUR_SPEC, ROOT

from porcupine.cli import main
from porcupine.files import TEMP_SUFFIX
from quill.cost import DEFAULT_TABLE_PATH
from quill.errors import QuillError
from quill.parser import parse_program

pytestmark = [pytest.mark.slow]

SEED = 20261129
IN_PROCESS = 300  # in all, in PARTS tests of IN_PROCESS // PARTS cases
PARTS = 2
SUBPROCESS = 8
COMMANDS = ["synth", "check", "emit", "run", "interpret", "calibrate"]
NUMBERS = ["0", "1", "2", "-1", "8", "31", "64", "1.5", "1e3", "inf", "nan", "١٢", "", "0x1f"]
NUMBERS += ["9" * 25, "-0", "+3", " 4", "4294967296", "1_0"]
SIZES = ["256M", "1G", "0", "-1G", "12", "4B", "1000000T", "abc", "2.5G"]
PARAMS = ["w=8", "w=3", "n=0", "h=-4", "w", "=4", "w=١", "q=5", "w=65536", "w=8=9", "1=1"]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """``data`` with a few random edits: flips, insertions, deletions, truncation."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        kind = rng.randrange(5)
        at = rng.randrange(len(out) + 1)
        if kind == 0 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif kind == 1:
            out[at:at] = rng.choice([b"(", b")", b"{", b"-", b"0" * 40, b"\x00", b"\xff", b"\n"])
        elif kind == 2:
            del out[at : at + rng.randint(1, 20)]
        elif kind == 3:
            del out[at:]
        else:
            out[at:at] = out[rng.randrange(len(out) + 1) :][:30]
    return bytes(out)


class Pool:
    """Input files of every kind, good and broken, in ``folder``."""

    def __init__(self, folder: Path, rng: random.Random) -> None:
        self.folder, self.rng = folder, rng
        emitted = folder / "blur.py"
        assert main(["emit", BLUR_KERNEL, "--spec", BLUR_SPEC, "-o", str(emitted)]) == 0
        self.good = {
            "spec": Path(BLUR_SPEC).read_bytes(),
            "quill": Path(BLUR_KERNEL).read_bytes(),
            "json": DEFAULT_TABLE_PATH.read_bytes(),
            "py": emitted.read_bytes(),
        }
        for ext, data in self.good.items():
            (folder / f"good.{ext}").write_bytes(data)
        (folder / "empty.spec").write_bytes(b"")
        (folder / "big.spec").write_bytes(b"#" * ((1 << 20) + 1))
        (folder / "dir.spec").mkdir()
        (folder / "loop.spec").symlink_to(folder / "loop.spec")
        (folder / "out").mkdir()

    def path(self, ext: str) -> str:
        """A path to read, of any kind: good, mutated, random, odd or absent."""
        rng, folder = self.rng, self.folder
        pick = rng.randrange(12)
        if pick < 3:
            return str(folder / f"good.{ext}")
        if pick < 8:
            name = folder / f"m{rng.randrange(10**6)}.{ext}"
            name.write_bytes(_mutate(rng, self.good[rng.choice([ext, ext, "spec", "quill"])]))
            return str(name)
        odd = ["empty.spec", "big.spec", "dir.spec", "loop.spec", "missing.spec", "good.spec/x"]
        if pick < 11:
            return str(folder / rng.choice(odd))
        return rng.choice(["/dev/null", "/dev/zero", "", "é\u2028.spec", "x" * 300, "\udcff"])

    def output(self) -> str:
        """A path to write: usually fresh, sometimes one that cannot or must not be."""
        rng = self.rng
        if rng.random() < 0.8:
            return str(
                self.folder / "out" / f"o{rng.randrange(10**6)}.{rng.choice(['quill', 'py'])}"
            )
        return rng.choice(
            [str(self.folder), str(self.folder / "good.spec"), "/proc/x.py", "/dev/null",
             str(self.folder / "good.spec" / "x.py"), ""]
        )  # fmt: skip


def _number(rng: random.Random, good: list[str]) -> str:
    return rng.choice(good) if rng.random() < 0.6 else rng.choice(NUMBERS)


def _option(rng: random.Random, pool: Pool, command: str) -> list[str]:
    """One random option, mostly one ``command`` takes, with a good or hostile value."""
    common: dict[str, Callable[[], list[str]]] = {
        "--timeout": lambda: ["--timeout", _number(rng, ["0.5", "1", "2"])],
        "--param": lambda: ["--param", rng.choice(PARAMS)],
        "--costs": lambda: ["--costs", pool.path("json")],
    }
    own: dict[str, Callable[[], list[str]]] = {
        "--max-components": lambda: ["--max-components", _number(rng, ["1", "2", "3"])],
        "--width": lambda: ["--width", _number(rng, ["4", "8"])],
        "--initial": lambda: ["--initial", pool.path("quill")],
        "-o": lambda: ["-o", pool.output()],
        "--emit": lambda: ["--emit", rng.choice(["python", "quill", "c"])],
        "--flag": lambda: [rng.choice(["--json", "--quiet", "--force", "--no-baseline"])],
        "--objective": lambda: ["--objective", rng.choice(["latency", "instructions", "x"])],
        "--engine": lambda: ["--engine", rng.choice(["exact", "examples", "auto", "x"])],
        "--strict-ranges": lambda: ["--strict-ranges"],
        "--reps": lambda: ["--reps", _number(rng, ["1", "2"])],
        "--seed": lambda: ["--seed", _number(rng, ["0", "7", "4294967295"])],
        "--spec": lambda: ["--spec", pool.path("spec")],
        "--kernel": lambda: ["--kernel", pool.path("py")],
        "--program": lambda: ["--program", pool.path("quill")],
    }
    takes = {
        "synth": ["--max-components", "--width", "--initial", "-o", "--emit", "--flag",
                  "--objective", "--engine", "--strict-ranges"],
        "check": ["--strict-ranges", "--spec"],
        "emit": ["--strict-ranges", "-o"],
        "run": ["--reps", "--seed", "--kernel", "--program"],
        "interpret": ["--seed"],
        "calibrate": ["--reps", "-o"],
    }  # fmt: skip
    if rng.random() < 0.05:
        return [rng.choice(["--bogus", "-", "--", "-x", "--time", "--kernel"])]
    names = [*common, *takes.get(command, [])]
    name = rng.choice(names)
    return (common | own)[name]()


def _argv(rng: random.Random, pool: Pool) -> list[str]:
    command = rng.choice([*COMMANDS, *COMMANDS, *COMMANDS, "nonsense"])
    positional = {"synth": "spec", "run": "spec", "check": "quill", "emit": "quill"}
    argv = [command, "--timeout", "2"]
    if command in positional or (command == "interpret" and rng.random() < 0.9):
        argv.append(pool.path(positional.get(command, "quill")))
    if command in ("check", "emit", "interpret") and rng.random() < 0.9:
        argv += ["--spec", pool.path("spec")]
    if command == "run" and rng.random() < 0.9:
        argv += rng.choice([["--kernel", pool.path("py")], ["--program", pool.path("quill")]])
    if command in ("emit", "calibrate") and rng.random() < 0.9:
        argv += ["-o", pool.output()]
    if command == "calibrate":
        argv += ["--reps", "1"]
    for _ in range(rng.randrange(4)):
        argv += _option(rng, pool, command)
    return argv


def _outputs(argv: list[str]) -> list[str]:
    """The output the command line names: the last ``-o`` wins."""
    named = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-o", "--output")]
    return named[-1:]


def _check_run(
    argv: list[str], code: int, stdout: str, stderr: str, folder: Path, before: set[str]
) -> None:
    case = f"porcupine {' '.join(repr(a) for a in argv)}"
    assert code in (0, 1, 2), f"{case}: exit {code}\n{stderr}"
    assert "Traceback" not in stdout + stderr, f"{case}\n{stderr}"
    assert "internal error" not in stderr, f"{case}\n{stderr}"
    stray = [p for p in folder.rglob("*") if p.name.endswith(TEMP_SUFFIX) or "probe" in p.name]
    assert not stray, f"{case}: left {stray}"
    for out in _outputs(argv):
        if not out.startswith(str(folder / "out")):
            continue
        written = Path(out)
        if out in before:
            continue
        if code != 0:
            assert not written.exists(), f"{case}: exit {code} but wrote {out}"
            continue
        if "synth" in argv or "emit" in argv or "calibrate" in argv:
            assert written.exists() and written.stat().st_size > 0, f"{case}: no {out}"
            _parses(written, case)


def _parses(path: Path, case: str) -> None:
    text = path.read_text()
    try:
        if text.startswith("kernel "):
            parse_program(text)
        elif text.lstrip().startswith("{"):
            json.loads(text)
        else:
            ast.parse(text)
    except (QuillError, SyntaxError, ValueError) as e:
        pytest.fail(f"{case}: {path} is not a complete output: {e}")


@pytest.mark.openfhe
@pytest.mark.search
@pytest.mark.parametrize("part", range(PARTS))
def test_random_command_lines_in_process(
    part: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rng = random.Random(SEED + 2 * part)  # SEED + 1 is the processes' seed
    pool = Pool(tmp_path, rng)
    monkeypatch.chdir(tmp_path)
    for _ in range(IN_PROCESS // PARTS):
        argv = _argv(rng, pool)
        before = {str(p) for p in (tmp_path / "out").iterdir()}
        code = main(argv)
        captured = capsys.readouterr()
        _check_run(argv, code, captured.out, captured.err, tmp_path, before)


@pytest.mark.subprocess
def test_random_command_lines_as_processes(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    pool = Pool(tmp_path, rng)
    for _ in range(SUBPROCESS):
        argv = [*_argv(rng, pool), "--max-memory", rng.choice(SIZES)]
        before = {str(p) for p in (tmp_path / "out").iterdir()}
        out = subprocess.run(
            [sys.executable, "-m", "porcupine.cli", *argv],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        _check_run(argv, out.returncode, out.stdout, out.stderr, tmp_path, before)
