"""Option values, checked as argparse reads them: before any work starts.

Python's own ``int`` and ``float`` accept more than a user means (``"١٢"``, ``"inf"``,
``"nan"``, ``" 1_0 "``), so every number is matched against plain ASCII digits first, and
checked against a range that says what is sensible.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

from porcupine.cli.errors import UsageError

_INT = re.compile(r"-?[0-9]{1,18}", re.ASCII)
_DECIMAL = re.compile(r"[0-9]{1,12}(\.[0-9]{0,12})?|\.[0-9]{1,12}", re.ASCII)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_SIZE = re.compile(
    r"([0-9]{1,12}(?:\.[0-9]{1,6})?)\s*(?:([KMGT])(?:I?B)?)?", re.ASCII | re.IGNORECASE
)

MAX_TIMEOUT_S = 1_000_000.0  # about 11 days: past this a timer cannot be trusted
MIN_MEMORY = 256 << 20  # below this, Python, Z3 and numpy alone do not fit
PARAM_LIMIT = 2**31 - 1


def _integer(text: str, what: str) -> int:
    if not _INT.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expects {what}, got {text!r}")
    return int(text)


def count(low: int, high: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer in ``low .. high``, described as ``what``."""

    def parse(text: str) -> int:
        value = _integer(text, f"{what} (a whole number {low}..{high})")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high} ({what}), got {text}")
        return value

    parse.__name__ = what  # argparse names the type in its own messages
    return parse


def seconds(text: str) -> float:
    """An argparse type: a positive number of seconds, at most :data:`MAX_TIMEOUT_S`."""
    if not _DECIMAL.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expects a positive number of seconds such as 60 or 2.5, got {text!r}"
        )
    value = float(text)
    if not 0 < value <= MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(
            f"must be more than 0 and at most {MAX_TIMEOUT_S:.0f} seconds, got {text}"
        )
    return value


def memory(text: str) -> int:
    """An argparse type: a memory size such as ``4G`` or ``512M`` (MiB without a unit),
    at least :data:`MIN_MEMORY` and at most what this machine has."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(
            f"expects a size such as 4G or 512M (K, M, G, T; M if none), got {text!r}"
        )
    number, unit = match.groups()
    size = int(float(number) * 1024 ** "KMGT".index((unit or "M").upper()) * 1024)
    from porcupine.cli.guard import hard_memory_limit, machine_memory  # Z3: only when asked

    limit = min(machine_memory(), hard_memory_limit() or machine_memory())
    if not MIN_MEMORY <= size <= limit:
        raise argparse.ArgumentTypeError(
            f"must be {MIN_MEMORY >> 20}M..{limit >> 20}M (this machine and its limits), got {text}"
        )
    return size


def param(text: str) -> tuple[str, int]:
    """An argparse type: ``NAME=INTEGER`` overriding a spec parameter."""
    name, sep, value = text.partition("=")
    if not sep or not _NAME.fullmatch(name) or not _INT.fullmatch(value):
        raise argparse.ArgumentTypeError(f"expects NAME=INTEGER such as w=64, got {text!r}")
    number = int(value)
    if abs(number) > PARAM_LIMIT:
        raise argparse.ArgumentTypeError(f"{name}={value} is out of range (|value| < 2^31)")
    return name, number


def params(pairs: list[tuple[str, int]]) -> dict[str, int]:
    """The ``--param`` pairs as a mapping; a name given twice is a usage error."""
    out: dict[str, int] = {}
    for name, value in pairs:
        if name in out:
            raise UsageError(f"--param {name} is given twice ({out[name]} and {value})")
        out[name] = value
    return out


MAX_DATA = 1 << 34
"""The most elements ``--for`` takes (16 Gi): more is a typo, not data."""


def shape(text: str) -> tuple[int, ...]:
    """``512x512`` or ``1000000``: the shape of an application's data."""
    parts = text.lower().split("x")
    if not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(
            f"expects a shape such as 512x512 or 1000000, got {text!r}"
        )
    dims = tuple(int(p) for p in parts)
    if min(dims) < 1 or math.prod(dims) > MAX_DATA:
        raise argparse.ArgumentTypeError(f"{text}: sizes from 1 to {MAX_DATA} elements in all")
    return dims
