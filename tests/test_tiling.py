"""Tiling, the compiler's side: how data of any size maps onto a kernel, derived from the
spec by porcupine.backend.tiling (test_tiles.py runs the runtime section that uses it).

The expected tilings are written by reading each spec, not by running the derivation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before openfhe loads (see test_backend.py)

import pytest
from helpers import (
    ABSOLUTE_WHERE,
    CONSTANT_TERM,
    CYCLIC,
    CYCLIC_PAD,
    PAD_NO_ZERO,
    PARAM_VALUE,
    PARTIAL_SUM,
    POSITION,
    RANGED,
    spec_at,
    tiling_of,
)

from porcupine.backend.pytext import LINE
from porcupine.backend.tiling import Tiling, derive_tiling, tiling_at, tiling_constants
from quill.spec import parse_spec

pytestmark = pytest.mark.slow  # symbolic derivations (Harris: seconds) and properties

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "kernels"

# --- the derivation ----------------------------------------------------------------------

S = "stencil"
R = "reduction"
F = "fixed"
NONE = ((0, 0),)

# By reading each spec: per axis (before, after) of the reads and of the where.
EXPECTED: dict[str, tuple[str, tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]] = {
    "box_blur": (S, ((0, 1), (0, 1)), ((0, 1), (0, 1))),
    "dot_product": (R, NONE, NONE),
    "gx": (S, ((1, 1), (1, 1)), ((1, 1), (1, 1))),
    "gy": (S, ((1, 1), (1, 1)), ((1, 1), (1, 1))),
    "hamming_distance": (R, NONE, NONE),
    # gx, gy read one around; the 2x2 window sums read 0..1 after; where 1 <= i < h - 2.
    "harris": (S, ((1, 2), (1, 2)), ((1, 2), (1, 2))),
    "l2_distance": (R, NONE, NONE),
    "linear_regression": (S, NONE, NONE),
    "polynomial_regression": (S, NONE, NONE),
    "roberts_cross": (S, ((0, 1), (0, 1)), ((0, 1), (0, 1))),
    "sobel": (S, ((1, 1), (1, 1)), ((1, 1), (1, 1))),
    "blur3": (S, ((1, 1), (1, 1)), ((1, 1), (1, 1))),
    "blur3_cyclic": (F, (), ()),  # reads wrap around the flat index
    "blur5": (S, ((2, 2), (2, 2)), ((2, 2), (2, 2))),
    "smooth5": (S, ((2, 2),), ((2, 2),)),
    "complex_norm": (S, NONE, NONE),
    "conv1d": (S, ((0, 2),), ((0, 2),)),
    "conv2d": (S, ((0, 1), (0, 1)), ((0, 1), (0, 1))),
    "covariance": (F, (), ()),  # n * sum(x y) - sum(x) sum(y): products across indices
    "det2": (S, NONE, NONE),
    "dot_cc": (R, NONE, NONE),
    "energy3": (S, NONE, NONE),
    "gaussian3": (S, ((1, 1), (1, 1)), ((1, 1), (1, 1))),
    "hamming16": (R, NONE, NONE),
    "hamming8": (R, NONE, NONE),
    "harris_flat": (S, ((1, 2), (1, 2)), ((1, 2), (1, 2))),
    "laplacian": (S, ((1, 1), (1, 1)), ((1, 1), (1, 1))),
    "moving_sum5": (S, ((0, 4),), ((0, 4),)),
    "point_distance": (S, NONE, NONE),
    "poly_eval": (S, NONE, NONE),
    "prewitt": (S, ((1, 1), (1, 1)), ((1, 1), (1, 1))),
    "roberts_flat": (S, ((0, 1), (0, 1)), ((0, 1), (0, 1))),
    "sharpen": (S, ((1, 1), (1, 1)), ((1, 1), (1, 1))),
    "sobel_flat": (S, ((1, 1), (1, 1)), ((1, 1), (1, 1))),
    "sum_squares": (R, NONE, NONE),
    "variance": (F, (), ()),  # n sum(a^2) - sum(a)^2
    "conv1d2_natural": (F, (), ()),  # the filter h is vector(2), x vector(n)
    "conv1d_natural": (F, (), ()),
    "matmul2": (F, (), ()),
    "matmul4": (F, (), ()),
    "matvec8": (F, (), ()),
    "pairwise4": (F, (), ()),
    "pad1": (S, ((1, 2),), NONE),  # pad zero: every output matters
    "pad2": (S, ((1, 1), (1, 1)), ((0, 1), (0, 0))),
    "wide": (S, ((0, 1),), ((2, 3),)),
}


def test_the_table_covers_every_spec_file() -> None:
    stems = {
        p.stem for d in (KERNELS, KERNELS / "corpus", KERNELS / "layouts") for p in d.glob("*.spec")
    }
    assert stems <= set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_kind_reads_and_margins_are_what_the_spec_says(name: str) -> None:
    tiling = tiling_of(name)
    assert (tiling.kind, tiling.reads, tiling.margins) == EXPECTED[name], tiling.reason
    assert bool(tiling.reason) == (tiling.kind == F)


@pytest.mark.parametrize(
    ("name", "sizes"),
    [
        ("box_blur", ({"w": 4, "h": 4}, {"w": 16, "h": 8}, {"w": 32, "h": 32})),
        ("gx", ({"w": 4, "h": 4}, {"w": 8, "h": 16})),
        ("sobel", ({"w": 4, "h": 4}, {"w": 16, "h": 16})),
        ("moving_sum5", ({"n": 16}, {"n": 64})),
        ("conv1d", ({"n": 8}, {"n": 32})),
        ("dot_product", ({"n": 4}, {"n": 64})),
        ("pad2", ({"w": 4, "h": 4}, {"w": 16, "h": 8})),
    ],
)
def test_reads_and_margins_do_not_change_with_the_size(
    name: str, sizes: tuple[dict[str, int], ...]
) -> None:
    found = {tiling_at(spec_at(name, tuple(s.items()))) for s in sizes}
    assert len(found) == 1 and found.pop().kind != F


def test_a_larger_instance_derives_at_the_small_one() -> None:
    assert derive_tiling(spec_at("box_blur", (("w", 64), ("h", 64)))) == tiling_of("box_blur")


def test_an_instance_too_small_for_its_formula_derives_at_the_default() -> None:
    small = spec_at("pad1", (("n", 2),))  # x[k + 2] is outside (0) at every output
    assert tiling_at(small).reads == ((1, 0),)  # so one size alone misses it
    assert derive_tiling(small) == tiling_of("pad1")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param(POSITION, "depends on the position", id="position"),
        pytest.param(CYCLIC, "wraps around", id="cyclic"),
        pytest.param(CYCLIC_PAD, "wraps around the border", id="cyclic_pad"),
        pytest.param(PARAM_VALUE, "changes with the size", id="param_value"),
        pytest.param(ABSOLUTE_WHERE, "changes with the size", id="absolute_where"),
        pytest.param(CONSTANT_TERM, "constant term", id="constant_term"),
        pytest.param(PARTIAL_SUM, "index 7", id="partial_sum"),
        pytest.param(PAD_NO_ZERO, "excludes 0", id="pad_no_zero"),
    ],
)
def test_specs_that_do_not_tile_are_fixed_with_a_reason(text: str, says: str) -> None:
    tiling = derive_tiling(parse_spec(text))
    assert tiling.kind == F and says in tiling.reason, tiling


def test_a_range_without_zero_fills_the_halo_inside_it() -> None:
    tiling = derive_tiling(parse_spec(RANGED))
    assert (tiling.kind, tiling.reads, tiling.margins, tiling.fill) == (
        S,
        ((0, 1),),
        ((0, 1),),
        (("x", 1),),
    )


@pytest.mark.parametrize(
    "make", [lambda: tiling_of("harris"), lambda: derive_tiling(parse_spec(RANGED))]
)
def test_tiling_constants_are_the_tilings_fields(make: Callable[[], Tiling]) -> None:
    tiling = make()
    namespace: dict[str, Any] = {}
    lines = tiling_constants(tiling)
    exec("\n".join(lines), namespace)
    assert namespace["TILE_KIND"] == tiling.kind
    assert namespace["TILE_READS"] == tiling.reads
    assert namespace["TILE_MARGINS"] == tiling.margins
    assert namespace["TILE_FILL"] == dict(tiling.fill)
    assert namespace["TILE_REASON"] == tiling.reason
    assert all(len(line) <= LINE for line in lines)


def test_a_long_reason_is_wrapped_within_the_line_length() -> None:
    tiling = tiling_of("matmul4")
    lines = tiling_constants(tiling)
    namespace: dict[str, Any] = {}
    exec("\n".join(lines), namespace)
    assert namespace["TILE_REASON"] == tiling.reason and len(tiling.reason) > LINE
    assert all(len(line) <= LINE for line in lines)
