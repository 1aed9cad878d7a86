"""Two terms of the lower bound (:mod:`porcupine.search.bounds`) that read the spec's
coefficients, not only which offsets it reads.

* :func:`unrotated_weight` and :func:`unrotated_binary`: a coefficient like the -4 of a
  Laplacian at the output slot itself, in a kernel with one rotation group and no op that
  scales (no ct*pt or ct*ct multiply), needs additions of its own.
* :func:`arcs_needed` (with :func:`read_offsets`): a path through library sums shifts its
  read by at most their windows' total less their count, so a kernel whose sums cannot
  span the offsets a read needs must rotate (or sum) more.
* :func:`first_targets`: where every choice of rotations is needed, the paths must part
  before the first rotation they take, which costs additions.
* :func:`real_products` (with :func:`porcupine.search.coefficients.exact_below`): a kernel of a
  sketch without rotations whose integer coefficients stay small computes the spec over
  the integers, where a positive definite form like x^2 + y^2 + z^2 needs as many
  products as its rank (over Z_t, the 256^2 = -1 trick pairs squares; over the reals
  nothing does).

Each function's docstring holds its proof; tests/test_bounds_sound.py checks every term
below random correct programs built to exercise it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from fractions import Fraction
from functools import cache
from itertools import combinations
from math import prod

from porcupine.passes.quadratic import fewest_products, symmetric
from porcupine.search.restrictions import Restrictions
from quill.ranges import residue
from quill.slots import normalize_amount
from quill.verify import Reference


def _log2_ceil(n: int) -> int:
    return (n - 1).bit_length() if n > 1 else 0


def single_input(ref: Reference) -> bool:
    """Whether the spec reads exactly one ciphertext input and no plaintext one, and its
    output is linear in that input: what :func:`unrotated_binary` assumes."""
    var_slot, ct = ref.sym.var_slot, ref.ct_vars
    names = {var_slot[v][0] for poly in ref.polys.values() for m in poly for v in m}
    if len(names) != 1 or ref.sym.ring.bits:
        return False
    read = {v for poly in ref.polys.values() for m in poly for v in m}
    return read <= ct and ref.ct_degree <= 1


def unrotated_weight(ref: Reference) -> int:
    """U: the largest |coefficient| (centred mod t) with which an output slot reads the
    input at that same slot (offset 0), over the output slots that matter; 0 unless
    :func:`single_input`."""
    if not single_input(ref):
        return 0
    var_slot, n = ref.sym.var_slot, ref.spec.n
    most = 0
    for slot, poly in ref.polys.items():
        for m, c in poly.items():
            if len(m) == 1 and (var_slot[m[0]][1] - slot) % n == 0:
                most = max(most, abs(residue(c)))
    return most


def unrotated_binary(group: int, weight: int) -> int:
    """The fewest add/sub instructions of a kernel for a :func:`single_input` spec that
    reads the output slot's own input with weight U = ``weight`` >= 1, when the kernel's
    rotations by amounts other than 0 (mod n) all rotate one ciphertext c (``group``
    distinct amounts, ``group`` >= 1), it has no library sum and no ct*pt or ct*ct
    multiply: ``group - 1 + ceil(log2(U + 1))``.

    Proof. Take the kernel's graph as :func:`porcupine.search.bounds.fan_in` does (a node
    per ciphertext value, an edge per ciphertext operand), with out-degrees d_v; with one
    input x, the add/sub count is F = sum over non-output nodes of (d_v - 1). Let H be the
    graph without the rotation edges (rotations by 0 mod n stay: they are the identity).
    Without multiplies and sums, the output's coefficient of x at offset o is, over the
    integers, the sum of +-1 over the paths from x to the output whose rotation amounts
    add up to o, and it is the spec's coefficient mod t, so those paths number at least
    the coefficient's centred magnitude. A path passes at most one rotation of c (a second
    would return to c), so it reaches offset 0 exactly when it takes no rotation: at least
    U paths from x to the output lie in H. Only c has rotation out-edges, so every other
    non-output node has d_H(v) >= 1; c has d_c >= group + d_H(c). And c is reached from x
    in H: the spec reads x at an offset other than 0 (a single group is only asked for
    then), so some path from x takes a rotation and passes c, and a rotation edge before c
    on it would lead out of c back to c. (Inputs the spec declares but does not read only
    add nodes: the add/sub count is inputs - 1 + F >= F.) Paths from x to the sinks of a
    graph number at most the product of the out-degrees of the other nodes they pass, and
    d <= 2^(d - 1).
    If d_H(c) >= 1: F >= group + sum (d_H(v) - 1) >= group + ceil(log2 U).
    If d_H(c) = 0: c is a sink of H besides the output, reached from x, so at least U + 1
    paths of H from x end in a sink: F >= group - 1 + ceil(log2(U + 1)).
    The second is the smaller (ceil(log2(U + 1)) <= 1 + ceil(log2 U)). A Laplacian's -4
    needs 3 + 3 = 6 additions around its one hoisted group of 4, where the count of
    offsets and paths alone allowed 4: a ct*pt multiply by 4 is then the cheaper way."""
    return group - 1 + _log2_ceil(weight + 1)


def inertia(matrix: list[list[Fraction]]) -> tuple[int, int]:
    """The numbers of positive and negative eigenvalues of a real symmetric matrix, exactly
    (Sylvester's law: a congruence that eliminates a nonzero pivot, or a 2x2 block with a
    zero diagonal, which is one positive and one negative direction)."""
    a = [row[:] for row in matrix]
    positive = negative = 0
    live = list(range(len(a)))
    while live:
        pivot = next((i for i in live if a[i][i] != 0), None)
        if pivot is not None:
            p = a[pivot][pivot]
            positive, negative = positive + (p > 0), negative + (p < 0)
            live.remove(pivot)
            for i in live:
                f = a[i][pivot] / p
                for j in live:
                    a[i][j] -= f * a[pivot][j]
            continue
        pair = next(((i, j) for i in live for j in live if i < j and a[i][j] != 0), None)
        if pair is None:
            break  # the rest is zero
        i0, j0 = pair
        # Replace row/column i0 by i0 + j0: the new diagonal entry is 2 a[i0][j0] != 0.
        for j in live:
            a[i0][j] += a[j0][j]
        for i in live:
            a[i][i0] += a[i][j0]
    return positive, negative


def local_products(ref: Reference, restrictions: Restrictions) -> int:
    """The ct*ct products every kernel of a sketch without rotations and of depth 1 needs
    for a spec of ciphertext degree 2 (0 when that does not apply).

    Such a kernel computes, at each slot, a sum of products of linear forms in the inputs
    at that slot (plus an affine part), so it has at least as many products as the spec's
    quadratic form there needs over Z_t (:mod:`porcupine.passes.quadratic`). Not a bound for every
    kernel: with rotations and masks one product can hold different products in different
    slots. Bit inputs (x^2 = x) and plaintext inputs leave the form undetermined: 0."""
    most = 0
    for pairs, names in quadratic_parts(ref, restrictions):
        index = {v: i for i, v in enumerate(names)}
        unit = [tuple(int(i == j) for j in range(len(names))) for i in range(len(names))]
        form = [(c, unit[index[m[0]]], unit[index[m[1]]]) for m, c in pairs]
        matrix = symmetric(len(names), form)
        most = max(most, len(fewest_products(matrix, range(len(names)))))
    return most


def real_products(ref: Reference, restrictions: Restrictions) -> int:
    """The ct*ct products every kernel of a sketch without sums, of depth 1, whose integer
    coefficients stay below :func:`porcupine.search.coefficients.exact_below`'s limit, and
    whose paths from its products to the output take no rotation (in a sketch without
    rotations, every kernel) has for a spec of ciphertext degree 2 (0 when that does not
    apply): the most, over output slots, of max(p, q) for the inertia (p, q) of the real
    symmetric matrix of the slot's quadratic part (coefficients centred mod t). A kernel
    with fewer products rotates after one (:func:`product_groups`).

    Proof. Such a kernel computes at each output slot an integer polynomial sum over
    (j, s) of n_js (l_j l'_j)(slot + s) + (affine): l_j, l'_j the factors of product j
    (affine in the inputs, read at offsets their rotations give), s the shift of a path
    from product j to the output (the sum of its rotations' amounts), n_js the sum over
    those paths of the signs and constants they meet: one term per product and shift.
    When its coefficients and the spec's centred ones are below t/2 together
    (:func:`porcupine.search.coefficients.exact_below`), "equal mod t" is equality over the
    integers, so the spec's quadratic part is the sum of the terms' symmetric matrices
    over the reals. Each term has at most one positive and one negative eigenvalue (rank
    2, and l l' = ((l + l')^2 - (l - l')^2) / 4), and the positive (negative) index of a
    sum is at most the sum of the indices (Weyl). So the terms number at least p and at
    least q; with no rotation after a product, each product has one shift (0), so the
    products do. Bit inputs and plaintext inputs: 0, as for
    :func:`local_products`."""
    most = 0
    for pairs, names in quadratic_parts(ref, restrictions, rotations=True):
        index = {v: i for i, v in enumerate(names)}
        matrix = [[Fraction(0)] * len(names) for _ in names]
        for (u, v), c in pairs:
            i, j, half = index[u], index[v], Fraction(residue(c), 2)
            matrix[i][j] += half  # a square's c lands on the diagonal twice: c
            matrix[j][i] += half
        most = max(most, *inertia(matrix))
    return most


Pairs = list[tuple[tuple[int, ...], int]]
"""A slot's degree-2 monomials (two variables, equal for a square) and their coefficients."""


def quadratic_parts(
    ref: Reference, restrictions: Restrictions, *, rotations: bool = False
) -> list[tuple[Pairs, list[int]]]:
    """Per output slot, its quadratic part and the variables that part reads (sorted), for
    the product counts of a sketch without sums (and without rotations, unless
    ``rotations``), of depth 1 (:func:`real_products`,
    :func:`local_products`); none when those do not apply: such a
    sketch, a spec of ciphertext degree 2, no bit inputs (x^2 = x) and no plaintext inputs
    (they leave the form undetermined)."""
    if (restrictions.rotations and not rotations) or restrictions.window is not None:
        return []
    if restrictions.max_depth > 1:
        return []
    if ref.ct_degree != 2 or ref.sym.ring.bits or ref.ct_vars != set(ref.sym.var_slot):
        return []
    parts: list[tuple[Pairs, list[int]]] = []
    for poly in ref.polys.values():
        pairs: Pairs = [(m, c) for m, c in poly.items() if len(m) == 2]
        parts.append((pairs, sorted({v for m, _ in pairs for v in m})))
    return parts


def read_offsets(ref: Reference) -> tuple[frozenset[int], ...]:
    """The distinct sets of offsets (mod n, input slot minus output slot) at which one
    output slot reads one ciphertext input, over the output slots that matter."""
    var_slot, ct, n = ref.sym.var_slot, ref.ct_vars, ref.spec.n
    sets: set[frozenset[int]] = set()
    for slot, poly in ref.polys.items():
        by_input: dict[str, set[int]] = {}
        for m in poly:
            for v in m:
                if v in ct:
                    name, s = var_slot[v]
                    by_input.setdefault(name, set()).add(normalize_amount(s - slot, n) % n)
        sets.update(frozenset(o) for o in by_input.values())
    return tuple(sorted(sets, key=sorted))


def arcs_needed(offsets: frozenset[int], reach: int, n: int) -> int:
    """The fewest arcs {a, a + 1, ..., a + ``reach``} of Z_n whose union holds ``offsets``.

    What it bounds: a kernel with library sums of windows w_1, w_2, ... (``reach`` = the sum
    of w_j - 1) and rotation groups of k_1, k_2, ... amounts offers at most prod (1 + k_i)
    such arcs to each read. Proof. ``sum(a, w)[i]`` adds ``a[i + s]`` for s = 0 .. w - 1
    and ``rot(a, r)[i]`` is ``a[i + r]``; other instructions read their operands at the
    same slot. So along a path from a ciphertext input to the output the slot read moves by
    the amounts of the rotations the path takes plus one shift s_j in 0 .. w_j - 1 for
    each sum it passes (a path passes an instruction at most once). A path takes at most
    one rotation of each group (:func:`porcupine.search.bounds.rotations_us`), so its
    rotations add up to one of at most prod (1 + k_i) values A (none taken: 0), and its
    shifts to a value in 0 .. ``reach``. An input read at offset o needs a path that
    reaches it there (a monomial of the output holds a variable only through a path from
    it), so the offsets lie in the union of the arcs A + [0, ``reach``]: at most prod
    (1 + k_i) arcs cover them, and so do no fewer than this count. (Plaintext operands
    enter at their instruction's own slot, so only ciphertext inputs are counted.)"""
    if not offsets:
        return 0
    if reach + 1 >= n:
        return 1
    points = sorted(offsets)
    best = len(points)
    for start in points:  # some arc of a least cover starts at a point of the set
        arcs, end = 1, start + reach
        for o in sorted((p - start) % n + start for p in points):
            if o > end:
                arcs, end = arcs + 1, o + reach
        best = min(best, arcs)
    return best


def first_targets(shape: tuple[int, ...], offsets: int) -> int:
    """How many distinct places the paths from one input must reach before taking any
    rotation, in a kernel without library sums whose rotations form the groups ``shape``
    and whose output reads that input at ``offsets`` distinct offsets: the output (when
    some path takes no rotation) and the source of each group that is some path's first.
    Such a kernel has at least this count less one out-edges beyond its groups' own (E of
    :func:`porcupine.search.bounds.fan_in`).

    Proof. A path takes at most one rotation of each group, so its choice is a tuple (an
    amount or none per group), and its offset is the sum of the amounts. Distinct offsets
    need distinct tuples, so of the prod (1 + k_i) tuples at most m = prod (1 + k_i) -
    ``offsets`` are taken by no path. If m = 0, some path takes no rotation; and a group
    of k > m amounts has a tuple with one of its amounts and nothing else taken, whose
    path reaches the group's source c before any rotation. Now take the kernel's graph
    (:func:`porcupine.search.bounds.fan_in`) without its rotation edges, K. In K the
    output has no out-edge, nor has a source c with no out-edge but its rotations; a
    source with h >= 1 other out-edges has h in K. The nodes K reaches from the input
    form a DAG whose sinks number at most 1 + the sum of (d - 1) over its nodes of
    out-degree d >= 1 (a spanning tree from the input has that many leaves at most, and
    every sink is a leaf). So the targets, each a sink of K or a source with h >= 1,
    number at most 1 + F_K + #{sources with h >= 1}, where F_K sums d - 1 over the nodes
    of K of out-degree d >= 1. That is 1 + E: a source's out-edges are its k rotations
    and its h others, every other node's out-edges are in K, so E = F - sum (k_i - 1) =
    F_K + #{sources with h >= 1}. (Blur5's 5x5 box in two hoisted groups of 4: the paths
    reach the output and both sources first, so 6 + 2 additions, not 6 + 1.)"""
    spare = max(0, prod(1 + k for k in shape) - offsets)
    return int(spare == 0) + sum(1 for k in shape if k > spare)


def product_groups(ref: Reference, restrictions: Restrictions) -> int:
    """The rotation groups (:func:`porcupine.search.bounds.rotations_us`) every kernel of
    the sketch that :func:`real_products` speaks of has when it has fewer products than
    that count: 0 in a sketch without rotations (there is no such kernel), else 2 when
    the spec's quadratic part reads two slots in one monomial (Roberts' x[i][j] x[i+1][j+1]),
    else 1.

    Proof. By :func:`real_products`' proof, the (product, shift) terms number at least
    that count, so with fewer products some product reaches the output along paths of two
    shifts, and one of them takes a rotation after that product: its group's source is a
    product or computed from one (ct*ct depth 1). A monomial u v with u and v at different
    slots is a term of some (l_j l'_j)(slot + s) whose factors read u and v at different
    offsets: one of them is nonzero, so a rotation comes before product j (no sums: only
    rotations shift). Its source is of depth 0, an ancestor of a product, so it is not the
    first group's source, which has depth 1: two groups."""
    parts = quadratic_parts(ref, restrictions, rotations=True)
    if not restrictions.rotations or not parts:
        return 0
    slot = ref.sym.var_slot
    crossed = any(slot[m[0]][1] != slot[m[-1]][1] for pairs, _ in parts for m, _ in pairs)
    return 2 if crossed else 1


class _Spent(Exception):
    """The step budget of :func:`sumset_cover` ran out: no claim is made."""


SUMSET_STEPS = 500_000
"""How many steps :func:`sumset_cover` takes before it gives up (and claims nothing)."""


SUMSET_SPARE = 2
"""Groupings with at most this many choices beyond the offsets are checked for amounts that
reach them (:func:`out_of_reach`); with more, the check costs more and rarely rules one out."""


def out_of_reach(reads: tuple[frozenset[int], ...], shape: tuple[int, ...], n: int) -> bool:
    """Whether :func:`sumset_cover` proves that no amounts of two or more groups ``shape``
    reach the largest of ``reads`` (:func:`read_offsets`), asked only with at most
    :data:`SUMSET_SPARE` choices to spare. Then no kernel without library sums whose
    groups are exactly ``shape`` exists; one whose groups hold ``shape``'s (each matched
    to one at least as large) holds one of :func:`grown_shapes`, and the plain
    :func:`porcupine.search.bounds.fan_in` (without first_targets) only grows with the
    groups (one amount more: one more out-edge, and the paths' doublings needed fall by
    one at most; one more group of one: the same count), so pricing those is sound."""
    offsets = max(reads, key=len, default=frozenset())
    spare = prod(1 + k for k in shape) - len(offsets)
    return len(shape) > 1 and spare <= SUMSET_SPARE and sumset_cover(offsets, shape, n) is False


@cache
def sumset_cover(
    offsets: frozenset[int], shape: tuple[int, ...], n: int, steps: int = SUMSET_STEPS
) -> bool | None:
    """Whether some amounts A_i of Z_n, |A_i| <= k_i for the groups ``shape``, have a
    sumset ({0} + A_1) + ({0} + A_2) + ... that holds ``offsets`` (mod n). False proves
    that no kernel whose rotations form exactly the groups ``shape`` (k_i distinct amounts
    on one source each) and that has no library sum reads those offsets of one input at
    one output slot.
    None when the search runs out of ``steps``: nothing is claimed.

    Proof that False is a proof. A path from the input to the output passes at most one
    rotation of each group (:func:`porcupine.search.bounds.rotations_us`), and no other
    instruction shifts slots (no sums), so the slot it reads is the output's plus the sum
    of the amounts it takes, one of ({0} + A_1) + ... (0: the group's rotation not taken).
    A variable the output's polynomial holds is reached by a path (whatever cancels
    elsewhere, a monomial comes from some path: none comes from nothing), so every
    offset the output reads lies in the sumset. Cancellations, ct*pt multiplies by any
    plaintext, masks and products only remove or scale paths; they add none.

    Why the search below is exhaustive. Pad each group to exactly k_i amounts with 0s (the
    sumset is unchanged), and count the prod (1 + k_i) tuples of choices: at least |R| of
    them (R the offsets) have distinct sums in R, so at most W = prod (1 + k_i) - |R| are
    *wasted* (a sum outside R, or one an earlier tuple has). Tuples over some of the
    amounts (the rest taken as 0: not chosen) are tuples of the whole, so their waste
    never exceeds W: a branch is cut when it does. Each amount is either an *insider*
    (in R, not 0) or an *outsider* (0 or outside R: its own tuple, alone, is wasted).
    The groups but the largest (the last) take their insiders as sorted combinations of
    R - {0} and a count of outsiders (each costs one waste to come), then the outsiders
    one by one: an outsider x of group i whose tuples x + t with the head's other groups
    (t among their T sums) held no offset would waste all T of them, so when that exceeds
    the budget left x is one of R - T; else x could be any of Z_n, and the search gives up
    (None: no claim) rather than try them all. The last group is
    chosen by cover: the least offset r not yet in the sumset is the sum of a tuple that
    takes one of the last group's amounts not yet chosen (the rest of the tuple lies in
    the head, all chosen), so that amount is r - h for some sum h of the head: every
    candidate is tried. Two head groups of one size and one count of outsiders may be
    swapped in any solution, so their insiders are taken in order."""
    everything = (1 << n) - 1
    reads = sum(1 << (o % n) for o in set(offsets))
    count = reads.bit_count()
    spare = prod(1 + k for k in shape) - count
    if spare < 0:
        return False
    order = sorted(shape)
    head, last = order[:-1], order[-1]
    inside = [o for o in range(1, n) if reads >> o & 1]
    spent = [0]

    def rot(mask: int, by: int) -> int:  # the set {s + by mod n}
        by %= n
        return ((mask << by) | (mask >> (n - by))) & everything if by else mask

    def waste(mask: int, tuples: int) -> int:
        return tuples - (mask & reads).bit_count()

    def sumset(groups: list[list[int]]) -> tuple[int, int]:
        mask, tuples = 1, 1
        for g in groups:
            mask = _united(mask, g, rot)
            tuples *= 1 + len(g)
        return mask, tuples

    def step() -> None:
        spent[0] += 1
        if spent[0] > steps:
            raise _Spent

    def finish(base: int, tuples: int) -> bool:
        sums = _members(base)

        def cover(mask: int, chosen: int) -> bool:
            step()
            missing = reads & ~mask
            if not missing:
                return True
            if chosen == last:
                return False
            r = (missing & -missing).bit_length() - 1  # the least offset not covered
            for x in sorted({(r - h) % n for h in sums}):
                more = mask | rot(base, x)
                if waste(more, tuples * (chosen + 2)) <= spare and cover(more, chosen + 1):
                    return True
            return False

        return cover(base, 0)

    def outsiders(groups: list[list[int]], pending: list[int]) -> bool:
        if not pending:
            return finish(*sumset(groups))
        i, rest = pending[0], pending[1:]
        mask, tuples = sumset(groups)
        others, many = sumset([g for j, g in enumerate(groups) if j != i])
        if waste(mask, tuples) + len(rest) + many <= spare:
            raise _Spent  # x could be any of Z_n: too many to try; claim nothing
        candidates = {(r - t) % n for r in _members(reads) for t in _members(others)}
        for x in sorted(candidates - set(inside)):
            step()
            grown = [list(g) for g in groups]
            grown[i].append(x)
            if waste(*sumset(grown)) + len(rest) <= spare and outsiders(grown, rest):
                return True
        return False

    def walk(i: int, groups: list[list[int]], mask: int, tuples: int, outs: list[int]) -> bool:
        if i == len(head):
            return outsiders(groups, [j for j, o in enumerate(outs) for _ in range(o)])
        for o in range(head[i] + 1):
            if sum(outs) + o > spare:
                break
            for combo in combinations(inside, head[i] - o):
                if i and head[i - 1] == head[i] and (outs[-1], groups[-1]) > (o, list(combo)):
                    continue  # the swapped pair is tried instead
                step()
                grown = _united(mask, combo, rot)
                more = tuples * (1 + len(combo))
                if waste(grown, more) + sum(outs) + o > spare:
                    continue
                if walk(i + 1, [*groups, list(combo)], grown, more, [*outs, o]):
                    return True
        return False

    try:
        return walk(0, [], 1, 1, [])
    except _Spent:
        return None


def grown_shapes(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The groupings one step above ``shape`` (sorted): one group one amount larger, or one
    more group of one. A kernel whose groups hold ``shape``'s (each group of ``shape``
    matched to one of its own at least as large) but are not exactly ``shape`` holds one of
    these: it has a group no group of ``shape`` is matched to (one more group of one at
    least), or a matched group larger than its match."""
    grown = {tuple(sorted((*shape[:i], k + 1, *shape[i + 1 :]))) for i, k in enumerate(shape)}
    return sorted(grown | {tuple(sorted((1, *shape)))})


def _members(mask: int) -> list[int]:
    """The set bits of ``mask``: the set it stands for."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def _united(mask: int, amounts: Iterable[int], rot: Callable[[int, int], int]) -> int:
    """``mask`` united with its rotations by ``amounts``: the sumset with {0} + amounts."""
    out = mask
    for a in amounts:
        out |= rot(mask, a)
    return out
