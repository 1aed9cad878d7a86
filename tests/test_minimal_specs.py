"""The minimal specs of issue 24 that crashed or found nothing: each ends in a verified,
well-typed kernel (the formula written out is always one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from porcupine.cli import main
from porcupine.cli.errors import EXIT_USAGE
from porcupine.layouts.choices import requested
from porcupine.layouts.packing import check
from porcupine.lowering import lower, needs_movement
from porcupine.synthesize import Source, synthesize
from quill.errors import QuillError
from quill.ir import Program
from quill.noise import parameters
from quill.ops import OPS, Opcode
from quill.spec import Spec, load_spec, parse_spec
from quill.verify import agrees_on_random, verify

pytestmark = [pytest.mark.slow, pytest.mark.search]


def _spec(
    formula: str, *, slots: int = 4, inputs: str = "input a: ct vector(n)", scalar: bool = False
) -> Spec:
    output = "s: scalar" if scalar or formula.startswith("sum") else "y[k]: vector(n)"
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
    # No slot reads both: x[k + 2] is past the padded end where x[k - 2] is read.
    "padded_reads_nowhere_together": _spec(
        "0 * a[k + 2] - a[k - 2]", inputs="input a: ct vector(n) pad zero in 0..255"
    ),
    # A sum of plaintext reads alone: the plaintext must move, so it becomes a ciphertext.
    "plaintext_sum": _spec(
        "sum(j in 0..n) a[j] + sum(j in 0..n) 3 * p[j] * p[j]", inputs=PLAINTEXT
    ),
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


# --- packing clauses that cannot hold: located errors (exit 2), not internal ones ---------

_PACKING = "spec clauses\nparam n = 4\nslots {slots}\n{inputs}\noutput {output}\n"

BAD_PACKINGS = {
    "too_big": (
        "input a: ct vector(n)\ninput b: ct vector(n) packing with a",
        "y[k]: vector(n) = a[k] * b[k]",
        "4",
        (5, "a (4) + b (4) need 8 slots"),
    ),
    "mutual": (
        "input a: ct vector(n) packing with b\ninput b: ct vector(n) packing with a",
        "y[k]: vector(2 * n) = a[k] * b[k] where k < n",
        "2 * n",
        (4, "which is itself packed with a"),
    ),
    "chain": (
        "input a: ct vector(2)\ninput b: ct vector(2) packing with a\n"
        "input c: ct vector(2) packing with b",
        "y[k]: vector(n) = a[k] * b[k] + c[k] where k < 2",
        "8",
        (6, "name the input that holds the ciphertext on each: `packing with a`"),
    ),
    "broadcast_of_an_elementwise_read": (
        "input a: ct vector(n)\ninput b: ct vector(n) packing broadcast",
        "y[k]: vector(n) = a[k] * b[k] + b[k]",
        "n",
        (5, "b is read at elements that change with the output element"),
    ),
    "image_with_vector": (
        "input x: ct image(2, 2)\ninput v: ct vector(4) packing with x",
        "y[i][j]: image(2, 2) = x[i][j] + v[j]",
        "8",
        (5, "v is not laid out like the output y (an image)"),
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_PACKINGS))
def test_a_packing_clause_that_cannot_hold_is_a_located_error(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs, output, slots, (line, message) = BAD_PACKINGS[name]
    path = tmp_path / "packing.spec"
    path.write_text(_PACKING.format(slots=slots, inputs=inputs, output=output))
    with pytest.raises(QuillError) as caught:
        synthesize(load_spec(path), timeout=10)
    error = caught.value
    assert error.location is not None and error.location.line == line
    assert error.location.source_line.startswith("input ")  # the clause's declaration
    assert message in str(error)  # the message or its hint
    assert main(["synth", str(path), "--timeout", "10", "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"packing.spec:{line}:" in err and "internal error" not in err


def test_an_input_read_at_a_fixed_element_beside_a_packing_keeps_its_element() -> None:
    spec = parse_spec(
        "spec fixed\nparam n = 8\nslots n\ninput a: ct vector(4)\n"
        "input b: ct vector(4) packing with a\ninput h: ct vector(2)\n"
        "output y[k]: vector(n) = h[1] * a[k] + b[k] where k < 4\n"
    )
    packing = requested(spec)
    assert packing.name == "packed a" and check(packing, spec)
    result = synthesize(spec, timeout=10)
    assert result.packing is not None and result.packing.name == "packed a"
    assert verify(result.program, packing.spec).ok
    assert agrees_on_random(result.program, packing.spec, draws=3)


# --- a budget that runs out in a step: its formula written out, not "nothing found" -------

STEPPED = {
    "user_stages": parse_spec(
        "spec staged\nparam n = 4\nslots n\ninput a: ct vector(n)\ninput b: ct vector(n)\n"
        "stage t[k]: vector(n) = -b[k] + a[k] - 1\nstage u[k]: vector(n) = b[k] + 7 * b[k]\n"
        "output y[k]: vector(n) = (-a[k]) * (5 * t[k]) - u[k]\n"
    ),
    # split into automatic stages (decompose.py)
    "automatic_stages": _spec(
        "(7 * a[k]) * (16 * b[k] + 3 * a[k] + 5)",
        slots=1,
        inputs="input a: ct vector(n) bits\ninput b: ct vector(n)",
    ),
}


@pytest.mark.parametrize("name", sorted(STEPPED))
def test_steps_out_of_time_take_their_formula_written_out(name: str) -> None:
    spec = STEPPED[name]
    result = synthesize(spec, timeout=0.01)  # over before the first step's search
    assert result.stopped == "timeout"
    assert verify(result.program, spec).ok


# --- one output slot: a sum of shifted terms is its formula once and one EvalSum ---------

SCALARS = {
    "dot": ("sum(j in 0..n) a[j] * p[j]", 0),
    "half_range": ("sum(j in 0..2) (3 * a[j] + 1) * a[j]", 1),  # masked to slots 0, 1
    "scaled_product_of_sums": ("3 * (sum(j in 0..n) a[j]) * (sum(j in 0..n) p[j] * p[j])", 0),
    "nested_shifts": ("sum(j in 0..2) sum(k in 0..2) a[j + k] * p[k]", 1),
    "plaintext_only_sum": ("sum(j in 0..n) a[j] + sum(j in 0..n) 3 * p[j] * p[j]", 0),
}


@pytest.mark.parametrize("name", sorted(SCALARS))
def test_a_scalar_is_written_out_with_one_evalsum_per_sum(name: str) -> None:
    formula, masks = SCALARS[name]
    spec = _spec(formula, slots=8, inputs=PLAINTEXT, scalar=True)
    program = lower(spec)
    assert program is not None and _well_typed(program)
    assert verify(program, spec).ok and agrees_on_random(program, spec, draws=3)
    ops = [i.opcode for i in program.body]
    assert Opcode.SUM in ops and ops.count(Opcode.ROT) <= 1  # not one rotation per term
    assert sum(set(c.values) <= {0, 1} and len(c.values) == 8 for c in program.consts) == masks
