"""Bounds the search's claims rest on.

* :mod:`porcupine.search.coefficients`: when a narrow search's UNSAT answer is a proof.
* :func:`lower_bound`: what any kernel for the spec must pay, whatever the sketch: a
  kernel that meets it is optimal outright, and a sketch size whose cheapest possible
  kernel is not cheaper than the best one found need not be searched. With
  ``in_sketch``, also what every kernel of the sketch must pay for its ct*ct products
  (without rotations :func:`~porcupine.search.bound_terms.local_products`; over the
  integers :func:`~porcupine.search.bound_terms.real_products`, or a rotation after a
  product: :func:`~porcupine.search.bound_terms.product_groups`; with rotations too, mod t,
  for a spec bilinear between some inputs and the rest:
  :func:`~porcupine.search.bilinear.bilinear_products`), which prunes that sketch's
  search only. Terms that read the spec's coefficients: :mod:`~porcupine.search.bound_terms`,
  :mod:`~porcupine.search.stencil_circuits` (one rotation group), :mod:`~porcupine.search.
  stencil_paths` (two), :mod:`~porcupine.search.splat_circuits` (and a splat multiply);
  :mod:`~porcupine.search.sketch_reach`: what a sketch's own amounts can reach.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

from porcupine.search.bilinear import bilinear_products
from porcupine.search.bound_terms import (
    _log2_ceil,
    arcs_needed,
    first_targets,
    grown_shapes,
    local_products,
    product_groups,
    read_offsets,
    real_products,
    unrotated_binary,
    unrotated_weight,
)
from porcupine.search.coefficients import exact_below, spec_norm
from porcupine.search.restrictions import Restrictions
from porcupine.search.sketch_reach import (
    beyond_sketch,
    most_offsets,
    sketch_amounts,
    tuples_needed,
)
from porcupine.search.splat_circuits import scaled_counts
from porcupine.search.stencil_circuits import Stencil, rotated_paths, stencil_of
from porcupine.search.stencil_paths import NO_KERNEL, crossed_paths
from quill.cost import Measures, Objective, op_us, rank, rotation_group_us, sum_switches
from quill.ops import OPS, Opcode
from quill.verify import Reference


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


SHAPED_OFFSETS = 64
"""Up to this many offsets the bound prices every grouping of rotations together with the
additions it forces (:func:`shapes`); past it, rotations and additions are bounded apart."""


def shapes(needed: int) -> Iterator[tuple[int, ...]]:
    """The groupings of rotations that may offer ``needed`` choices (:func:`tuples_needed`):
    nondecreasing group sizes k_1 <= k_2 <= ... with prod (1 + k_i) >= needed. A path takes
    at most one rotation of each group, or none (:func:`rotations_us`), and its offset is
    the sum of the amounts it takes, so distinct offsets need distinct choices, and the
    choice of no rotation at all only ever reaches offset 0. Each grouping is minimal in
    that its last group is the smallest that reaches. A larger group or one more group only
    costs more, in rotations and in the additions :func:`fan_in` counts (but for one more
    group beside two, which :func:`plans` prices as well), so the cheapest kernel's
    grouping is one of these or dearer than one of these."""

    def walk(need: int, smallest: int) -> Iterator[tuple[int, ...]]:
        if need <= 1:
            yield ()
            return
        for k in range(smallest, need):
            if 1 + k >= need:
                yield (k,)
                return
            for rest in walk(-(-need // (1 + k)), k):
                yield (k, *rest)

    return walk(needed, 1)


def fan_in(
    shape: tuple[int, ...],
    offsets: int,
    sources: int,
    sums: tuple[int, ...] = (),
    *,
    targets: bool = True,
) -> int:
    """The fewest instructions with two ciphertext operands (add, sub, ct*ct multiply) in a
    kernel whose rotations form the groups ``shape``, with library sums of windows ``sums``,
    whose output reads ``offsets`` distinct offsets of one input and ``sources`` ciphertext
    inputs in all.

    Proof. Take the kernel's live instructions as a graph: a node per ciphertext value, an
    edge per ciphertext operand (plaintexts and constants are not nodes), so a rotation,
    ct*pt op, negation or sum has one in-edge and a two-operand instruction two. Every node
    but the output reaches the output, so has an out-edge. Counting edges by heads and by
    tails, ``unary + 2 binary = (nodes - 1) + F`` where F = sum over non-output nodes of
    (out-degree - 1), and ``nodes = inputs + unary + binary``; so ``binary = inputs - 1 +
    F``. The source of a group of k distinct rotation amounts has out-degree >= k, so F >=
    sum (k_i - 1), and the inputs the output reads are all nodes.

    Without sums, with one or two groups (and ``targets``), the first rotations the paths
    take need more (:func:`~porcupine.search.bound_terms.first_targets`): E >= that count
    less one (one group reaching one offset more than its amounts: one more). Not with
    three or more: one more amount in a group could then save more than the addition it
    costs, and :func:`plans` relies on a larger group never saving additions. One more
    group can save one (two groups of 4 need 8 for 25 offsets, with a third group of 1
    the count of paths asks 7): :func:`plans` prices that kernel too.

    And paths: the paths from the input to the output number at most the product of the
    out-degrees of the nodes they pass (by induction from the output), a path through a sum
    of window w reaches w offsets, and a path reaches one offset otherwise. With E = F -
    sum (k_i - 1) the out-degree beyond the groups' own, that product is at most
    prod k_i * 2^E (one more out-edge at most doubles it), so
    ``prod k_i * prod w * 2^E >= offsets``."""
    least = sources - 1 + sum(k - 1 for k in shape)
    reached = math.prod(shape) * math.prod(sums)
    beyond = _log2_ceil(-(-offsets // reached))
    if targets and not sums and len(shape) <= 2:
        beyond = max(beyond, first_targets(shape, offsets) - 1)
    return least + beyond


@dataclass(frozen=True)
class Plan:
    """One way a kernel may reach its offsets (:func:`plans`): the choices it takes from
    rotation groups and from library sums, and what that costs at least."""

    rotations: tuple[int, ...]  # group sizes realized by rotations
    sums: tuple[int, ...]  # windows of the library sums
    binary: int  # two-operand instructions at least (fan_in, and the doublings it needs)
    scale: Opcode | None = None  # a multiply the kernel must have (unrotated_binary)
    scales: int = 1  # how many of them, at least

    def components(self) -> int:
        """The fewest components (instructions other than rotations) of the plan's kernels:
        its two-operand instructions and sums, and its ct*pt multiplies (one operand)."""
        unary = self.scales if self.scale is not None and not OPS[self.scale].ct_ct_mult else 0
        return self.binary + len(self.sums) + unary


def plans(floor: Floor) -> Iterator[Plan]:
    """Every way to offer the choices a read needs (:func:`tuples_needed`) with library sums
    (of the windows ``floor.windows`` allows) and rotation groups. ``EvalSum(ct, w)`` adds
    w shifts of one ciphertext, so a path through it takes one of the shifts 0..w-1: w
    choices, as a group of w - 1 rotations and none. So sums of windows w_1, w_2, ... and
    rotation groups of k_1, k_2, ... offer prod w_j * prod (1 + k_i) choices; each multiset
    of windows is taken up to the first that offers them all (more sums only cost more),
    and with it each minimal grouping of the rest (:func:`shapes`). Paths double at most at
    a two-operand instruction and multiply by w at a sum, so ``2^binary * prod w_j >=
    offsets`` too.

    Sums shift a read by at most their windows' total less their count, R, so the
    rotations must also offer the arcs of length R + 1 that cover each read's offsets
    (:func:`~porcupine.search.bound_terms.arcs_needed`): the groupings are those for the
    greater of the two counts. A multiset of windows taken as the first that offers every
    choice stands for kernels with more sums too; when its R cannot span the reads, such a
    kernel has these sums and rotations, or one more sum of some window (a plan per
    window: each kernel has one of them among its own sums).

    A kernel with one rotation group and no sum, for a spec whose output reads its own
    slot's input with weight U (:func:`~porcupine.search.bound_terms.unrotated_weight`),
    either has a multiply (ct*pt or ct*ct: one plan per multiply the floor's ops hold,
    priced with it) or the additions :func:`~porcupine.search.bound_terms.unrotated_binary`
    counts (the plan without). Where its one group must hold every offset but 0 of the
    largest read (:attr:`Floor.stencil`), the plan without a multiply stands for kernels
    with exactly that group, and also needs
    :func:`~porcupine.search.stencil_circuits.rotated_paths`; one with a larger group is
    priced by the plain :func:`fan_in` of a group one larger (it only grows with the
    group). Likewise with two groups that must offer exactly the stencil's tuples: the
    plan without a multiply stands for kernels with exactly those groups and needs
    :func:`~porcupine.search.stencil_paths.crossed_paths`; kernels with larger groups hold
    one of :func:`~porcupine.search.bound_terms.grown_shapes` (plain :func:`fan_in`)."""
    scaling = [
        op
        for op in floor.ops or floor.restrictions.ops
        if OPS[op].ct_ct_mult or OPS[op].multiplies_plaintext
    ]
    for summed in _sum_sets(floor.windows, floor.needed):
        product = math.prod(summed)
        binary = max(_log2_ceil(-(-floor.offsets // product)), floor.products)
        arcs = floor.arcs(sum(w - 1 for w in summed))
        if product >= floor.needed and arcs > 1:
            # Sums that offer the choices but cannot span the reads: the kernel has these
            # sums and rotations (below), or another sum as well.
            for w in floor.windows:
                more = tuple(sorted((*summed, w)))
                least = max(binary, fan_in((), floor.offsets, floor.sources, more))
                yield Plan((), more, least)
        for minimal in shapes(max(-(-floor.needed // product), arcs)):
            # a kernel with more groups than the shape has a group of one more at least
            rotated = (1,) * (floor.groups - len(minimal)) + minimal
            least = max(binary, fan_in(rotated, floor.offsets, floor.sources, summed))
            if floor.unrotated and not summed and len(rotated) == 1:
                plain = max(least, unrotated_binary(rotated[0], floor.unrotated))
                if floor.stencil is not None and len(floor.stencil.offsets) == rotated[0] + 1:
                    # exactly the reads' amounts (rotated_paths), or a larger group
                    plain = max(plain, rotated_paths(floor.stencil))
                    grown = (rotated[0] + 1,)
                    wider = fan_in(grown, floor.offsets, floor.sources, targets=False)
                    yield Plan(grown, summed, max(binary, wider))
                yield Plan(rotated, summed, plain)
                for op in scaling:  # splat_circuits.scaled_counts: one multiply or two
                    for b, many in scaled_counts(floor, rotated, op, least, plain - 1):
                        yield Plan(rotated, summed, b, scale=op, scales=many)
                continue
            if not summed and (crossed := _crossed(floor, rotated)) > least:
                # exactly these two groups and no multiply (crossed_paths), a multiply, or
                # groups one step larger (grown_shapes), priced by the plain fan_in
                yield Plan(rotated, (), max(least, crossed))
                for op in scaling:
                    for b, many in scaled_counts(floor, rotated, op, least, crossed - 1):
                        yield Plan(rotated, (), b, scale=op, scales=many)
                yield from _grown(floor, rotated, binary)
            else:
                yield from _covering(floor, Plan(rotated, summed, least), binary)
            plain = fan_in(rotated, floor.offsets, floor.sources, summed, targets=False)
            if len(rotated) == 2 and max(binary, plain) < least:  # one more group, one less
                more = (1, *rotated)
                more_least = max(binary, fan_in(more, floor.offsets, floor.sources))
                yield from _covering(floor, Plan(more, summed, more_least), binary)


def _crossed(floor: Floor, rotated: tuple[int, ...]) -> int:
    """:func:`~porcupine.search.stencil_paths.crossed_paths` for two groups ``rotated``
    that must offer exactly the stencil's tuples, when the amounts can reach its read
    (else 0: :func:`_covering` prices the plan)."""
    if floor.stencil is None or len(rotated) != 2:
        return 0
    if beyond_sketch(floor.reads, rotated, floor.amounts, floor.slots):
        return 0
    count = crossed_paths(floor.stencil, (rotated[0], rotated[1]), floor.amounts)
    return 0 if count >= NO_KERNEL else count


def _covering(floor: Floor, plan: Plan, binary: int) -> list[Plan]:
    """``plan``, or if out of reach (bound_terms.out_of_reach, or with the sketch's amounts:
    sketch_reach.beyond_sketch), bound_terms.grown_shapes by plain fan_in."""
    if plan.sums or not beyond_sketch(floor.reads, plan.rotations, floor.amounts, floor.slots):
        return [plan]
    return _grown(floor, plan.rotations, binary)


def _grown(floor: Floor, rotated: tuple[int, ...], binary: int) -> list[Plan]:
    """The groupings one step above ``rotated`` (bound_terms.grown_shapes), each priced by
    the plain fan_in, which only grows with the groups."""
    plain = [
        (g, fan_in(g, floor.offsets, floor.sources, targets=False)) for g in grown_shapes(rotated)
    ]
    return [Plan(g, (), max(binary, least)) for g, least in plain]


@functools.lru_cache(maxsize=64)
def _plans(floor: Floor) -> tuple[Plan, ...]:
    """:func:`plans`, once per floor (the search prices the bound at every size)."""
    return tuple(plans(floor))


def _sum_sets(windows: tuple[int, ...], needed: int) -> Iterator[tuple[int, ...]]:
    """Nondecreasing multisets of ``windows`` whose product before the last is below
    ``needed`` (the empty one first)."""

    def walk(prefix: tuple[int, ...], product: int) -> Iterator[tuple[int, ...]]:
        yield prefix
        if product >= needed:
            return
        for w in sorted(windows):
            if not prefix or w >= prefix[-1]:
                yield from walk((*prefix, w), product * w)

    return walk((), 1)


@dataclass(frozen=True)
class Floor:
    """What the lower bound reads from a spec and a sketch, read once (the search prices it
    at every size; at 64 slots reading Harris' polynomials takes about 0.2 s)."""

    restrictions: Restrictions
    offsets: int  # most_offsets
    needed: int  # tuples_needed
    products: int  # ct*ct products every kernel has
    plaintext: bool  # the spec reads a plaintext input
    sources: int = 1  # ciphertext inputs the spec reads (all of them nodes of every kernel)
    windows: tuple[int, ...] = ()  # the library sums kernels may use (their windows)
    ops: tuple[Opcode, ...] = ()  # the ops kernels may use; () for the restrictions' ops
    unrotated: int = 0  # U of bound_terms.unrotated_weight (0: the term does not apply)
    real_products: int = 0  # bound_terms.real_products, for kernels below exact_below
    exact_below: int = 0  # bound_terms.exact_below: sizes below it compute over Z
    groups: int = 0  # rotation groups every kernel bounded has (bound_terms.product_groups)
    spread: int = 0  # groups of a kernel with fewer than real_products products (the same)
    reads: tuple[frozenset[int], ...] = ()  # bound_terms.read_offsets (() : not counted)
    slots: int = 0  # the spec's n, which the offsets of ``reads`` are taken mod
    stencil: Stencil | None = None  # stencil_circuits.stencil_of (None: not counted)
    amounts: tuple[int, ...] | None = None  # a sketch's rotation amounts (None: any)
    splat: tuple[int, ...] | None = None  # the only plaintexts: these splats (a sketch's)

    def arcs(self, reach: int) -> int:
        """The most arcs of ``reach`` + 1 slots any read needs to cover its offsets
        (:func:`~porcupine.search.bound_terms.arcs_needed`); 1 when not counted."""
        return max((arcs_needed(o, reach, self.slots) for o in self.reads), default=1)

    def least_components(self, window: int | None) -> int:
        """Instructions other than rotations that every kernel has (with library sums over
        ``window`` slots, if given).

        Paths from an input to an output slot multiply only at an instruction with two
        ciphertext operands (at most doubled) or a library sum (times its window), so
        reaching D offsets of one input takes b such instructions and s sums with
        2^b window^s >= D; the products are among the b, and b >= sources - 1 (every
        ciphertext input the spec reads meets the others at a two-operand instruction:
        :func:`fan_in` with no rotations). A plaintext input needs one more instruction to
        enter."""

        def binary(reach: int) -> int:
            return max(self.products, _log2_ceil(reach), self.sources - 1)

        if window is None:
            least = binary(self.offsets)
        else:  # at least one sum: that is the kind of kernel this counts
            most = 1  # sums worth counting: until they alone reach every offset
            while window > 1 and window**most < self.offsets:
                most += 1
            least = min(s + binary(-(-self.offsets // window**s)) for s in range(1, most + 1))
        return least + (1 if self.plaintext else 0)


def fewest_components(floor: Floor) -> int:
    """The fewest components (instructions other than rotations) of any kernel the floor
    bounds: a sketch size below it holds no kernel at all, so it needs no search."""
    entry = 1 if floor.plaintext else 0
    if floor.needed <= SHAPED_OFFSETS:
        return min(p.components() for p in _plans(floor)) + entry
    least = floor.least_components(None)
    if floor.windows:
        least = min(least, floor.least_components(max(floor.windows)))
    return least


def floor_for(ref: Reference, restrictions: Restrictions, in_sketch: bool = False) -> Floor:
    """The :class:`Floor` of ``ref``'s spec for any kernel (with ``in_sketch``, for the kernels
    of the sketch ``restrictions`` describe: their products,
    :func:`~porcupine.search.bound_terms.local_products`)."""
    products = _log2_ceil(ref.ct_degree)
    if in_sketch:
        products = max(
            products, local_products(ref, restrictions), bilinear_products(ref, restrictions)
        )
    ct = ref.ct_vars  # a property that builds the set: once
    plaintext = any(v not in ct for poly in ref.polys.values() for m in poly for v in m)
    # The ciphertext inputs read at one output slot (the most at any slot): each is a
    # node of every kernel (:func:`fan_in`).
    var_slot = ref.sym.var_slot
    read = [{var_slot[v][0] for m in poly for v in m if v in ct} for poly in ref.polys.values()]
    sources = max((len(r) for r in read), default=1)
    windows: tuple[int, ...]
    if in_sketch:
        windows = () if restrictions.window is None else (restrictions.window,)
        ops: tuple[Opcode, ...] = ()
    else:  # any kernel: every library sum and every op
        windows = tuple(1 << e for e in range(1, ref.spec.n.bit_length()) if 1 << e <= ref.spec.n)
        ops = tuple(OPS)
    real, exact = 0, 0
    if in_sketch and (real := real_products(ref, restrictions)) > products:
        exact = exact_below(restrictions, spec_norm(ref), EXACT_SIZES)
    return Floor(
        restrictions,
        most_offsets(ref),
        tuples_needed(ref),
        products,
        plaintext,
        max(sources, 1),
        windows=windows,
        ops=ops,
        unrotated=unrotated_weight(ref),
        real_products=real if real > products else 0,
        exact_below=exact,
        spread=product_groups(ref, restrictions) if real > products else 0,
        reads=read_offsets(ref),
        slots=ref.spec.n,
        # rotated_paths prices kernels without a multiply: no plaintext to pin (uniform)
        stencil=stencil_of(ref, uniform=True),
        amounts=sketch_amounts(restrictions.rotations, ref.spec.n) if in_sketch else None,
        splat=restrictions.constants if in_sketch and not plaintext else None,
    )


EXACT_SIZES = 64
"""How far :func:`floor_for` looks for the sizes whose kernels compute over the integers."""


def lower_bound(
    floor: Floor, components: int, row: dict[str, int], goal: Objective, *, exact: bool = False
) -> tuple[int, ...]:
    """A :func:`quill.cost.rank` no kernel with ``components`` components or more can beat;
    with ``components`` 0, no kernel at all (every kernel has at least
    :func:`fewest_components`). With ``exact``, none with exactly ``components`` (a sketch
    size the search may then skip, not the sizes above it): the plans whose kernels have
    more (:meth:`Plan.components`, a least count for each) are left out, when some remain.

    An input slot at offset o from the output slot reaches it along a path whose rotation
    amounts and sum shifts add up to o, so the kernel's rotation groups and sums must offer
    that many choices: each way to offer them (:func:`plans`) is priced with the rotations
    (:func:`rotations_us`), sums and two-operand instructions (:func:`fan_in`) it needs, and
    the cheapest is the bound. Every component is priced at the cheapest op, so a sum or a
    product adds only the rest of its price; a sum counts as the instructions it performs
    (a rotation and an addition per key switch), as :func:`quill.cost.measures` counts it.
    Past :data:`SHAPED_OFFSETS`, rotations and sums are bounded apart, the lesser of the
    two.

    With :attr:`Floor.real_products` (a sketch's kernels below :attr:`Floor.exact_below`
    components compute over the integers: :func:`~porcupine.search.bound_terms.real_products`),
    a kernel of at least ``components`` components either has fewer than ``exact_below``
    and that many products, or at least ``exact_below`` components: the lesser of the
    two bounds. (Sizes from ``exact_below`` on are priced at ``exact_below``, so the bound
    still grows with ``components``, as the search's "no larger size" step needs.) In a
    sketch with rotations, a kernel below ``exact_below`` may instead have fewer products
    and :attr:`Floor.spread` rotation groups at least
    (:func:`~porcupine.search.bound_terms.product_groups`): the least of the three."""
    if floor.real_products:
        loose = dataclasses.replace(floor, real_products=0, exact_below=0)
        high = max(components, floor.exact_below)
        large = lower_bound(loose, high, row, goal, exact=exact and high == components)
        if components >= floor.exact_below:
            return large
        real = dataclasses.replace(loose, products=floor.real_products)
        best = min(lower_bound(real, components, row, goal, exact=exact), large)
        if floor.spread:  # or fewer products, and a rotation after one
            rotating = dataclasses.replace(loose, groups=floor.spread)
            best = min(best, lower_bound(rotating, components, row, goal, exact=exact))
        return best
    ops, products = floor.ops or floor.restrictions.ops, floor.products
    relins = 1 if products else 0
    cheapest = min(row[OPS[op].cost] for op in ops if not OPS[op].has_amount)
    entry = 1 if floor.plaintext else 0

    def priced(count: int, switches: int, moved: int, moving_us: int) -> tuple[int, ...]:
        latency = count * cheapest + moving_us
        product_us, relin_us = row[OPS[Opcode.MUL_CC].cost], row[OPS[Opcode.RELIN].cost]
        latency += products * (product_us - cheapest) + relins * relin_us
        keys = 1 if switches else 0
        return rank(Measures(switches + relins, count + moved, latency, keys), goal)

    def scaled(p: Plan) -> int:  # the multiply a plan must have, beyond the cheapest op
        return 0 if p.scale is None else p.scales * (row[OPS[p.scale].cost] - cheapest)

    if floor.needed <= SHAPED_OFFSETS:
        every = _plans(floor)
        fits = [p for p in every if p.components() + entry <= components] if exact else []
        return min(
            priced(
                max(components, p.components() + entry),
                sum(p.rotations) + sum(sum_switches(w) for w in p.sums),
                sum(p.rotations) + sum(2 * sum_switches(w) - 1 for w in p.sums),
                sum(rotation_group_us(k, row) for k in p.rotations)
                + sum(op_us(Opcode.SUM, w, row) - cheapest for w in p.sums)
                + scaled(p),
            )
            for p in fits or every
        )
    count = max(components, floor.least_components(None))
    rotations = _log2_ceil(floor.offsets)
    best = priced(count, rotations, rotations, rotations_us(floor.offsets, row))
    if floor.windows:  # sums reach by the largest window, cost at least the smallest
        count = max(components, floor.least_components(max(floor.windows)))
        window = min(floor.windows)
        moving = op_us(Opcode.SUM, window, row) - cheapest
        switches = sum_switches(window)
        best = min(best, priced(count, switches, 2 * switches - 1, moving))
    return best
