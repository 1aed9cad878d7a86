"""Bounds the search's claims rest on.

* :func:`coefficient_bound`: how large an integer coefficient a program of the sketch can
  build. The search solves in narrow arithmetic (mod 2^w); a correct program over Z_T
  satisfies those constraints too as long as its integer coefficients and the spec's stay
  below T, so an UNSAT answer is a proof exactly when this bound is small enough.
* :func:`lower_bound`: what any kernel for the spec must pay, whatever the sketch: a
  kernel that meets it is optimal outright, and a sketch size whose cheapest possible
  kernel is not cheaper than the best one found need not be searched. With
  ``in_sketch``, also what every kernel of a sketch without rotations must pay for its
  ct*ct products (:func:`local_products`), which prunes that sketch's search only.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from porcupine.quadratic import fewest_products, symmetric
from porcupine.restrictions import Restrictions
from quill.algebra import NormRing
from quill.cost import Measures, Objective, op_us, rank, rotation_group_us, sum_switches
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


def most_offsets(ref: Reference) -> int:
    """The most distinct offsets from which one input reaches one output slot."""
    return max((len(o) for slot in ref.polys for o in ref.offsets(slot).values()), default=1)


def _log2_ceil(n: int) -> int:
    return math.ceil(math.log2(n)) if n > 1 else 0


def rotations_us(offsets: int, row: dict[str, int]) -> int:
    """The least latency of the rotations any kernel needs to bring ``offsets`` distinct
    offsets of one input to an output slot.

    Group the rotation instructions by the ciphertext they rotate. A path from the input to
    the output passes through at most one rotation of each group (to pass through a second
    it would have to return to that ciphertext), so groups of k_1, k_2, ... distinct amounts
    offer at most prod (1 + k_i) path sums, and a group of k costs at least
    ``rotation_group_us(k)`` (plain or hoisted). A 3x3 stencil needs 2 + 2 hoisted or 8
    hoisted rotations, not 4 hoisted ones, which is what the count alone allows.
    """

    @functools.cache
    def least(need: int) -> int:
        if need <= 1:
            return 0
        return min(rotation_group_us(k, row) + least(-(-need // (1 + k))) for k in range(1, need))

    return least(offsets)


def local_products(ref: Reference, restrictions: Restrictions) -> int:
    """The ct*ct products every kernel of a sketch without rotations and of depth 1 needs
    for a spec of ciphertext degree 2 (0 when that does not apply).

    Such a kernel computes, at each slot, a sum of products of linear forms in the inputs
    at that slot (plus an affine part), so it has at least as many products as the spec's
    quadratic form there needs over Z_t (:mod:`porcupine.quadratic`). Not a bound for every
    kernel: with rotations and masks one product can hold different products in different
    slots. Bit inputs (x^2 = x) and plaintext inputs leave the form undetermined: 0."""
    if restrictions.rotations or restrictions.window is not None or restrictions.max_depth > 1:
        return 0
    if ref.ct_degree != 2 or ref.sym.ring.bits or ref.ct_vars != set(ref.sym.var_slot):
        return 0
    most = 0
    for poly in ref.polys.values():
        pairs = [(m, c) for m, c in poly.items() if len(m) == 2]
        names = sorted({v for m, _ in pairs for v in m})
        index = {v: i for i, v in enumerate(names)}
        unit = [tuple(int(i == j) for j in range(len(names))) for i in range(len(names))]
        form = [(c, unit[index[m[0]]], unit[index[m[1]]]) for m, c in pairs]
        matrix = symmetric(len(names), form)
        most = max(most, len(fewest_products(matrix, range(len(names)))))
    return most


@dataclass(frozen=True)
class Floor:
    """What the lower bound reads from a spec and a sketch, read once (the search prices it
    at every size; at 64 slots reading Harris' polynomials takes about 0.2 s)."""

    restrictions: Restrictions
    offsets: int  # most_offsets
    products: int  # ct*ct products every kernel has
    plaintext: bool  # the spec reads a plaintext input

    def least_components(self, window: int | None) -> int:
        """Instructions other than rotations that every kernel has (with library sums over
        ``window`` slots, if given).

        Paths from an input to an output slot multiply only at an instruction with two
        ciphertext operands (at most doubled) or a library sum (times its window), so
        reaching D offsets of one input takes b such instructions and s sums with
        2^b window^s >= D; the products are among the b. A plaintext input needs one more
        instruction to enter."""

        def binary(reach: int) -> int:
            return max(self.products, _log2_ceil(reach))

        if window is None:
            least = binary(self.offsets)
        else:  # at least one sum: that is the kind of kernel this counts
            most = 1  # sums worth counting: until they alone reach every offset
            while window > 1 and window**most < self.offsets:
                most += 1
            least = min(s + binary(-(-self.offsets // window**s)) for s in range(1, most + 1))
        return least + (1 if self.plaintext else 0)


def floor_for(ref: Reference, restrictions: Restrictions, in_sketch: bool = False) -> Floor:
    """The :class:`Floor` of ``ref``'s spec for any kernel (with ``in_sketch``, for the kernels
    of the sketch ``restrictions`` describe: their products, :func:`local_products`)."""
    products = _log2_ceil(ref.ct_degree)
    if in_sketch:
        products = max(products, local_products(ref, restrictions))
    ct = ref.ct_vars  # a property that builds the set: once
    plaintext = any(v not in ct for poly in ref.polys.values() for m in poly for v in m)
    return Floor(restrictions, most_offsets(ref), products, plaintext)


def lower_bound(
    floor: Floor, components: int, row: dict[str, int], goal: Objective
) -> tuple[int, ...]:
    """A :func:`quill.cost.rank` no kernel with ``components`` components can beat; with
    ``components`` 0, no kernel at all (every kernel has at least
    :meth:`Floor.least_components`).

    Two kinds of kernel, and the lesser bound of the two: without a library sum, its
    rotations: an input slot at offset o from the output slot reaches it along a path whose
    rotation amounts sum to o, and r rotations offer at most 2^r sums, so r >= log2 of the
    offsets, priced by grouping (:func:`rotations_us`); with a sum, its key switches and its
    price (the sum is one of the components, already priced at the cheapest op, so only the
    rest is added)."""
    ops, products = floor.restrictions.ops, floor.products
    rotations = _log2_ceil(floor.offsets)
    relins = 1 if products else 0
    cheapest = min(row[OPS[op].cost] for op in ops if not OPS[op].has_amount)

    def priced(count: int, switches: int, moved: int, moving_us: int) -> tuple[int, ...]:
        latency = count * cheapest + moving_us
        product_us, relin_us = row[OPS[Opcode.MUL_CC].cost], row[OPS[Opcode.RELIN].cost]
        latency += products * (product_us - cheapest) + relins * relin_us
        keys = 1 if switches else 0
        return rank(Measures(switches + relins, count + moved, latency, keys), goal)

    count = max(components, floor.least_components(None))
    best = priced(count, rotations, rotations, rotations_us(floor.offsets, row))
    window = floor.restrictions.window
    if window is not None:
        count = max(components, floor.least_components(window))
        moving = op_us(Opcode.SUM, window, row) - cheapest
        best = min(best, priced(count, sum_switches(window), 0, moving))
    return best
