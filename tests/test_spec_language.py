"""Spec language additions: `mod` in integer expressions (cyclic images) and input value
ranges (`in lo..hi`). Their errors are cases in test_spec_errors.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quill.errors import QuillSyntaxError
from quill.slots import T
from quill.spec import Domain, IntRing, parse_spec
from quill.spec_ast import BinOp, DefinitionAst, Name, Num, format_expr
from quill.spec_parser import parse_spec_file

SETTINGS = settings(max_examples=30, deadline=None)
seeds = st.integers(0, 2**32 - 1)

CYCLIC = """spec cyclic
param w = 4
param h = 4
slots w * h
input x: ct image(h, w) in 0..255
output y[i][j]: image(h, w) = x[i][j] + x[(i + 1) mod h][(j + w - 1) mod w]
"""


# --- mod ---------------------------------------------------------------------------------


@SETTINGS
@given(seeds, st.sampled_from([(4, 4), (2, 8), (8, 4), (8, 8)]))
def test_cyclic_reads_wrap_around_the_border(seed: int, size: tuple[int, int]) -> None:
    h, w = size
    s = parse_spec(CYCLIC, params={"w": w, "h": h})
    assert s.output_slots() == tuple(range(h * w))  # wrapping, every slot has its neighbours
    x = s.random_inputs(np.random.default_rng(seed))["x"]
    image = x[: h * w].reshape(h, w)
    neighbour = np.roll(np.roll(image, -1, axis=0), 1, axis=1)  # [i][j] = x[i+1][j-1], cyclic
    expected = (image + neighbour).reshape(-1)
    assert s.reference({"x": x}) == dict(enumerate(expected.tolist()))


@SETTINGS
@given(st.integers(-40, 40), st.integers(1, 9))
def test_mod_is_the_remainder_in_zero_to_m(shift: int, modulus: int) -> None:
    text = """spec t
    param c = 0
    param m = 1
    slots 8
    input x: ct vector(8)
    output y[k]: vector(8) = x[k] + ((k - c) mod m)
    """
    s = parse_spec(text, params={"c": shift, "m": modulus})
    got = s.evaluate(IntRing(), {"x": [0] * 8})
    assert got == {k: (k - shift) % modulus for k in range(8)}
    assert all(0 <= v < modulus for v in got.values())


def test_mod_in_where_sizes_and_hints() -> None:
    text = """spec t
    param w = 8
    slots (3 * w) mod 16 + 8                       # 16
    input x: ct vector(w mod 5 + 5)                # vector(8)
    output y[k]: vector(w) = x[k] * (k mod 2 + 1) where k mod 2 == 0
    hint rotations 17 mod w, -(w mod 3)
    """
    s = parse_spec(text)
    assert s.n == 16 and s.input("x").layout.shape == (8,)
    assert s.output_slots() == (0, 2, 4, 6)
    assert s.hints.rotations == (1, -2)
    assert s.evaluate(IntRing(), {"x": list(range(16))}) == {0: 0, 2: 2, 4: 4, 6: 6}


def test_mod_binds_like_times() -> None:
    decl = parse_spec_file("spec t output y: scalar = i + 1 mod h * 2").decls[-1]
    assert isinstance(decl, DefinitionAst)
    # i + ((1 mod h) * 2): mod and * are one level, left-associative, tighter than +
    inner = BinOp("*", BinOp("mod", Num(1), Name("h")), Num(2))
    assert decl.expr == BinOp("+", Name("i"), inner)
    assert format_expr(decl.expr) == "i + (1 mod h) * 2"
    assert format_expr(BinOp("mod", BinOp("*", Name("i"), Name("w")), Name("n"))) == (
        "(i * w) mod n"
    )
    assert format_expr(BinOp("mod", Name("i"), BinOp("mod", Name("j"), Num(3)))) == (
        "i mod (j mod 3)"
    )


def test_mod_is_a_whole_word() -> None:
    text = "spec t slots 4 input x: ct vector(4) output y[k]: vector(4) = x[k] modx"
    with pytest.raises(QuillSyntaxError, match="unexpected name 'modx'"):
        parse_spec(text)


# --- value ranges ------------------------------------------------------------------------


def ranged(attrs: str, **params: int) -> tuple[Domain, tuple[int, int] | None, object]:
    text = f"""spec t
    param w = 4
    slots 16
    input x: ct vector(w) {attrs}
    output y[k]: vector(w) = x[k]
    """
    decl = parse_spec(text, params=params or None).input("x")
    return decl.domain, decl.value_range, decl.value_bounds()


def test_value_ranges_and_bounds() -> None:
    assert ranged("") == (Domain.ZT, None, None)
    assert ranged("bits") == (Domain.BITS, None, (0, 1))
    assert ranged("in 0..255") == (Domain.ZT, (0, 255), (0, 255))
    assert ranged("in -128..127") == (Domain.ZT, (-128, 127), (-128, 127))
    assert ranged("in -w..w * w", w=8) == (Domain.ZT, (-8, 64), (-8, 64))
    assert ranged("in 3..3") == (Domain.ZT, (3, 3), (3, 3))
    extreme = (T - 1) // 2
    assert ranged(f"in -{extreme}..{extreme}")[1] == (-extreme, extreme)
    # a range within 0..1 is bits; bits may be narrowed within 0..1
    assert ranged("in 0..1") == (Domain.BITS, (0, 1), (0, 1))
    assert ranged("bits in 1..1") == (Domain.BITS, (1, 1), (1, 1))
    assert ranged("pad zero in 0..1 bits") == (Domain.BITS, (0, 1), (0, 1))


def test_at_re_evaluates_range_bounds() -> None:
    text = """spec t
    param w = 4
    slots 64
    input x: ct vector(w) in 0..w * 10
    output y[k]: vector(w) = x[k]
    """
    s = parse_spec(text)
    assert s.input("x").value_range == (0, 40)
    assert s.at({"w": 8}).input("x").value_range == (0, 80)


@SETTINGS
@given(seeds, st.integers(-300, 300), st.integers(0, 300))
def test_random_inputs_draw_from_the_range(seed: int, low: int, width: int) -> None:
    text = f"""spec t
    slots 16
    input a: ct vector(10) in {low}..{low + width}
    input b: pt vector(10)
    output y[k]: vector(10) = a[k] * a[k] + b[k]
    """
    s = parse_spec(text)
    v = s.random_inputs(np.random.default_rng(seed))
    a, b = v["a"], v["b"]
    assert a.dtype == np.int64 and a.shape == (16,)
    assert ((a[:10] >= low) & (a[:10] <= low + width)).all() and not a[10:].any()
    assert ((b >= 0) & (b < T)).all()
    exact = s.evaluate(IntRing(), {k: x.tolist() for k, x in v.items()})
    assert s.reference(v) == {k: value % T for k, value in exact.items()}


def test_random_inputs_reach_both_ends_of_a_small_range() -> None:
    s = parse_spec("spec t slots 64 input x: ct vector(64) in -2..1 output y[k]: vector(64) = x[k]")
    values = s.random_inputs(np.random.default_rng(0))["x"]
    assert set(values.tolist()) == {-2, -1, 0, 1}


def test_random_inputs_without_ranges_are_unchanged() -> None:
    """The draws for specs without ranges are what they were (seeds stay reproducible)."""
    s = parse_spec(
        "spec t slots 8 input a: ct vector(8) input b: ct vector(8) bits"
        " output y[k]: vector(8) = a[k] * b[k]"
    )
    v = s.random_inputs(np.random.default_rng(3))
    rng = np.random.default_rng(3)
    assert v["a"].tolist() == rng.integers(0, T, size=8, dtype=np.int64).tolist()
    assert v["b"].tolist() == rng.integers(0, 2, size=8, dtype=np.int64).tolist()
