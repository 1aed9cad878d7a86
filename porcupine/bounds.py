"""Bounds the search's claims rest on.

* :func:`coefficient_bound`: how large an integer coefficient a program of the sketch can
  build. The search solves in narrow arithmetic (mod 2^w); a correct program over Z_T
  satisfies those constraints too as long as its integer coefficients and the spec's stay
  below T, so an UNSAT answer is a proof exactly when this bound is small enough.
* :func:`lower_bound`: what any kernel for the spec must pay, whatever the sketch: a
  kernel that meets it is optimal outright, and a sketch size whose cheapest possible
  kernel is not cheaper than the best one found need not be searched.
"""

from __future__ import annotations

import math

from porcupine.restrictions import Restrictions
from quill.algebra import NormRing
from quill.cost import Measures, Objective, op_us, rank, rotation_group_us
from quill.ops import OPS, Opcode, apply_scalar
from quill.ranges import residue
from quill.verify import Reference


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


def spec_norm(ref: Reference) -> int:
    """The largest L1 norm (centred integer coefficients) of the spec's slot polynomials."""
    return max((sum(abs(residue(c)) for c in p.values()) for p in ref.polys.values()), default=0)


def min_rotations(ref: Reference) -> int:
    """Rotations any kernel needs: an input slot at offset o from the output slot reaches
    it along a path whose rotation amounts sum to o, and the paths through r rotation
    instructions offer at most 2^r sums, so r >= log2(distinct offsets of one input)."""
    most = max((len(o) for slot in ref.polys for o in ref.offsets(slot).values()), default=1)
    return math.ceil(math.log2(most)) if most > 1 else 0


def lower_bound(
    ref: Reference,
    restrictions: Restrictions,
    components: int,
    row: dict[str, int],
    goal: Objective,
) -> tuple[int, ...]:
    """A :func:`quill.cost.rank` no kernel with ``components`` components can beat."""
    rotations = min_rotations(ref)
    products = math.ceil(math.log2(ref.ct_degree)) if ref.ct_degree > 1 else 0
    relins = 1 if products else 0
    cheapest = min(row[OPS[op].cost] for op in restrictions.ops if not OPS[op].has_amount)
    moving = rotation_group_us(rotations, row)  # EvalSum rotates inside, as many times or more
    if restrictions.window is not None:
        moving = min(moving, op_us(Opcode.SUM, restrictions.window, row))
    latency = components * cheapest + moving
    latency += products * (row["mul_cc"] - cheapest) + relins * row["relin"]
    measures = Measures(rotations + relins, components + rotations, latency, 1 if rotations else 0)
    return rank(measures, goal)
