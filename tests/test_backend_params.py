"""The backend and parameter sets under real OpenFHE: an emitted kernel's context is exactly
its parameter set (check_context names what differs), EvalSum runs encrypted, and every
kernel of the suite decrypts correctly under the set the compiler picks for it."""

from __future__ import annotations

import json
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before openfhe loads (see test_backend.py)

import openfhe
import pytest
from helpers import DEAD, DOT_SUM, KERNELS, SQUARE_SHIFT, SQUARE_SHIFT_SPEC, context_error

from porcupine.backend import (
    EmitOptions,
    EmittedKernel,
    ProgramSpec,
    emit_python,
    emitted_module,
    run_encrypted,
)
from quill.ir import Program
from quill.noise import parameters
from quill.parser import load_program, parse_program
from quill.slots import T
from quill.spec import load_spec, parse_spec

pytestmark = [pytest.mark.openfhe]


def test_a_kernel_with_evalsum_runs_encrypted() -> None:
    spec = load_spec(KERNELS / "dot_product.spec")
    text = emit_python(DOT_SUM, spec)
    assert "s = cc.EvalSum(m, 8)" in text and "ADVANCED_SHE = True" in text
    assert "ROTATION_INDICES: tuple[int, ...] = (1, 2, 3, 4)" in text  # sum_keys(8)
    result = run_encrypted(spec, program=DOT_SUM, reps=1, seed=3)
    assert result.ok, result.summary()


SUITE = [
    (kind, p.stem)
    for kind in ("published", "baselines", "results")
    for p in sorted((KERNELS / kind).glob("*.json" if kind == "results" else "*.quill"))
]


def suite_program(kind: str, name: str) -> Program:
    """A kernel of the suite: published, hand-written baseline, or synthesized."""
    if kind == "results":
        return parse_program(json.loads((KERNELS / kind / f"{name}.json").read_text())["program"])
    return load_program(KERNELS / kind / f"{name}.quill")


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "name"), SUITE)
def test_suite_kernels_decrypt_correctly_under_their_parameter_set(kind: str, name: str) -> None:
    spec = load_spec(KERNELS / f"{name}.spec")
    program = suite_program(kind, name)
    result = run_encrypted(spec, program=program, reps=0, seed=11)
    assert result.ok, result.summary()
    assert result.parameter_set == parameters(program, spec.n).param_set.name


def _context(
    module: EmittedKernel, security: object = None, t: int = T, **changes: object
) -> object:
    """``module``'s own context with ``changes`` to its settings (context_parameters)."""
    params = module.context_parameters(security, **changes)
    params.SetPlaintextModulus(t)
    return openfhe.GenCryptoContext(params)


# One change each to the square_shift kernel's context (N = 4096, 2 x 54-bit towers), and
# the message that names it.
MISMATCHES: dict[str, tuple[dict[str, object], str]] = {
    "plaintext modulus": (
        {"t": 786433},
        "the context's plaintext modulus is 786433, this kernel needs 65537: it was emitted "
        "for parameter set n4096_q108_w0 .*build the context with make_context",
    ),
    "ring dimension": (
        {"ring_dim": 8192},
        "the context's ring dimension is 8192, this kernel needs 4096",
    ),
    "key switching": (
        {"key_switching": "HYBRID", "security": openfhe.HEStd_NotSet},
        "the context's key-switching technique is HYBRID, this kernel needs BV",
    ),
    "digit size": ({"digit_size": 27}, "the context's digit size is 27, this kernel needs 0"),
    "multiplication": (
        {"multiplication": "HPSPOVERQLEVELED"},
        "multiplication technique is HPSPOVERQLEVELED, this kernel needs HPSPOVERQ",
    ),
    "modulus Q": (
        {"scaling_mod_size": 50},
        r"the context's modulus Q is \d+ \(log2 Q = 100.0\), this kernel needs \d+",
    ),
    "security level": (
        {"security": openfhe.HEStd_NotSet},
        r"security level is HEStd_NotSet, below the HEStd_128_classic this kernel was "
        r"emitted for: build the context with make_context\(\)",
    ),
}


@pytest.mark.parametrize("what", sorted(MISMATCHES))
def test_contexts_that_differ_from_the_kernels_set_are_refused(what: str) -> None:
    m = emitted_module(parse_program(SQUARE_SHIFT), parse_spec(SQUARE_SHIFT_SPEC))
    assert m.PARAMETER_SET == "n4096_q108_w0"  # the messages below name its settings
    changes, message = MISMATCHES[what]
    context_error(lambda: m.check_context(_context(m, **changes)), message)
    m.check_context(m.new_context())


def test_a_kernel_emitted_for_no_security_level_takes_a_context_without_one() -> None:
    spec = ProgramSpec(DEAD, 16)
    lax = emitted_module(DEAD, spec, EmitOptions(security="HEStd_NotSet"))
    lax.check_context(lax.new_context(openfhe.HEStd_NotSet))
    result = run_encrypted(spec, program=DEAD, reps=0, options=EmitOptions(security="HEStd_NotSet"))
    assert result.ok, result.summary()
