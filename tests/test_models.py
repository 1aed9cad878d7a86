"""Noise, depth, cost and program transformations: the models the search relies on."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import programs

from quill.cost import (
    DEFAULT_TABLE,
    Objective,
    measures,
    objective,
    program_cost,
    rotation_group_us,
    row_us,
)
from quill.interp import interpret
from quill.ir import Program
from quill.noise import MAX_CT_CT_DEPTH, NoiseBudgetExceeded, ct_ct_depth, parameters
from quill.params import by_name
from quill.parser import parse_program
from quill.transform import eliminate_common_subexpressions, simplify

SET = by_name("n8192_q180_w0")


def _chain(squarings: int) -> Program:
    lines = ["kernel k(x: ct) {", " v0 = mul(x, x)"]
    lines += [f" v{i} = mul(v{i - 1}, v{i - 1})" for i in range(1, squarings)]
    lines += [f" return v{squarings - 1}", "}"]
    return parse_program("\n".join(lines) + "\n")


def test_depth_counts_ct_ct_multiplies_on_the_longest_path() -> None:
    assert ct_ct_depth(_chain(3)) == 3
    p = parse_program("kernel k(x: ct, b: pt) {\n m = mul(x, b)\n s = add(m, x)\n return s\n}\n")
    assert ct_ct_depth(p) == 0


def test_parameters_follow_the_squaring_chains() -> None:
    # Measured (eval/noise_probe.py): N = 4096 with 2 x 54-bit towers holds two squarings,
    # deeper chains need more capacity, and no set holds more than MAX_CT_CT_DEPTH.
    picked = [parameters(_chain(d)).param_set for d in range(1, MAX_CT_CT_DEPTH + 1)]
    assert [s.ring_dim for s in picked[:2]] == [4096, 4096]
    assert all(a.capacity_bits <= b.capacity_bits for a, b in itertools.pairwise(picked))
    with pytest.raises(NoiseBudgetExceeded, match="reduce its multiplicative depth"):
        parameters(_chain(MAX_CT_CT_DEPTH + 1))


def test_a_bigger_ring_costs_more_for_the_same_program() -> None:
    p = _chain(1)
    assert program_cost(p, by_name("n16384_q240_w0")) > 2 * program_cost(p, SET)


def test_a_ring_dimension_prices_at_the_default_set_it_used_to_mean() -> None:
    assert row_us(DEFAULT_TABLE, 8192) == row_us(DEFAULT_TABLE, by_name("n8192_q180_w0"))
    with pytest.raises(ValueError, match="no parameter set stands for ring dimension 1024"):
        row_us(DEFAULT_TABLE, 1024)


def test_hoisting_prices_rotations_of_one_ciphertext_together() -> None:
    row = row_us(DEFAULT_TABLE, SET)
    three = parse_program(
        "kernel k(x: ct) {\n a = rot(x, 1)\n b = rot(x, 4)\n c = rot(x, 5)\n"
        " s = add(a, b)\n t = add(s, c)\n u = add(t, x)\n return u\n}\n"
    )
    expected = rotation_group_us(3, row) + 3 * row["add"]
    assert measures(three, SET).latency_us == expected
    assert expected < 3 * row["rotate"] + 3 * row["add"]


def test_objectives_order_the_two_box_blurs_differently() -> None:
    published = parse_program(
        "kernel k(x: ct) {\n a = rot(x, 4)\n s = add(x, a)\n b = rot(s, 1)\n t = add(s, b)\n"
        " return t\n}\n"
    )
    hoisted = parse_program(
        "kernel k(x: ct) {\n a = rot(x, 1)\n b = rot(x, 4)\n c = rot(x, 5)\n"
        " s = add(x, a)\n t = add(b, c)\n u = add(s, t)\n return u\n}\n"
    )
    assert objective(published, SET) < objective(hoisted, SET)
    latency = Objective.LATENCY
    assert objective(hoisted, SET, goal=latency) < objective(published, SET, goal=latency)


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(program=programs(slots=8), seed=st.integers(0, 2**32 - 1))
def test_simplification_preserves_semantics(program: Program, seed: int) -> None:
    rng = np.random.default_rng(seed)
    inputs = {p.name: rng.integers(0, 65537, 8) for p in program.params}
    simple = simplify(program)
    assert len(simple.body) <= len(program.body)
    assert (interpret(simple, inputs) == interpret(program, inputs)).all()


def test_cse_merges_commuted_duplicates() -> None:
    p = parse_program(
        "kernel k(x: ct, y: ct) {\n a = add(x, y)\n b = add(y, x)\n c = mul(a, b)\n return c\n}\n"
    )
    merged = eliminate_common_subexpressions(p)
    assert len(merged.body) == 2
    assert merged.body[1].args == ("a", "a")
