"""The minimal specs of issue 24 that crashed or found nothing: each ends in a verified,
well-typed kernel (the formula written out is always one)."""

from __future__ import annotations

import pytest

from porcupine.lowering import lower, needs_movement
from porcupine.synthesize import Source, synthesize
from quill.ir import Program
from quill.noise import parameters
from quill.ops import OPS, Opcode
from quill.spec import Spec, parse_spec
from quill.verify import verify

pytestmark = [pytest.mark.slow, pytest.mark.search]


def _spec(formula: str, *, slots: int = 4, inputs: str = "input a: ct vector(n)") -> Spec:
    output = "s: scalar" if formula.startswith("sum") else "y[k]: vector(n)"
    return parse_spec(
        f"spec minimal\nparam n = {slots}\nslots n\n{inputs}\noutput {output} = {formula}\n"
    )


PLAINTEXT = "input a: ct vector(n)\ninput p: pt vector(n)"
PADDED = "input a: ct vector(n) pad zero"

CASES = {
    "negative_constant": _spec("-2 * a[k] + a[k]^2", slots=1),
    "negative_constant_sum": _spec("sum(j in 0..n) (-2) * a[j]"),
    "scaled_product_plus_constant": _spec("2 * a[k] * a[k] + 5"),
    "degree_four_plus_constant": _spec("a[k] * a[k] * a[k] * a[k] + 3"),
    "zero_product": _spec("0 * a[k] * a[k]"),
    "plaintext_polynomial": _spec("(-4) * a[k]^2 * p[k] + 2 * p[k] + 4", inputs=PLAINTEXT),
    "padded_neighbour": _spec("a[k] + a[k + 1]", inputs=PADDED),
}


def _well_typed(program: Program) -> bool:
    """Every instruction takes operands of the kinds its row of the op table says."""
    kinds = program.kinds()
    return all(
        tuple(kinds[a] for a in ins.args) == OPS[ins.opcode].operands for ins in program.body
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_formula_written_out_is_a_well_typed_kernel(name: str) -> None:
    spec = CASES[name]
    program = lower(spec)
    assert program is not None
    assert _well_typed(program)
    assert verify(program, spec).ok
    parameters(program, spec.n)  # the noise model takes it (it raised on ill-typed ones)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_minimal_spec_gets_a_verified_kernel(name: str) -> None:
    spec = CASES[name]
    result = synthesize(spec, timeout=10)
    assert result.verified and verify(result.program, spec).ok
    assert _well_typed(result.program)


def test_constants_alone_are_folded_into_one_plaintext() -> None:
    program = lower(CASES["negative_constant"])
    assert program is not None
    assert Opcode.NEG not in {i.opcode for i in program.body}
    # one constant: -2 mod t as written, or 2 once normalized (a^2 - 2a = a (a - 2))
    assert [c.values for c in program.consts] in ([(65535,)], [(2,)])


def test_a_zero_output_is_an_input_minus_itself() -> None:
    # No constant to encode and one addition's noise: the cheapest ciphertext of zeros.
    program = lower(CASES["zero_product"])
    assert program is not None
    assert [(i.opcode, i.args) for i in program.body] == [(Opcode.SUB_CC, ("a", "a"))]


def test_a_read_past_a_padded_end_is_masked() -> None:
    spec = CASES["padded_neighbour"]
    assert needs_movement(spec)  # the last slot reads 0 where the others read a[k + 1]
    program = lower(spec)
    assert program is not None
    assert [c.values for c in program.consts] == [(0, 1, 1, 1)]
    assert synthesize(spec, timeout=10).source is Source.LOWERED
