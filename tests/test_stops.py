"""Real ``porcupine synth`` processes stopped by Ctrl-C and deadlines at chosen points: when
a verified kernel of the spec was known, it is printed, and it verifies.

The points are hit exactly, not by sleeps tuned to a machine: ``PORCUPINE_STOP_AT``
(porcupine.budget.STOP_AT_ENV) sends the process a real SIGINT, or ends its deadline, at a
named check of a pass; a signal sent when the progress log shows a line lands in the search
after that line. Harris's passes took seconds and did not look at the budget: Ctrl-C there
ended with "anything it had found is lost". Harris has a hand-written baseline beside its
spec, verified first, so a kernel is known from then on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import KERNELS, NOISY_SPEC, ROOT, assert_clean

from porcupine.budget import STOP_AT_ENV
from porcupine.packings import padded
from porcupine.slot_packing import FACTORS
from quill.parser import parse_program
from quill.spec import load_spec
from quill.verify import verify

HARRIS = str(KERNELS / "harris.spec")
SHARES = "20"
"""Harris's --timeout when a hook stops it: its steps search in shares of it (and take the
formula as written when a share runs out), so its passes are reached in about this long."""

pytestmark = [pytest.mark.slow, pytest.mark.subprocess, pytest.mark.search]


def _synth(*args: str, stop_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != STOP_AT_ENV}
    if stop_at is not None:
        env[STOP_AT_ENV] = stop_at
    return subprocess.run(
        [sys.executable, "-m", "porcupine.cli", "synth", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )


def _printed_kernel_verifies(out: subprocess.CompletedProcess[str], spec: str) -> None:
    """The kernel on stdout (its summary lines are comments) is proven equal to ``spec``."""
    text = "".join(line + "\n" for line in out.stdout.splitlines() if not line.startswith("#"))
    assert "kernel " in text, out.stderr
    assert verify(parse_program(text), load_spec(spec)).ok


@pytest.mark.parametrize("place", ["fewer_products", "rotation_forms", "verify"])
def test_ctrl_c_in_a_pass_on_harris_prints_a_verified_kernel(place: str) -> None:
    out = _synth(HARRIS, "--timeout", SHARES, stop_at=f"interrupt@{place}")
    assert_clean(out, 130)
    assert "lost" not in out.stderr
    assert out.stdout.startswith("# INTERRUPTED: the best verified kernel so far")
    assert "optimal: false" in out.stdout
    _printed_kernel_verifies(out, HARRIS)


def test_the_deadline_in_a_pass_on_harris_prints_a_verified_kernel() -> None:
    out = _synth(HARRIS, "--timeout", SHARES, stop_at="timeout@fewer_products")
    assert_clean(out, 0)  # a kernel not proven optimal at the timeout is a success
    assert out.stdout.startswith("# stopped by the timeout: the best verified kernel so far")
    assert "optimal: false" in out.stdout
    _printed_kernel_verifies(out, HARRIS)


def test_ctrl_c_in_the_packing_pass_on_padded_harris_prints_a_verified_kernel() -> None:
    padded_harris = (HARRIS, "--layout", "padded", "--timeout", SHARES)
    out = _synth(*padded_harris, stop_at="interrupt@slot_packing")
    assert_clean(out, 130)
    assert "# INTERRUPTED" in out.stdout
    _printed_kernel_verifies(out, HARRIS)  # the natural kernel: the packing was not finished


def test_ctrl_c_in_harris_search_prints_a_verified_kernel(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "porcupine.cli", "synth", HARRIS, "--timeout", "600"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:  # the first kernel of the first step: deep in the search
        lines.append(line)
        if "verified kernel" in line:
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, "".join(lines) + stderr)
    assert_clean(out, 130)
    assert "lost" not in out.stderr
    assert "source: initial" in out.stdout  # the baseline, verified before the search
    _printed_kernel_verifies(out, HARRIS)


SUITE = sorted(p.name for p in KERNELS.glob("*.spec"))


@pytest.mark.parametrize("name", SUITE)
@pytest.mark.parametrize("args", [("--timeout", "2"), ("--layout", "padded", "--timeout", "4")])
def test_a_short_timeout_on_the_suite_prints_a_verified_kernel_or_says_none_was_known(
    name: str, args: tuple[str, ...]
) -> None:
    # How far a short deadline gets depends on the machine (the baseline beside each spec
    # is verified in a second or two), so either outcome passes; but never "lost", never an
    # internal error, and a kernel printed is proven equal to its spec.
    spec = load_spec(KERNELS / name)
    out = _synth(str(KERNELS / name), "--json", *args)
    assert out.returncode in (0, 1), out.stderr
    assert "lost" not in out.stderr
    if out.returncode == 1:
        assert_clean(out, 1)
        assert (
            "no verified kernel had been found to report" in out.stderr
            or "no result to report" in out.stderr
            or "no verified kernel within the timeout" in out.stderr
        )
        return
    assert_clean(out, 0)
    found = json.loads(out.stdout)
    packings = {p.name: p.spec for f in FACTORS if (p := padded(spec, f)) is not None}
    target = spec if found["packing"] == "natural" else packings[found["packing"]]
    assert verify(parse_program(found["program"]), target).ok


def test_a_deadline_in_the_search_reports_the_formula_written_out(tmp_path: Path) -> None:
    # x^64 * c * c: the formula written out is verified at once, but it is too noisy to
    # run. Whether the search ends by itself or is stopped at the deadline (from outside,
    # while it builds queries in Python), that kernel is reported, with why it cannot run.
    spec = tmp_path / "noisy.spec"
    spec.write_text(NOISY_SPEC)
    out = _synth(str(spec), "--timeout", "10")
    assert_clean(out, 1, "OpenFHE would decrypt its result wrongly")
    assert "lost" not in out.stderr
    _printed_kernel_verifies(out, str(spec))
