"""The builder the passes share (porcupine.passes.rewriting): a linear combination computes what
it says, with one ct*pt multiply per coefficient magnitude, or by doubling with none."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from porcupine.passes.rewriting import Builder
from quill.interp import interpret
from quill.ir import Param, Program
from quill.ops import Kind, Opcode
from quill.slots import T

INPUTS = ("a", "b", "c", "d")
EMPTY = Program("k", tuple(Param(n, Kind.CT) for n in INPUTS), (), (), "a")
coefficients = st.one_of(st.integers(-9, 9), st.integers(0, T - 1))
combinations = st.lists(
    st.tuples(st.sampled_from(INPUTS), coefficients), min_size=1, max_size=8
).filter(lambda terms: any(c % T for _, c in terms))


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(terms=combinations, seed=st.integers(0, 2**16), doublings=st.booleans())
def test_a_combination_computes_its_sum(
    terms: list[tuple[str, int]], seed: int, doublings: bool
) -> None:
    b = Builder(EMPTY, doublings=doublings)
    result = b.combination(terms)
    program = b.finish(EMPTY, b.body, result)
    values = {n: np.random.default_rng(seed + i).integers(0, T, 8) for i, n in enumerate(INPUTS)}
    want = sum(c * values[v].astype(object) for v, c in terms) % T
    assert list(interpret(program, values)) == list(want)
    magnitudes = {min(c % T, -c % T) for _, c in terms if c % T} - {1, 2}
    multiplies = sum(1 for i in program.body if i.opcode is Opcode.MUL_CP)
    assert multiplies <= (0 if doublings else len(magnitudes))


def test_doublings_build_small_weights_with_additions_only() -> None:
    # a + 4b + 6c - d: bits 4 = 100, 6 = 110; (b + c), doubled, + c, doubled, + a - d
    b = Builder(EMPTY, doublings=True)
    result = b.combination([("a", 1), ("b", 4), ("c", 6), ("d", -1)])
    program = b.finish(EMPTY, b.body, result)
    assert [i.opcode for i in program.body].count(Opcode.ADD_CC) == 5
    assert [i.opcode for i in program.body].count(Opcode.SUB_CC) == 1
    assert len(program.body) == 6


def test_equal_coefficients_share_one_multiply() -> None:
    b = Builder(EMPTY)
    result = b.combination([("a", 7), ("b", 7), ("c", -7), ("d", 5)])
    program = b.finish(EMPTY, b.body, result)
    assert sum(1 for i in program.body if i.opcode is Opcode.MUL_CP) == 2
