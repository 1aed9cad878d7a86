"""Real ``porcupine synth --for SHAPE`` processes stopped by Ctrl-C and deadlines: whenever a
verified kernel of the spec was known, it is printed, and it verifies (issue 24).

``--for`` works in two phases (:func:`porcupine.app_plan.compile_for`): the spec's kernel at
its own size, then the kernel of the tile chosen for the data. A stop in the first phase, or
between them (the budget's ``tile`` check), reports the spec's kernel at its own size, said
as such; one in the tile's passes, which look at the budget, reports the tile's kernel; one
by force in the tile's work reports the kernel the budget kept, the spec's at its own size.
The spec's hand-written baseline, verified and kept first, is known from the start.
The points are hit exactly through ``PORCUPINE_STOP_AT`` (a real SIGINT, or the deadline
ending, at a named check), as in tests/test_stops.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import KERNELS, ROOT, assert_clean

from porcupine.app_plan import TILE_CHECK, axis_params
from porcupine.budget import STOP_AT_ENV
from quill.parser import parse_program
from quill.spec import Spec, load_spec
from quill.verify import verify

ROBERTS = str(KERNELS / "roberts_cross.spec")  # seconds to its own size; passes at the tile
SOBEL = str(KERNELS / "sobel.spec")  # tens of seconds of search at its own size
DATA = "64x64"
OWN_SIZE = "at its own size"

# Roberts at its own size runs each pass's check four times (fewer_products, rotation_forms),
# then the tile's passes run theirs: the fifth is in the tile's work. The tests below check
# which kernel came out, so if the passes change their checks they fail rather than pass.
IN_THE_TILES_PASSES = "rotation_forms:5"

pytestmark = [pytest.mark.slow, pytest.mark.subprocess, pytest.mark.search]


def _synth_for(
    spec: str, *args: str, stop_at: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``porcupine synth SPEC --for DATA ARGS`` with no deadline unless given."""
    env = {k: v for k, v in os.environ.items() if k != STOP_AT_ENV}
    if stop_at is not None:
        env[STOP_AT_ENV] = stop_at
    return subprocess.run(
        [sys.executable, "-m", "porcupine.cli", "synth", spec, "--for", DATA, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=1800,
        stdin=subprocess.DEVNULL,
    )


def _tile(out: subprocess.CompletedProcess[str], spec: Spec) -> Spec:
    """The spec at the tile the command said it chose (``tile HxW`` on stderr)."""
    found = re.search(r"\(stencil\): tile (\d+(?:x\d+)*) at", out.stderr)
    assert found is not None, out.stderr
    sizes = [int(s) for s in found.group(1).split("x")]
    return spec.at({**dict(spec.params), **dict(zip(axis_params(spec), sizes, strict=True))})


def _printed_kernel_verifies(out: subprocess.CompletedProcess[str], spec: Spec) -> None:
    """The kernel on stdout (its summary lines are comments) is proven equal to ``spec``."""
    text = "".join(line + "\n" for line in out.stdout.splitlines() if not line.startswith("#"))
    assert "kernel " in text, out.stderr
    assert verify(parse_program(text), spec).ok


@pytest.mark.parametrize("place", [TILE_CHECK, "fewer_products", "fewer_products:2"])
def test_ctrl_c_before_the_tile_prints_the_specs_kernel_at_its_own_size(place: str) -> None:
    # At the tile check: the spec's kernel is known and the tile's work not begun. In the
    # passes at its own size: they stop, and the tile's work is not begun either.
    # (Within half a second of the Ctrl-C the command returns what it has or stops the work
    # by force and reports the kernel the budget kept: the spec's, either way.)
    out = _synth_for(ROBERTS, stop_at=f"interrupt@{place}")
    assert_clean(out, 130, f"roberts_cross's {OWN_SIZE}")
    assert out.stdout.startswith("# INTERRUPTED: the best verified kernel so far")
    assert "optimal: false" in out.stdout
    _printed_kernel_verifies(out, load_spec(ROBERTS))


def test_the_deadline_before_the_tile_prints_the_specs_kernel_at_its_own_size() -> None:
    out = _synth_for(ROBERTS, stop_at=f"timeout@{TILE_CHECK}")
    assert_clean(out, 0, "the timeout stopped the work before the kernel for the chosen tile")
    assert out.stdout.startswith("# stopped by the timeout: the best verified kernel so far")
    _printed_kernel_verifies(out, load_spec(ROBERTS))


def test_ctrl_c_in_the_tiles_passes_prints_the_tiles_kernel() -> None:
    out = _synth_for(ROBERTS, stop_at=f"interrupt@{IN_THE_TILES_PASSES}")
    assert_clean(out, 130)
    assert OWN_SIZE not in out.stderr
    assert out.stdout.startswith("# INTERRUPTED: the best verified kernel so far")
    assert "source: lifted" in out.stdout
    _printed_kernel_verifies(out, _tile(out, load_spec(ROBERTS)))


def test_a_stop_by_force_in_the_tiles_work_reports_the_specs_kernel(tmp_path: Path) -> None:
    # Ctrl-C caught where the work never looks at the budget: stopped by force, the kernel
    # the budget kept is the spec's at its own size (the tile's is not kept apart).
    out = _synth_for(ROBERTS, stop_at=f"hang@{IN_THE_TILES_PASSES}")
    assert_clean(out, 130, "Ctrl-C stopped the work while it could not stop itself")
    assert f"--for: the kernel is roberts_cross's {OWN_SIZE}" in out.stderr
    assert "not proven: Ctrl-C stopped the work" in out.stdout
    _printed_kernel_verifies(out, load_spec(ROBERTS))


def test_the_deadline_in_the_tiles_passes_prints_the_tiles_kernel(tmp_path: Path) -> None:
    out = _synth_for(ROBERTS, "--emit", "python", "-o", str(tmp_path / "k.py"),
                     stop_at=f"timeout@{IN_THE_TILES_PASSES}")  # fmt: skip
    assert_clean(out, 0)
    assert out.stdout.startswith("# stopped by the timeout: the best verified kernel so far")
    _printed_kernel_verifies(out, _tile(out, load_spec(ROBERTS)))
    assert "wrote" in out.stderr and "not proven optimal" in out.stderr


def test_a_real_ctrl_c_in_the_search_prints_a_verified_kernel() -> None:
    # A real SIGINT once Sobel's search at its own size has begun: its hand-written baseline,
    # verified and kept before the search (it does not seed it), is the kernel known then.
    proc = subprocess.Popen(
        [sys.executable, "-m", "porcupine.cli", "synth", SOBEL, "--for", DATA],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != STOP_AT_ENV},
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "initial bound from" in line:  # the first step's search is under way
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, "".join(lines) + stderr)
    assert_clean(out, 130, OWN_SIZE)
    assert "lost" not in out.stderr
    assert out.stdout.startswith("# INTERRUPTED: the best verified kernel so far")
    _printed_kernel_verifies(out, load_spec(SOBEL))


def test_a_short_real_timeout_prints_a_verified_kernel_or_says_none_was_known() -> None:
    out = _synth_for(SOBEL, "--timeout", "3")
    assert out.returncode in (0, 1), out.stderr
    assert "lost" not in out.stderr
    if out.returncode == 1:
        assert_clean(out, 1, "--timeout 3 s reached")
        return
    assert_clean(out, 0, OWN_SIZE)  # the search had tens of seconds to go at its own size
    _printed_kernel_verifies(out, load_spec(SOBEL))
