"""A stencil's weights through rotation groups that must take every choice they offer
(issue 24: smooth5 and gaussian3).

* :func:`rotated_paths`, a term of the lower bound (:mod:`porcupine.search.bounds`): a
  kernel with one rotation group of exactly the read's amounts and no multiply pays for
  the weights at the rotated offsets too, not only at offset 0
  (:func:`~porcupine.search.bound_terms.unrotated_binary`). smooth5 ``[1, 4, 6, 4, 1]``:
  seven additions, not six.
* :class:`Stencil` and :func:`stencil_circuit`: with a multiply by a plaintext, path
  counting says nothing (a path is worth any element of Z_t, 3/2 as well as 4). Such a
  kernel is reduced, at one output slot, to a straight-line program over Z[pi] (exact
  when the spec has an interior: :class:`Stencil`), and every program of a few
  instructions is tried. Too slow for the bound (smooth5's four additions and a
  multiply: exhausted in about 5 to 13 s, values up to sign and mirror images one state;
  gaussian3's two groups, four additions and a multiply: 90 s), so it is a check run by
  hand and by the tests, not a term.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import combinations
from math import gcd, prod

from porcupine.search.bound_terms import single_input
from quill.ranges import residue
from quill.slots import T, normalize_amount
from quill.verify import Reference

Value = tuple[int, ...]
"""A value of the scalar model: the coefficients (over Z, of degree at most 1 in pi) of the
symbols x_o, o in R, the constant parts first, then the parts times pi."""


@dataclass(frozen=True)
class Stencil:
    """The largest read R of a :func:`~porcupine.search.bound_terms.single_input` spec
    without constant terms (0 first among its offsets; weighing 0 when the read does not
    hold it, for :func:`stencil_of` with ``uniform`` only), and for which kernels the
    scalar model is exact at some output slot.

    The scalar model. Take a kernel with no library sum, at most one ct*pt multiply m (by
    a plaintext p), the rest additions, subtractions and negations, and rotation groups
    (:func:`porcupine.search.bounds.rotations_us`) offering exactly |R| tuples of choices,
    all needed (:func:`stencil_groups`): each offset of R is reached by one tuple t, o(t)
    the sum of its amounts. Call an output slot *matching* when it reads exactly R's
    offsets with R's weights, M the matching slots. Then at some matching slot k the
    kernel computes, for one element pi of Z_t, what the program over Z[pi] with the same
    instructions computes (a slot-wise op is itself; a multiply by p is one by pi; a
    rotation by a moves each symbol x_o to x_{o+a}), when

    * p is a splat constant pi (``uniform``: a sketch's constants), at every slot of M;
    * ``one``: the kernel has one group (source c) and (a) some k in M has every k + o
      (o in R) read at some offset a != 0 by a slot of M, and (b) the offsets of R - {0}
      are connected by "some slot is read at a by one slot of M and at b by another";
    * ``many``: R - R lies in M - M (mod n), at every slot of M.

    Proof. Along a path from x to the output, a multiply by p reads p at the output slot
    plus the amounts the path takes after m; with one multiply, the coefficient of
    x[k + o(t)] at slot k is I_t + P_t p[k + s_t] (the sums of the signs over the paths
    of tuple t that avoid m and that pass it, integers the same at every slot; s_t the
    sum of t's amounts in the groups whose source m precedes, itself o of a tuple, so in
    R). For ``many``: where P_t != 0, p[k + s_t] = (w - I_t) / P_t = pi_t at every k in M,
    and two such tuples meet at one slot (s_t - s_t' in R - R is k' - k'' for k', k'' in
    M), so pi_t = pi_t': p is one pi wherever it counts. For ``one``: c[j] = zeta_j x[j]
    (c precedes every rotation), zeta_j = gamma + delta p[j]; the coefficient of x[k' + a]
    at k' in M is zeta_{k'+a} T_a(k'), T_a the sum over paths from rot(c, a). If m
    precedes c, no path after a rotation passes it and T_a = tau_a is an integer the same
    at every slot; a slot j read at a and at b gives zeta_j tau_a = w_a, zeta_j tau_b =
    w_b, so tau_a / tau_b = w_a / w_b, by (b) tau = w / lambda for one lambda: every slot
    read at some a != 0 has zeta_j = lambda, by (a) every k + o, so p[k + o] = (lambda -
    gamma) / delta for all o if delta != 0 (else c does not read p). If m does not precede
    c, zeta is gamma and p is read at k only. Other ops: additions of plaintexts only add
    constants that cancel in a linear output (dropping them all leaves the linear part);
    rotations by 0 are the identity."""

    offsets: tuple[int, ...]  # R, mod n: 0 first, then the others in order
    weights: tuple[int, ...]  # the weight (centred mod t) at each of them
    n: int
    one: bool = True  # the scalar model holds for kernels with one group
    many: bool = True  # ... and for kernels with any groups


def _read(ref: Reference, slot: int) -> dict[int, int]:
    """The offsets (mod n) at which output ``slot`` reads the input, with their weights
    (centred mod t); empty when a monomial is not one input variable."""
    var_slot, n = ref.sym.var_slot, ref.spec.n
    out: dict[int, int] = {}
    for m, c in ref.polys[slot].items():
        if len(m) != 1:
            return {}
        out[normalize_amount(var_slot[m[0]][1] - slot, n) % n] = residue(c)
    return out


def stencil_of(ref: Reference, uniform: bool = False) -> Stencil | None:
    """The spec's :class:`Stencil`, if it has one and the scalar model holds for some
    kernels; with ``uniform``, for kernels whose plaintexts are all splat constants (a
    sketch's: :attr:`~porcupine.search.restrictions.Restrictions.constants`), or none (the
    path terms, which ask no pinning). With ``uniform`` the read need not hold offset 0: its
    weight there is then 0 (Sobel's gx, whose centre column weighs 0). Without, it must:
    conditions (a) and (b) of the scalar model read the slots at offsets other than 0,
    and were proven for a centre that is read; a zero centre is not claimed there."""
    if not single_input(ref) or not ref.polys:
        return None
    n = ref.spec.n
    reads = {slot: _read(ref, slot) for slot in ref.polys}
    largest = max(reads.values(), key=len)
    if (0 not in largest and not uniform) or len(largest) < 2 or any(not r for r in reads.values()):
        return None
    offsets = (0, *sorted(set(largest) - {0}))
    weights = tuple(largest.get(o, 0) for o in offsets)  # a centre not read weighs 0
    if uniform:
        return Stencil(offsets, weights, n)
    matching = {slot for slot, r in reads.items() if r == largest}
    rotated = offsets[1:]
    pinned = {(s + a) % n for s in matching for a in rotated}
    one = any(all((k + o) % n in pinned for o in offsets) for k in matching)  # (a)
    linked, frontier = {rotated[0]}, [rotated[0]]
    while frontier and one:  # (b): the offsets one slot links
        a = frontier.pop()
        for b in rotated:
            if b not in linked and any((s + a - b) % n in matching for s in matching):
                linked.add(b)
                frontier.append(b)
    one = one and len(linked) == len(rotated)
    apart = {(s - r) % n for s in matching for r in matching}
    many = all((a - b) % n in apart for a in offsets for b in offsets)
    return Stencil(offsets, weights, n, one, many) if one or many else None


STENCIL_STEPS = 400_000
"""How many states :func:`stencil_circuit` tries before it gives up (and claims nothing)."""


STENCIL_OFFSETS = 16
"""Reads of more offsets are not tried (:func:`stencil_groups`): their programs are too many."""


@cache
def stencil_circuit(
    stencil: Stencil,
    groups: tuple[tuple[int, ...], ...],
    adds: int,
    multiply: bool,
    steps: int = STENCIL_STEPS,
) -> bool | None:
    """Whether a program of the scalar model (:class:`Stencil`) with at most ``adds``
    additions and subtractions (negations free), at most one multiply by pi if ``multiply``
    (else none), and one rotation step per group of ``groups`` (amounts) computes the
    stencil's weights for some pi in Z_t. False proves that no kernel whose rotations form
    exactly those groups does (with :func:`stencil_groups`' amounts, when the scalar
    model holds); None: the search ran out of ``steps``, no claim.

    A rotation step takes a value v computed before it and makes, for each amount a of the
    group, v with every symbol x_o moved to x_{o+a} (a rotation of that ciphertext at the
    output slot); a step whose moves leave R is skipped: every path of such a kernel
    reaches an offset of R (its tuple's sum), so no value holds a symbol outside R.

    Why the search is exhaustive. Every such program can be shortened to one in which
    every value but the output is an operand of a later instruction (drop the rest), no
    value is 0 or computed twice (use the first), and the output comes last; the search
    tries every instruction at every step (add of any two values, either difference,
    negation, the multiply once of a value without pi, each rotation step once from any
    value) and cuts only such programs: a value equal to 0 or to an earlier one, and a
    state whose values not yet used cannot all be used in the additions left (an addition
    uses at most two and makes one; a rotation step of k makes k and uses one). States
    reached twice (the same values, used or not, and the same budget) are tried once:
    what can follow does not depend on the order that made them.

    Values are taken up to sign (:func:`_signless`), with no negation and one difference
    per pair: dropping a program's negations and reading each value as +-itself gives a
    program of these steps with no more additions (a sum or difference of +-a and +-b is
    +-(a + b) or +-(a - b); the multiply and the rotations commute with the sign), whose
    output is +-the weights, which is what is tested. Where mirroring (x_o to x_{-o},
    :func:`_mirror`) keeps R, its weights and the groups, a state and its mirror image are
    one: each program from one is mirrored by one from the other."""
    offsets, n = stencil.offsets, stencil.n
    width = len(offsets)
    index = {o: i for i, o in enumerate(offsets)}
    moves = [[tuple(index.get((o + a) % n, -1) for o in offsets) for a in g] for g in groups]
    target = tuple(w % T for w in stencil.weights)
    zero: Value = (0,) * (2 * width)
    seen: set[tuple[object, ...]] = set()
    mirror = _mirror(stencil, groups)
    spent = [0]

    def solves(v: Value) -> bool:
        alpha, beta = v[:width], v[width:]
        pi = next(
            (
                (w - a) * pow(b, -1, T) % T
                for a, b, w in zip(alpha, beta, target, strict=True)
                if b % T
            ),
            0,
        )
        return all((a + b * pi - w) % T == 0 for a, b, w in zip(alpha, beta, target, strict=True))

    def reaches(values: list[Value], doublings: int, todo: int) -> bool:
        # With no multiply to come the output is sum P_l v_l over the values l (P_l the
        # signed paths from l, at most 2^F each, F the doublings: the additions beyond
        # those that use up the unused values); at a symbol no value holds with pi, each
        # weight must be within 2^F sum |v_l| (mod t too, as |w| <= t / 2). With rotation
        # steps to come, only at x_0, which no rotation reaches (0 is no tuple but the
        # empty one's).
        if doublings < 0:
            return False
        return all(
            abs(w) <= sum(abs(v[i]) for v in values) << doublings
            for i, w in enumerate(stencil.weights)
            if not any(v[width + i] for v in values) and not (todo and i)
        )

    def later(todo: int) -> int:  # the unused values the steps to come add at least
        return sum(len(g) - 1 for j, g in enumerate(groups) if todo >> j & 1)

    def walk(values: list[Value], used: list[bool], left: int, mul: bool, todo: int) -> bool:
        key = (tuple(sorted(zip(values, used, strict=True))), left, mul, todo)
        if mirror is not None:  # a state and its mirror image fail alike: one key
            flipped = [_signless(tuple(v[k] for k in mirror)) for v in values]
            key = min(key, (tuple(sorted(zip(flipped, used, strict=True))), left, mul, todo))
        if key in seen:
            return False
        seen.add(key)
        spent[0] += 1
        if spent[0] > steps:
            raise _Spent
        if not mul and not reaches(values, left - used.count(False) + 1 - later(todo), todo):
            return False

        def grow(v: Value, uses: tuple[int, ...], cost: int, *, m: bool = mul) -> bool:
            v = _signless(v)
            if v == zero or v in values:
                return False
            now = [u or i in uses for i, u in enumerate(used)] + [False]
            if now.count(False) - 1 + later(todo) > left - cost:
                return False
            if solves(v) or solves(tuple(-c for c in v)):
                return True
            return walk([*values, v], now, left - cost, m, todo)

        count = len(values)
        for g in range(len(groups)):
            if not todo >> g & 1:
                continue
            for i, c in enumerate(values):  # the rotation step of group g, from c
                made = [_moved(c, move, width) for move in moves[g]]
                made = [None if v is None else _signless(v) for v in made]
                fresh = [v for v in made if v is not None and v not in values]
                if None in made:
                    continue
                now = [u or j == i for j, u in enumerate(used)] + [False] * len(fresh)
                rest = todo & ~(1 << g)
                if now.count(False) - 1 + later(rest) <= left and walk(
                    [*values, *fresh], now, left, mul, rest
                ):
                    return True
        if mul:
            for i, v in enumerate(values):
                if not any(v[width:]) and grow(zero[:width] + v[:width], (i,), 0, m=False):
                    return True
        if left == 0:
            return False
        for i in range(count):
            a = values[i]
            for j in range(i, count):
                b = values[j]
                if grow(tuple(p + q for p, q in zip(a, b, strict=True)), (i, j), 1):
                    return True
                if j != i and grow(tuple(p - q for p, q in zip(a, b, strict=True)), (i, j), 1):
                    return True
        return False

    x: Value = (1, *zero[1:])
    try:
        return walk([x], [False], adds, multiply, (1 << len(groups)) - 1)
    except _Spent:
        return None


def _mirror(stencil: Stencil, groups: tuple[tuple[int, ...], ...]) -> tuple[int, ...] | None:
    """The permutation of a :data:`Value`'s coefficients that moves each symbol x_o to
    x_{-o}, when that maps R onto itself with its weights and each group's amounts onto
    themselves (else None): then a program's mirror image (every rotation by a made one by
    -a) computes the same weights with the same groups and counts."""
    n, offsets = stencil.n, stencil.offsets
    index = {o: i for i, o in enumerate(offsets)}
    image = [index.get(-o % n) for o in offsets]
    if any(
        j is None or stencil.weights[j] != w for j, w in zip(image, stencil.weights, strict=True)
    ):
        return None
    if any({-a % n for a in g} != set(g) for g in groups):
        return None
    half = [j for j in image if j is not None]
    return (*half, *(j + len(offsets) for j in half))


def _signless(v: Value) -> Value:
    """``v`` or ``-v``, whichever has its first nonzero coefficient positive: the search
    takes values up to sign (:func:`stencil_circuit`)."""
    return tuple(-c for c in v) if next((c for c in v if c), 0) < 0 else v


def _moved(v: Value, move: tuple[int, ...], width: int) -> Value | None:
    """``v`` with each symbol i moved to ``move[i]``; None if one it holds leaves R (-1)."""
    out = [0] * (2 * width)
    for i, j in enumerate(move):
        if v[i] or v[width + i]:
            if j < 0:
                return None
            out[j], out[width + j] = v[i], v[width + i]
    return tuple(out)


class _Spent(Exception):
    """The step budget of :func:`stencil_circuit` ran out: no claim is made."""


def stencil_groups(
    stencil: Stencil, shape: tuple[int, ...]
) -> list[tuple[tuple[int, ...], ...]] | None:
    """Every choice of amounts for groups of sizes ``shape`` whose sumset ({0} + A_1) + ...
    is exactly R with every tuple of choices at its own offset (prod (1 + k_i) = |R|):
    the amounts of any kernel with exactly those groups, no library sum, that reads R at
    a matching slot (each A_i within R: a tuple of one amount reaches that amount).
    Equal sizes are taken in one order. None (not tried) when the groups offer other than
    |R| tuples, or R has more than :data:`STENCIL_OFFSETS` offsets."""
    size = len(stencil.offsets)
    if prod(1 + k for k in shape) != size or size > STENCIL_OFFSETS:
        return None
    n, want = stencil.n, set(stencil.offsets)
    out: list[tuple[tuple[int, ...], ...]] = []

    def walk(i: int, chosen: tuple[tuple[int, ...], ...], sums: set[int]) -> None:
        if i == len(shape):
            if sums == want:
                out.append(chosen)
            return
        for amounts in combinations(stencil.offsets[1:], shape[i]):
            if i and shape[i - 1] == shape[i] and amounts < chosen[-1]:
                continue
            more = {(s + a) % n for s in sums for a in (0, *amounts)}
            if more <= want and len(more) == len(sums) * (1 + shape[i]):
                walk(i + 1, (*chosen, amounts), more)

    walk(0, (), {0})
    return out


def stencil_adds(
    stencil: Stencil,
    choices: list[tuple[tuple[int, ...], ...]],
    multiply: bool,
    least: int,
    tries: int = 3,
    steps: int = STENCIL_STEPS,
) -> int:
    """The fewest additions (negations free) a kernel of the scalar model whose groups
    take one of ``choices`` needs, at least ``least`` (known otherwise): counts from
    ``least`` on are tried while :func:`stencil_circuit` denies them for every choice,
    ``tries`` at most (no choice at all: no such kernel, ``least + tries`` stands)."""
    for adds in range(least, least + tries):
        if any(stencil_circuit(stencil, g, adds, multiply, steps) is not False for g in choices):
            return adds
    return least + tries


def rotated_paths(stencil: Stencil) -> int:
    """The fewest two-operand instructions (additions, subtractions) of a kernel for the
    stencil's spec whose rotations are one group of exactly the amounts R - {0} (k of
    them) on a source c, with no library sum and no multiply (ct*pt or ct*ct); 0 when the
    count could wrap mod t. With M = max(|w_0|, max_a |w_a| / g), g the gcd of the
    weights w_a at a != 0: min(k + ceil(log2 M), k - 1 + max(ceil(log2(|w_0| + m)),
    ceil(log2(max_a |w_a| / g)))), m = 3 for g odd, else 2. smooth5: 4 + 3 = 7, where
    :func:`~porcupine.search.bound_terms.unrotated_binary` counts 6.

    Proof. Without multiplies the kernel's coefficients are signed path counts (no
    plaintext enters: no pinning is needed, any matching slot will do). zeta, the signed
    count of c's paths from x, is c's coefficient; a path to the output takes at most
    one rotation, so the output reads x[k + a] only through rot(c, a): w_a = zeta tau_a,
    tau_a the signed count of paths from that rotation to the output, and w_0 the signed
    count of paths from x that take no rotation. A kernel below the count has fewer than
    2^B paths from any node (B the count), and 2^(2B) + |w| < t is asked, so these hold
    over Z: zeta divides every w_a, |zeta| <= g, |tau_a| >= |w_a| / g. Cut the rotation
    edges: a graph D whose sources S are x and the k rotations and whose sinks Z are the
    output and c if c != x has no other out-edge (every node reaches the output in the
    kernel). Counting D's edges by heads (one per unary instruction, two per two-operand
    one) and by tails gives binary = |S| - |Z| + F, F the sum of (d - 1) over D's nodes
    of out-degree d >= 1, and a source has at most 2^F paths to the sinks (the product of
    the out-degrees it reaches). If c is not a sink: binary = k + F, F >= ceil(log2 M)
    (|w_0| paths from x, |tau_a| from rot(c, a)). If c is a sink computed by a one-operand
    instruction, that instruction costs one more: k - 1 + 1 + F with F >= ceil(log2(|w_0|
    + 1)), no fewer. If by a two-operand one, both operands come from x (the rotations
    follow c), so x has at least 2 paths to c, as many as zeta mod 2 (odd when g is), and
    |w_0| to the output: F >= ceil(log2(|w_0| + m)); and F >= ceil(log2(|w_a| / g)).
    With w_0 = 0 (a centre not read, :func:`stencil_of` with ``uniform``) c may also be x
    itself and a sink (x's only out-edges the rotations): S = x and the k rotations, Z = x
    and the output, so binary = k - 1 + F, and rot(x, a) has |w_a| paths to the output
    (zeta = 1): F >= ceil(log2(max_a |w_a|)). (Gx's six amounts: 5 + 1 = 6, where the
    other cases count 7.) The cases above hold with w_0 = 0 as they stand."""
    k = len(stencil.offsets) - 1
    w0, rotated = abs(stencil.weights[0]), [abs(w) for w in stencil.weights[1:]]
    g = gcd(*rotated)
    most = max(rotated) // g
    through = k + _log2_ceil(max(w0, most))
    sink = k - 1 + max(_log2_ceil(w0 + (3 if g % 2 else 2)), _log2_ceil(most))
    count = min(through, sink)
    if w0 == 0:  # c = x may be a sink: its paths are the rotations' (zeta = 1)
        count = min(count, k - 1 + _log2_ceil(max(rotated)))
    return count if (1 << (2 * count)) + max(w0, *rotated) < T else 0


def _log2_ceil(n: int) -> int:
    return (n - 1).bit_length() if n > 1 else 0
