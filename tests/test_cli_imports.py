"""The command line parses its arguments before it imports a command's machinery
(:mod:`porcupine.cli.parser`): ``--help`` and usage errors import neither the synthesizer
nor Z3, and ``synth`` does not import the OpenFHE backend or the application planning. The
suite starts the command line as a process some two hundred times; each paid for all of it.

Each case runs in a fresh interpreter (this one has imported everything already) and lists
the modules loaded when ``main`` returns."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import BLUR_SPEC, ROOT

pytestmark = pytest.mark.subprocess

HEAVY = ("z3", "porcupine.synthesize", "porcupine.backend", "porcupine.app_plan", "openfhe")

PROBE = """
import contextlib, io, json, sys
from porcupine.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = main(json.loads(sys.argv[1]))
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _loaded(*argv: str) -> tuple[int, set[str]]:
    """The exit status of ``porcupine ARGV`` and the modules loaded by its end."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(argv))],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=600,
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    return seen["code"], set(seen["modules"])


def _heavy(modules: set[str], names: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("synth", "--help"),
        ("run", "--help"),
        ("frobnicate",),
        ("synth",),
        ("emit", "k.quill", "--spec", "s.spec"),  # no -o: a usage error
        ("check", "k.quill", "--spec", "s.spec", "--timeout", "-1"),
    ],
)
def test_help_and_usage_errors_import_no_machinery(argv: tuple[str, ...]) -> None:
    code, modules = _loaded(*argv)
    assert code in (0, 2)
    assert _heavy(modules) == []


def test_synth_imports_neither_the_backend_nor_the_application_planning() -> None:
    code, modules = _loaded("synth", BLUR_SPEC, "--quiet")
    assert code == 0
    assert "porcupine.synthesize" in modules and "z3" in modules  # it did synthesize
    assert _heavy(modules, ("porcupine.backend", "porcupine.app_plan", "openfhe")) == []
    assert "porcupine.cli.commands" not in modules  # the other commands' machinery
