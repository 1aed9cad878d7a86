"""The files a command reads, checked before they are parsed: they exist, are regular files
(a FIFO or a device would block or never end) and are not too large."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from porcupine.cli.errors import UsageError
from quill.cost import CostTable, check_rows
from quill.ir import Program
from quill.parser import load_program
from quill.spec import Spec, load_spec

MAX_SOURCE_BYTES = 1 << 20
"""Specs, Quill programs and cost tables: a real one is a few kilobytes."""

MAX_MODULE_BYTES = 16 << 20
"""Emitted kernel modules, whose constants and layouts grow with the slot count."""


def input_file(path: str, what: str, limit: int = MAX_SOURCE_BYTES) -> Path:
    """``path`` if it names a readable regular file of at most ``limit`` bytes; otherwise a
    :class:`UsageError` saying what is wrong (``what`` names the file's role)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"no {what} {path}") from None
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise UsageError(f"cannot read {what} {path}: {reason}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{what} {path} is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{what} {path} is not a regular file")
    if info.st_size > limit:
        raise UsageError(
            f"{what} {path} is {info.st_size} bytes, over the limit of {limit >> 20} MB"
        )
    return Path(path)


def read_spec(path: str, params: Mapping[str, int]) -> Spec:
    """The spec at ``path`` instantiated with ``params``."""
    return load_spec(input_file(path, "spec file"), params)


def read_program(path: str, what: str = "Quill program file") -> Program:
    """The Quill program at ``path``."""
    return load_program(input_file(path, what))


def read_costs(path: str) -> CostTable:
    """A cost table written by ``porcupine calibrate``, every entry checked: a table that is
    malformed, partial, non-numeric or negative is refused, saying where."""
    if not os.path.exists(path):
        raise UsageError(f"no cost table {path}; make one with `porcupine calibrate -o {path}`")
    text = input_file(path, "cost table").read_bytes()
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise UsageError(f"cost table {path} is not JSON: {e}") from None
    return CostTable(_latencies(path, data), source=_source(path, data))


def _source(path: str, data: Mapping[str, Any]) -> str:
    source = data.get("source", path)
    if not isinstance(source, str):
        raise UsageError(f"cost table {path}: 'source' must be a string")
    return source


def _latencies(path: str, data: Any) -> dict[str, dict[str, float]]:
    if not isinstance(data, dict):
        raise UsageError(
            f"cost table {path}: the file must hold a JSON object (make one with porcupine "
            "calibrate)"
        )
    try:
        return check_rows(data.get("latency_ms"))
    except ValueError as e:
        raise UsageError(f"cost table {path}: {e} (make one with porcupine calibrate)") from None
