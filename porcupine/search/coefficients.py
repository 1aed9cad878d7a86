"""How large the integer coefficients of a sketch's programs can grow, which decides when
the search's narrow arithmetic is a proof and when its kernels compute over the integers
(apart from :mod:`porcupine.search.bounds`, to keep it short)."""

from __future__ import annotations

from porcupine.search.restrictions import Restrictions
from quill.algebra import NormRing
from quill.ops import OPS, apply_scalar
from quill.ranges import residue
from quill.slots import T
from quill.verify import Reference


def spec_norm(ref: Reference) -> int:
    """The largest L1 norm (centred integer coefficients) of the spec's slot polynomials."""
    return max((sum(abs(residue(c)) for c in p.values()) for p in ref.polys.values()), default=0)


def coefficient_bound(restrictions: Restrictions, components: int) -> int:
    """An upper bound on the L1 norm of the integer polynomial any program of the sketch
    computes, by evaluating the op table's semantics on norms (:class:`NormRing`). Inputs
    have norm 1 and constants their magnitude; the ct*ct depth bound is respected by
    tracking the bound per depth."""
    ring = NormRing()
    depth = restrictions.max_depth
    c = max((abs(k) for k in restrictions.constants), default=1)
    best = [c] * (depth + 1)  # best[d]: the largest norm of a value of depth <= d
    for _ in range(components):
        new = list(best)
        for d in range(depth + 1):
            for op in restrictions.ops:
                info = OPS[op]
                if info.reads is not None and restrictions.window is not None:
                    # a sum over the window adds that many copies
                    new[d] = max(new[d], best[d] * restrictions.window)
                    continue
                if info.has_amount:
                    continue
                if info.ct_ct_mult:
                    if d == 0:
                        continue
                    args = [best[d - 1], best[d - 1]]
                elif info.plaintext_operand:
                    args = [best[d], c]
                else:
                    args = [best[d]] * info.arity
                new[d] = max(new[d], apply_scalar(ring, op, args))
        best = [max(new[: d + 1]) for d in range(depth + 1)]
    return best[depth]


def exact_below(restrictions: Restrictions, spec_norm: int, cap: int) -> int:
    """The least component count L (at most ``cap``) whose kernels in the sketch may have
    integer coefficients that, with the spec's (L1 norm ``spec_norm``), reach t: below
    it, every kernel of the sketch computes the spec's centred polynomial over the integers
    (:func:`coefficient_bound` bounds each coefficient by the L1
    norm, and two integers congruent mod t that are together below t in magnitude are
    equal). The bound is nondecreasing in L, so every size from L on is beyond it."""
    for size in range(1, cap + 1):
        if coefficient_bound(restrictions, size) + spec_norm >= T:
            return size
    return cap
