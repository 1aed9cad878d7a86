"""Which groupings of rotations a sketch's own amounts can make reach a read (issue 24:
Sobel's gx and gy), for the lower bound over a sketch's kernels
(:func:`porcupine.search.bounds.floor_for` with ``in_sketch``).

:func:`~porcupine.search.bound_terms.sumset_cover` asks whether any amounts of Z_n reach a
read; a sketch's kernels rotate only by its own amounts. Gx (reads +-1, +-3, +-5 of a 4x4
image) in the sketch of amounts {+-1, +-3, +-4, +-5}: a group of one and a group of three
reach it with amounts of Z_16 (2, and {-5, -1, 3}), with none of the sketch's.

Also here (moved from :mod:`porcupine.search.bounds`, which keeps them in its namespace):
:func:`most_offsets` and :func:`tuples_needed`, the counts of a read the plans start from.
"""

from __future__ import annotations

from functools import cache
from itertools import combinations, product
from math import comb, prod

from porcupine.search.bound_terms import out_of_reach
from quill.verify import Reference


def most_offsets(ref: Reference) -> int:
    """The most distinct offsets from which one input reaches one output slot."""
    return max((len(o) for slot in ref.polys for o in ref.offsets(slot).values()), default=1)


def tuples_needed(ref: Reference) -> int:
    """The most rotation choices one input's reads at one output slot need: its distinct
    offsets, plus one when offset 0 is not among them (the path that takes no rotation
    reaches offset 0, so it cannot serve a read elsewhere;
    :func:`porcupine.search.bounds.shapes`)."""
    return max(
        (len(o) + (0 not in o) for slot in ref.polys for o in ref.offsets(slot).values()),
        default=1,
    )


REACH_TRIES = 50_000
"""Past this many choices of amounts :func:`sketch_reaches` is not tried (no claim)."""


def sketch_amounts(rotations: tuple[int, ...], n: int) -> tuple[int, ...]:
    """A sketch's rotation amounts, mod n, without 0 (sorted, each once)."""
    return tuple(sorted({r % n for r in rotations} - {0}))


def beyond_sketch(
    reads: tuple[frozenset[int], ...],
    shape: tuple[int, ...],
    amounts: tuple[int, ...] | None,
    n: int,
) -> bool:
    """Whether no groups of sizes ``shape`` reach the largest of ``reads``
    (:func:`~porcupine.search.bound_terms.read_offsets`): by
    :func:`~porcupine.search.bound_terms.out_of_reach` (any amounts of Z_n), or with amounts
    drawn from ``amounts`` (a sketch's, :func:`sketch_amounts`; None: any amount, nothing
    more claimed). Then no kernel (of the sketch) without library sums has exactly those
    groups, and one whose groups hold ``shape``'s holds one of
    :func:`~porcupine.search.bound_terms.grown_shapes`, which
    :func:`~porcupine.search.bound_terms.out_of_reach`'s docstring proves sound to price
    by the plain fan_in."""
    if out_of_reach(reads, shape, n):
        return True
    if amounts is None or not reads or not shape:
        return False
    return sketch_reaches(max(reads, key=len), shape, amounts, n) is False


@cache
def sketch_reaches(
    offsets: frozenset[int], shape: tuple[int, ...], amounts: tuple[int, ...], n: int
) -> bool | None:
    """Whether some groups A_i of exactly k_i distinct amounts each (``shape``), drawn from
    ``amounts``, have a sumset ({0} + A_1) + ({0} + A_2) + ... (mod n) holding ``offsets``;
    None past :data:`REACH_TRIES` choices (no claim).

    Proof that False is a proof, for a kernel of a sketch (no library sum): its rotations
    are the sketch's operand rotations, each by one of the sketch's amounts, and a group
    (the rotations of one ciphertext) has k_i distinct amounts among them. A path takes at
    most one rotation of each group, so it reads the output's slot plus the sum of the
    amounts it takes; every offset the output reads comes from some path (whatever
    cancels elsewhere: :func:`~porcupine.search.bound_terms.sumset_cover`), so ``offsets``
    lie in that sumset. Every choice of the groups' amounts is tried."""
    pool = [a % n for a in amounts if a % n]
    if prod(comb(len(pool), k) for k in shape) > REACH_TRIES:
        return None
    want = {o % n for o in offsets}
    for groups in product(*(combinations(pool, k) for k in shape)):
        sums = {0}
        for g in groups:
            sums = {(s + a) % n for s in sums for a in (0, *g)}
        if want <= sums:
            return True
    return False
