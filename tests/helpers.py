"""Helpers shared by the test modules: paths, small kernels and specs, runners and assertions.

Test modules import shared things from here (and Hypothesis strategies from
``strategies.py``), never from one another: importing a test module runs its module-level
code and re-collects nothing, but it ties the two modules' fates and hides where a helper
lives. Whatever two test modules need goes here.
"""

from __future__ import annotations

import ast
import functools
import keyword
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# One OpenMP thread before anything loads openfhe (which fixes its thread count when it
# loads): on a loaded two-core machine two threads make OpenFHE calls many times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

from porcupine.backend import RESERVED_INPUT_NAMES, EmittedKernel, Session, emitted_module
from porcupine.backend.tiling import Tiling, derive_tiling
from quill.ir import Program
from quill.noise import NoiseBudgetExceeded, parameters
from quill.parser import load_program, parse_program
from quill.spec import Spec, load_spec, parse_spec

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "kernels"

# --- subprocesses ----------------------------------------------------------------------------


def porcupine(
    *args: str, cwd: Path = ROOT, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "porcupine.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def assert_clean(out: subprocess.CompletedProcess[str], code: int, message: str = "") -> None:
    """``out`` exited with ``code``, said ``message`` on stderr, and showed no traceback."""
    assert out.returncode == code, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert "internal error" not in out.stderr


def ruff(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ruff with the project's configuration."""
    config = ROOT / "pyproject.toml"
    cmd = [sys.executable, "-m", "ruff", *map(str, args), "--config", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


# --- the command line's specs and kernels ---------------------------------------------------

BLUR_SPEC = str(KERNELS / "box_blur.spec")
BLUR_KERNEL = str(KERNELS / "published" / "box_blur.quill")

NOISY_SPEC = """spec noisy
param n = 4
slots n
input x: ct vector(n)
input c: pt vector(n)
output y[i]: vector(n) = x[i]^64 * c[i] * c[i]
"""

OVER_BUDGET_SPEC = NOISY_SPEC.replace("x[i]^64 * c[i]", "x[i]^64 * x[i]^64 * c[i]")

# Correct for OVER_BUDGET_SPEC, but seven squarings and two ct*pt products need more modulus
# than the largest parameter set of the noise model.
NOISY_KERNEL = """kernel noisy(x: ct, c: pt) {
    x2 = mul(x, x)
    x4 = mul(x2, x2)
    x8 = mul(x4, x4)
    x16 = mul(x8, x8)
    x32 = mul(x16, x16)
    x64 = mul(x32, x32)
    x128 = mul(x64, x64)
    y1 = mul(x128, c)
    y2 = mul(y1, c)
    return y2
}
"""

# --- the backend's kernels -------------------------------------------------------------------

SQUARE_SHIFT_SPEC = """
spec square_shift
slots 8
input x: ct vector(8)
output y[i]: vector(8) = x[i]^2 + x[i+1] where i < 7
"""

SQUARE_SHIFT = """
kernel square_shift(x: ct) {
    s = mul(x, x)
    r = rot(x, 1)
    y = add(s, r)
    return y
}
"""

# The published Hamming distance (openfhe-bfv.md's kernel table): s = a + b; s * (2 - s).
HAMMING = """
kernel hamming_distance(a: ct, b: ct) {
    two = const(2)
    s = add(a, b)
    m = neg(s)
    t = add(m, two)
    p = mul(s, t)
    r2 = rot(p, 2)
    q = add(p, r2)
    r1 = rot(q, 1)
    d = add(q, r1)
    return d
}
"""

# OpenFHE's EvalAdd keeps its first operand's GetNoiseScaleDeg(): s reports degree 1 (b's),
# so q reports 2 and y 1, where the kernel's ct*ct depth is 2.
DEEPER = parse_program(
    "kernel deeper(x: ct, b: ct) {\n  p = mul(x, x)\n  s = add(b, p)\n  q = mul(x, s)\n"
    "  y = add(b, q)\n  return y\n}\n"
)

DEAD = parse_program(
    "kernel dead(x: ct) {\n  two = const(2)\n  a = rot(x, 1)\n  b = rot(x, 2)\n"
    "  c = mul(a, two)\n  y = add(x, x)\n  return y\n}\n"
)

# The published dot product's reduction tree as one EvalSum.
DOT_SUM = parse_program(
    "kernel dot_product(a: ct, b: pt) {\n  m = mul(a, b)\n  s = sum(m, 8)\n  return s\n}\n"
)


@dataclass(frozen=True)
class Kernel:
    """A spec, a program for it, its emitted module, and a context for running it."""

    spec: Spec
    program: Program
    module: EmittedKernel
    session: Session


def make_kernels(*, cleartext_backend: bool = False) -> dict[str, Kernel]:
    """The published box blur and dot product, Hamming distance (constants, bit inputs,
    ct*ct) and a hand-made ct*ct kernel with its hand-written spec, each with a session
    (encrypted, or on the cleartext backend)."""
    sources = {
        name: (load_spec(KERNELS / f"{name}.spec"), load_program(path))
        for name in ("box_blur", "dot_product")
        for path in [KERNELS / "published" / f"{name}.quill"]
    }
    sources["hamming_distance"] = (
        load_spec(KERNELS / "hamming_distance.spec"),
        parse_program(HAMMING),
    )
    sources["square_shift"] = (parse_spec(SQUARE_SHIFT_SPEC), parse_program(SQUARE_SHIFT))
    out = {}
    for name, (spec, program) in sources.items():
        module = emitted_module(program, spec, cleartext_backend=cleartext_backend)
        out[name] = Kernel(spec, program, module, Session([module]))
    return out


def emittable(program: Program, slots: int = 16) -> bool:
    """Inputs become keyword arguments, so Python keywords and the module's own names are
    refused (test_reserved_input_names_are_refused); and the noise model must accept it."""
    if any(keyword.iskeyword(p.name) or p.name in RESERVED_INPUT_NAMES for p in program.params):
        return False
    try:
        parameters(program, slots)
    except NoiseBudgetExceeded:
        return False
    return True


def context_error(call: Callable[[], object], message: str) -> None:
    """Assert that ``call`` raises the emitted module's KernelContextError with ``message``."""
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert type(info.value).__name__ == "KernelContextError"


def imports_of(text: str) -> set[str]:
    """Every module a Python text imports (``module.name`` for ``from`` imports)."""
    tree = ast.parse(text)
    return {
        alias.name if isinstance(node, ast.Import) else f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }


# --- tiling: specs written for it, and specs by name ------------------------------------

PAD_1D = """
spec pad1
param n = 8
slots n
input x: ct vector(n) pad zero
output y[k]: vector(n) = x[k - 1] + 2 * x[k] + 3 * x[k + 2]
"""

PAD_2D = """
spec pad2
param w = 8
param h = 8
slots w * h
input x: ct image(h, w) pad zero
input g: pt image(h, w)
output y[i][j]: image(h, w) = x[i-1][j] * g[i][j] + x[i][j+1]^2 - x[i+1][j-1]
    where i < h - 1
"""

# Margins wider than the reads: a tile's outputs start after its margin, not its halo.
WIDE = """
spec wide
param n = 8
slots n
input x: ct vector(n)
output y[k]: vector(n) = x[k] * x[k + 1]
    where 2 <= k < n - 3
"""

POSITION = """
spec position
param n = 8
slots n
input x: ct vector(n)
output y[i]: vector(n) = i * x[i]
"""

CYCLIC = """
spec cyclic
param n = 8
slots n
input x: ct vector(n)
output y[i]: vector(n) = x[i] + x[(i + 1) mod n]
"""

# Every output is the same formula (a wrapped read of a pad-zero input is 0 at the border
# either way), but its window spans more than n elements: no output reads all of it.
CYCLIC_PAD = """
spec cyclic_pad
param n = 8
slots n
input x: ct vector(n) pad zero
output y[i]: vector(n) = x[(i + 1) mod n]
"""

PARAM_VALUE = """
spec scaled
param n = 8
slots n
input x: ct vector(n)
output y[i]: vector(n) = n * x[i]
"""

ABSOLUTE_WHERE = """
spec absolute
param n = 8
slots n
input x: ct vector(n)
output y[i]: vector(n) = x[i] + x[i + 1]
    where i < 3
"""

CONSTANT_TERM = """
spec shifted_sum
param n = 8
slots n
input a: ct vector(n)
output s: scalar = sum(k in 0..n) (a[k] + 1)
"""

PARTIAL_SUM = """
spec partial_sum
param n = 8
slots n
input a: ct vector(n)
output s: scalar = sum(k in 0..n - 1) a[k]
"""

PAD_NO_ZERO = """
spec pad_ranged
param n = 8
slots n
input x: ct vector(n) pad zero in 1..9
output y[k]: vector(n) = x[k] + x[k + 1]
"""

RANGED = """
spec ranged
param n = 8
slots n
input x: ct vector(n) in 1..9
output y[k]: vector(n) = x[k] * x[k + 1]
    where k < n - 1
"""

TEXTS = {"pad1": PAD_1D, "pad2": PAD_2D, "wide": WIDE}


@functools.cache
def spec_at(name: str, params: tuple[tuple[str, int], ...] = ()) -> Spec:
    """A spec by file stem (kernels/, corpus/, layouts/) or by its name in TEXTS."""
    if name in TEXTS:
        return parse_spec(TEXTS[name], f"<{name}>", dict(params))
    (path,) = [p for p in KERNELS.glob("**/*.spec") if p.stem == name and "results" not in p.parts]
    return load_spec(path, dict(params))


@functools.cache
def tiling_of(name: str) -> Tiling:
    return derive_tiling(spec_at(name))


def emitted_imports() -> set[str]:
    """What every emitted module imports: the runtime's imports (not Porcupine's: the
    sections it imports from are copied in) and its application sections'
    (:func:`porcupine.backend.sections.application_sections`)."""
    from porcupine.backend.sections import RuntimeText, application_sections

    runtime = RuntimeText.load().imports
    return imports_of("\n".join(runtime)) | {
        name for s in application_sections() for name in imports_of("\n".join(s.imports))
    }
