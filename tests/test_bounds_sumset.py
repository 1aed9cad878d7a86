"""The sumset-cover term of the lower bound is sound (bound_terms.sumset_cover): kept apart
from tests/test_bounds_sound.py (whose helpers it uses) to keep modules under 500 lines.

No amounts of three groups of two rotations reach blur5's 5x5 window, so its bound rose to
its kernel's cost. A wrong "no amounts reach" claim would make a false ``optimal`` claim:
the search is checked against brute force over every choice of amounts on small rings,
against the sumsets of random amounts, and the bound against random correct kernels whose
rotations form groups in sequence, the kernels the term rules on.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from porcupine.search.bound_terms import grown_shapes, sumset_cover
from quill.ir import Instr, Param, Program
from quill.ops import Kind, Opcode
from tests.test_bounds_sound import _chain, _holds, _over_x

SHAPES = [(1, 1), (1, 2), (2, 2), (1, 3), (1, 1, 1), (1, 1, 2), (1, 2, 2)]


def _sumset(groups: list[list[int]], n: int) -> frozenset[int]:
    sums = {0}
    for g in groups:
        sums = {(s + a) % n for s in sums for a in (0, *g)}
    return frozenset(sums)


def _brute(offsets: frozenset[int], shape: tuple[int, ...], n: int) -> bool:
    """Whether some amounts (every choice of k_i of Z_n per group, 0 and repeats allowed)
    have a sumset holding ``offsets``."""
    choices = [list(itertools.combinations_with_replacement(range(n), k)) for k in shape]
    return any(
        offsets <= _sumset([list(g) for g in groups], n) for groups in itertools.product(*choices)
    )


@settings(max_examples=150, deadline=None)
@given(
    st.tuples(st.sampled_from([6, 8, 9, 12]), st.sampled_from(SHAPES)).flatmap(
        lambda c: st.tuples(
            st.just(c[0]),
            st.just(c[1]),
            # the term is asked about a grouping only with at most 2 choices to spare
            st.frozensets(
                st.integers(0, c[0] - 1),
                min_size=min(c[0], max(1, math.prod(1 + k for k in c[1]) - 2)),
                max_size=min(c[0], math.prod(1 + k for k in c[1])),
            ),
        )
    )
)
def test_sumset_cover_agrees_with_brute_force(
    case: tuple[int, tuple[int, ...], frozenset[int]],
) -> None:
    """On small rings the search never denies what some choice of amounts reaches, and
    what it finds is real (it may give up: None, no claim)."""
    n, shape, offsets = case
    found, brute = sumset_cover(offsets, shape, n), _brute(offsets, shape, n)
    assert found is not (not brute)  # None (no claim) only where brute force finds amounts


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(
        st.sampled_from([16, 64, 256]), st.sampled_from([*SHAPES, (2, 2, 2), (1, 2, 3)])
    ).flatmap(
        lambda c: st.tuples(
            st.just(c[0]),
            st.just(c[1]),
            st.tuples(*(st.lists(st.integers(0, c[0] - 1), min_size=k, max_size=k) for k in c[1])),
            st.randoms(use_true_random=False),
        )
    )
)
def test_sumset_cover_finds_every_sumset(case: tuple) -> None:  # type: ignore[type-arg]
    """Offsets inside the sumset of some amounts (all of it, or it less one or two) are
    never denied, on rings too large for brute force (with at most SUMSET_SPARE choices to
    spare, where the bound asks, and more)."""
    n, shape, groups, rng = case
    sums = sorted(_sumset([list(g) for g in groups], n))
    offsets = frozenset(rng.sample(sums, max(1, len(sums) - rng.randint(0, 2))))
    assert sumset_cover(offsets, shape, n) is not False  # it may give up (None), never deny


@pytest.mark.slow
def test_blur5_window_is_out_of_reach_of_three_groups_of_two() -> None:
    """The claim blur5's bound rests on, at its 8x8 instance and at 16x16, and the
    groupings one step above, which do reach it."""
    for w, n in ((8, 64), (16, 256)):
        window = frozenset((di * w + dj) % n for di in range(-2, 3) for dj in range(-2, 3))
        assert sumset_cover(window, (2, 2, 2), n) is False
        assert sumset_cover(window, (4, 4), n) is True
        assert all(sumset_cover(window, g, n) is not False for g in grown_shapes((2, 2, 2)))


@st.composite
def separable(draw: st.DrawFn) -> tuple[Program, str]:
    """A random kernel whose rotations form two or three groups in sequence, each stage
    the previous value plus or minus its rotations (a separable stencil's shape, with
    random amounts and signs), and the spec its semantics is: the offsets it reads are a
    sumset of its groups, as sumset_cover asks about."""
    n = draw(st.sampled_from([16, 64]))
    body: list[Instr] = []
    current = "x"
    for g in range(draw(st.integers(2, 3))):
        amounts = draw(st.lists(st.integers(1, n - 1), min_size=1, max_size=3, unique=True))
        terms = [current]
        for j, amount in enumerate(amounts):
            body.append(Instr(f"r{g}_{j}", Opcode.ROT, (current,), amount))
            terms.append(f"r{g}_{j}")
        current = _chain(draw, body, terms, f"s{g}_")
    program = Program("separable", (Param("x", Kind.CT),), (), tuple(body), current)
    return program, _over_x("separable", n, program)


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(separable())
def test_no_separable_kernel_beats_the_bound(case: tuple[Program, str]) -> None:
    """The bound (with the sumset term) is at or below every such kernel."""
    _holds(*case)
