"""Interval analysis (quill.ranges): every bound holds for every input in range, and is
derived from the op table and the spec's own evaluator."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quill.algebra import IntRing
from quill.ops import Opcode, apply_scalar
from quill.parser import parse_program
from quill.ranges import (
    EXACT,
    Interval,
    IntervalRing,
    declares_ranges,
    program_ranges,
    residue,
    spec_ranges,
)
from quill.slots import T
from quill.spec import parse_spec

BLUR = """
spec blur
param w = 4
param h = 4
slots w * h
input x: ct image(h, w) in 0..255
output y[i][j]: image(h, w) = x[i][j] + x[i][j+1] + x[i+1][j] + x[i+1][j+1]
    where i < h - 1, j < w - 1
"""

DIFF = """
spec diff
param n = 8
slots n
input a: ct vector(n) in -100..50
input b: pt vector(n) in 3..7
output y[i]: vector(n) = a[i] * b[i] - a[i+1] where i < n - 1
"""

BLUR_KERNEL = """
kernel blur(x: ct) {
    x_r1 = rot(x, 1)
    t0 = add(x, x_r1)
    t0_r4 = rot(t0, 4)
    t1 = add(t0, t0_r4)
    return t1
}
"""

bounds = st.tuples(st.integers(-1000, 1000), st.integers(0, 1000)).map(
    lambda p: Interval(p[0], p[0] + p[1])
)
ARITHMETIC = [op for op in Opcode if not op.info.has_amount]  # slot-wise ops


@settings(max_examples=200, deadline=None)
@given(bounds, bounds, st.sampled_from(ARITHMETIC), st.data())
def test_every_op_of_the_table_stays_inside_its_interval(
    a: Interval, b: Interval, op: Opcode, data: st.DataObject
) -> None:
    args = [a, b][: op.info.arity]
    got = apply_scalar(IntervalRing(), op, args)
    points = [data.draw(st.integers(i.lo, i.hi)) for i in args]
    exact = apply_scalar(IntRing(), op, points)
    assert got.lo <= exact <= got.hi


def test_products_are_bounded_by_their_corners() -> None:
    ring = IntervalRing()
    assert ring.mul(Interval(-3, 5), Interval(-2, 4)) == Interval(-12, 20)
    assert ring.sub(Interval(0, 255), Interval(0, 255)) == Interval(-255, 255)
    assert ring.neg(Interval(-1, 7)) == Interval(-7, 1)


def test_residues_are_the_integers_of_least_magnitude() -> None:
    assert residue(T - 1) == -1 and residue(-1) == -1 and residue(5) == 5
    assert residue(EXACT.hi) == EXACT.hi and residue(EXACT.lo) == EXACT.lo


def test_exact_means_one_integer_per_residue() -> None:
    assert EXACT.hi - EXACT.lo + 1 == T
    assert Interval(-5, 5).exact and not Interval(0, EXACT.hi + 1).exact


def test_the_spec_output_range_is_the_sum_of_four_pixels() -> None:
    assert spec_ranges(parse_spec(BLUR)).interval == Interval(0, 4 * 255)


def test_program_ranges_follow_each_instruction() -> None:
    spec, program = parse_spec(BLUR), parse_program(BLUR_KERNEL)
    got = {r.what.split(" =")[0]: r.interval for r in program_ranges(program, spec)}
    # Rotations keep the interval; every add doubles it.
    assert got == {
        "x_r1": Interval(0, 255),
        "t0": Interval(0, 510),
        "t0_r4": Interval(0, 510),
        "t1": Interval(0, 1020),
    }


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_spec_ranges_hold_on_random_inputs_in_range(seed: int) -> None:
    spec = parse_spec(DIFF)
    bound = spec_ranges(spec).interval
    inputs = spec.random_inputs(np.random.default_rng(seed))
    lists = {k: [int(v) for v in vec] for k, vec in inputs.items()}
    for value in spec.evaluate(IntRing(), lists).values():
        assert bound.lo <= value <= bound.hi


def test_constants_count_as_their_residues() -> None:
    spec = parse_spec(DIFF)
    program = parse_program(
        "kernel diff(a: ct, b: pt) {\n m = const(65536)\n t = mul(a, m)\n return t\n}\n"
    )
    (only,) = program_ranges(program, spec)
    assert only.interval == Interval(-50, 100)  # 65536 is -1 mod t


def test_slots_outside_the_layout_are_zero() -> None:
    spec = parse_spec(
        BLUR.replace("slots w * h", "slots 2 * w * h").replace("in 0..255", "in 1..9")
    )
    program = parse_program(BLUR_KERNEL)
    assert program_ranges(program, spec)[0].interval == Interval(0, 9)


def test_a_kernel_wrapping_where_the_spec_does_is_found() -> None:
    spec = parse_spec(BLUR.replace("0..255", "0..20000"))
    assert not spec_ranges(spec).exact
    # x_r1 stays in 0..20000; the first add already reaches 0..40000.
    assert [r.exact for r in program_ranges(parse_program(BLUR_KERNEL), spec)] == [
        True,
        False,
        False,
        False,
    ]


def test_an_exhaustive_check_of_a_small_range() -> None:
    """Every input of a tiny spec, evaluated exactly, lies inside the computed bounds."""
    spec = parse_spec(DIFF.replace("param n = 8", "param n = 2").replace("-100..50", "-2..1"))
    bound = spec_ranges(spec).interval
    seen = set()
    for a0, a1, b0, b1 in itertools.product(range(-2, 2), range(-2, 2), range(3, 8), range(3, 8)):
        out = spec.evaluate(IntRing(), {"a": [a0, a1], "b": [b0, b1]})
        seen |= set(out.values())
    assert bound.lo <= min(seen) and max(seen) <= bound.hi


@pytest.mark.parametrize(("decl", "ranged"), [("in 0..255", True), ("bits", True), ("", False)])
def test_specs_declare_ranges_with_in_or_bits(decl: str, ranged: bool) -> None:
    spec = parse_spec(BLUR.replace("in 0..255", decl))
    assert declares_ranges(spec) is ranged
