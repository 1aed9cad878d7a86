"""A stencil's weights through exact rotation groups and one multiply by a splat constant,
over a sketch's kernels (issue 24: smooth5 and gaussian3).

:func:`splat_adds` is a term of the lower bound over a sketch's kernels
(:func:`porcupine.search.bounds.floor_for` with ``in_sketch``; :func:`scaled_counts` gives
the plans): a sketch multiplies only by its splat constants (smooth5's 4 and 6, gaussian3's
2 and 4), so where :func:`~porcupine.search.stencil_circuits.stencil_circuit` must take
the multiply as one by any pi (and takes minutes), here it is one by an integer kappa, the
program's values are integer vectors, and the search is exhaustive within a fraction of a
second: smooth5's one group of four with a multiply needs six additions (four and five are
denied), gaussian3's two groups of two with a multiply five (four is denied).
"""

from __future__ import annotations

from functools import cache
from typing import Protocol

from porcupine.search.stencil_circuits import Stencil, _mirror, stencil_groups
from quill.ops import OPS, Opcode
from quill.slots import T

Vector = tuple[int, ...]
"""A value at the output slot: its integer coefficients of the symbols x_o, o in R."""

SPLAT_STEPS = 60_000
"""How many states :func:`splat_circuit` tries before it gives up (and claims nothing)."""

SPLAT_TRIES = 2
"""How many counts past the least :func:`splat_adds` tries to deny."""


def splat_circuit(
    stencil: Stencil,
    groups: tuple[tuple[int, ...], ...],
    adds: int,
    kappa: int,
    steps: int = SPLAT_STEPS,
) -> bool | None:
    """Whether a program with at most ``adds`` additions and subtractions (negations
    free), at most one multiply by the integer ``kappa`` and one rotation step per group of
    ``groups`` (amounts) may compute the stencil's weights mod t. False proves that no
    kernel does whose rotations form exactly those groups, with no library sum and no
    ct*ct multiply, and one ct*pt multiply at most, by a splat constant ``kappa`` (any
    ct+pt additions of splat constants); True: not denied; None: the search ran out of
    ``steps``, no claim.

    The model. Every op of such a kernel is slot-wise or a rotation and every plaintext a
    splat, so the kernel is translation-invariant: each value v reads x at slot k + o with
    a weight v_o the same at every slot k (indices mod n). At a slot where the spec reads
    exactly R, the output's weights are the stencil's. An addition adds the weights, a
    multiply by kappa scales them (kappa, an integer, maps to kappa mod t: the program over
    Z maps onto the kernel's mod t), a rotation by a moves x_o to x_{o+a}; a ct+pt addition
    only adds a constant, which the linear output cannot keep (drop them all). With
    groups offering exactly R's tuples (:func:`~porcupine.search.stencil_circuits.
    stencil_groups`), a value's symbols are sums of tuples, so in R.

    Why the search is exhaustive: as :func:`~porcupine.search.stencil_circuits.
    stencil_circuit` (drop unused values, zeros and repeats; values up to sign; a state
    and its mirror image one; states reached twice tried once), here with the multiply by
    one known kappa. Two cuts more. (1) Magnitudes, with the multiply still to come as
    well: a value's paths to the output number at most 2^F (F the out-degree beyond one
    still to come: the additions left less the unused values, plus 1, less the groups'
    own), each worth 1 or kappa, so the output's weight at x_i is within
    max(1, |kappa|) 2^F sum |v_i| over the values v (at x_0 only while rotations are to
    come: they reach x_0 on no path), and |w| <= t / 2. (2) Once every group is taken,
    with at most as many additions left as unused values: every unused value must reach
    the output, E values are used, b additions merge them, and F = b - E + 1 is 0 or 1.
    With F = 0 the program is a tree over the E values (the unused ones, and one used
    value more when b = u, the unused count): each leaf reaches the output by one path,
    worth +-1 or +-kappa. With F = 1 (E = u), by at most two: +-1, +-kappa, or a sum of
    two of them. :func:`_ends` decides whether some choice of these worths per value
    makes the weights: the programs are among them, so a denial is a proof."""
    index = {o: i for i, o in enumerate(stencil.offsets)}
    moves = tuple(
        tuple(tuple(index.get((o + a) % stencil.n, -1) for o in stencil.offsets) for a in g)
        for g in groups
    )
    mirror = _mirror(stencil, groups)
    flip = None if mirror is None else mirror[: len(stencil.offsets)]
    return _search(stencil.weights, moves, flip, adds, kappa, steps)


@cache
def _search(
    weights: tuple[int, ...],
    moves: tuple[tuple[tuple[int, ...], ...], ...],
    flip: tuple[int, ...] | None,
    adds: int,
    kappa: int,
    steps: int,
) -> bool | None:
    """:func:`splat_circuit` on the stencil's weights, each group's moves (the index each
    symbol goes to, -1 out of R) and the mirror image's permutation: the same at every n
    with the same moves, so computed once for an instance and its full size."""
    width = len(weights)
    targets = {tuple(w % T for w in weights), tuple(-w % T for w in weights)}
    scale = max(1, abs(kappa))
    seen: set[tuple[frozenset[tuple[Vector, bool]], int, bool, int]] = set()
    spent = [0]

    def later(todo: int) -> int:  # the unused values the rotation steps to come add
        return sum(len(g) - 1 for j, g in enumerate(moves) if todo >> j & 1)

    def reaches(values: list[Vector], doublings: int, mul: bool, todo: int) -> bool:
        most = (scale if mul else 1) << doublings
        return all(
            abs(w) <= most * sum(abs(v[i]) for v in values)
            for i, w in enumerate(weights)
            if not (todo and i)
        )

    def walk(values: list[Vector], used: list[bool], left: int, mul: bool, todo: int) -> bool:
        key = (frozenset(zip(values, used, strict=True)), left, mul, todo)
        if key in seen:
            return False
        if flip is not None:  # a state and its mirror image fail alike: one is tried
            flipped = [_signless(tuple(v[k] for k in flip)) for v in values]
            if (frozenset(zip(flipped, used, strict=True)), left, mul, todo) in seen:
                return False
        seen.add(key)
        spent[0] += 1
        if spent[0] > steps:
            raise _Spent
        unused = used.count(False)
        doublings = left - unused + 1 - later(todo)
        if doublings < 0 or not reaches(values, doublings, mul, todo):
            return False
        if not todo and left <= unused:
            return _ends(values, used, left, kappa if mul else None, targets)
        ending = not todo and left == unused + 1
        if ending and not _may_end(values, used, kappa if mul else None, targets):
            return False
        present = set(values)

        def grow(v: Vector, uses: tuple[int, ...], cost: int, *, m: bool = mul) -> bool:
            v = _signless(v)
            if v in present or not any(v):
                return False
            now = [u or i in uses for i, u in enumerate(used)] + [False]
            if now.count(False) - 1 + later(todo) > left - cost:
                return False
            if not todo and tuple(c % T for c in v) in targets:
                return True
            return walk([*values, v], now, left - cost, m, todo)

        for g in range(len(moves)):
            if not todo >> g & 1:
                continue
            for i, c in enumerate(values):  # the rotation step of group g, from c
                made = [_moved(c, move) for move in moves[g]]
                if any(v is None for v in made):
                    continue
                fresh = [v for v in made if v is not None and v not in present]
                now = [u or j == i for j, u in enumerate(used)] + [False] * len(fresh)
                rest = todo & ~(1 << g)
                if now.count(False) - 1 + later(rest) <= left and walk(
                    [*values, *fresh], now, left, mul, rest
                ):
                    return True
        if mul:
            for i, v in enumerate(values):
                if grow(tuple(kappa * c for c in v), (i,), 0, m=False):
                    return True
        # an addition leaves one value unused and the additions after it must use all
        # those left: it must itself use ``need`` unused values at least
        need = unused + later(todo) - left + 1
        if left == 0 or need > 2:
            return False
        for i, a in enumerate(values):
            for j in range(i, len(values)):
                if (not used[i]) + (j != i and not used[j]) < need:
                    continue
                b = values[j]
                if grow(tuple(p + q for p, q in zip(a, b, strict=True)), (i, j), 1):
                    return True
                if j != i and grow(tuple(p - q for p, q in zip(a, b, strict=True)), (i, j), 1):
                    return True
        return False

    x: Vector = (1,) + (0,) * (width - 1)
    try:
        return walk([x], [False], adds, True, (1 << len(moves)) - 1)
    except _Spent:
        return None


def _ends(
    values: list[Vector],
    used: list[bool],
    left: int,
    kappa: int | None,
    targets: set[Vector],
) -> bool:
    """Whether the program may end from here (every group taken, ``left`` additions at most
    the unused values: :func:`splat_circuit`, cut 2): some worth per value of the trees
    (F = 0, with one used value more when ``left`` allows) or of F = 1 makes a target
    (mod t). ``kappa``: the multiply is still to come. True (no denial) where the choices
    are too many to try (:data:`SUMS_LIMIT`)."""
    free = [v for v, u in zip(values, used, strict=True) if not u]
    old = [v for v, u in zip(values, used, strict=True) if u]
    one = (1, -1) if kappa is None else (1, -1, kappa, -kappa)
    if _meets(free, one, targets):
        return True
    if left < len(free):
        return False
    two = tuple({0, *one, *(p + q for p in one for q in one)})
    return _meets(free, two, targets) or _meets_with(free, one, old, one, 1, targets)


def _may_end(
    values: list[Vector], used: list[bool], kappa: int | None, targets: set[Vector]
) -> bool:
    """Whether the program may end from here with one addition more than the unused values
    (:func:`splat_circuit`, cut 3): with b additions and E values used, F = b - E + 1, so
    the unused values alone (F <= 2: four paths each at most), one used value more (F <= 1:
    two paths each) or two more (F = 0: a tree). True where the choices are too many."""
    free = [v for v, u in zip(values, used, strict=True) if not u]
    old = [v for v, u in zip(values, used, strict=True) if u]
    one = (1, -1) if kappa is None else (1, -1, kappa, -kappa)
    two = tuple({0, *one, *(p + q for p in one for q in one)})
    four = tuple({p + q for p in two for q in two})
    return (
        _meets(free, four, targets)
        or _meets_with(free, two, old, two, 1, targets)
        or _meets_with(free, one, old, one, 2, targets)
    )


SUMS_LIMIT = 5_000
"""The most choices of worths :func:`_meets` tries for a half (past it: no denial)."""


def _meets(vectors: list[Vector], worths: tuple[int, ...], targets: set[Vector]) -> bool:
    """Whether sum c_j vectors[j], each c_j in ``worths``, is a target mod t (meet in the
    middle); True where a half has more than :data:`SUMS_LIMIT` choices."""
    half = len(vectors) // 2
    if len(worths) ** (len(vectors) - half) > SUMS_LIMIT:
        return True
    width = len(next(iter(targets)))
    firsts = _sums(vectors[:half], worths, width)
    seconds = _sums(vectors[half:], worths, width)
    return any(_minus(t, s) in firsts for s in seconds for t in targets)


def _meets_with(
    vectors: list[Vector],
    worths: tuple[int, ...],
    others: list[Vector],
    other_worths: tuple[int, ...],
    more: int,
    targets: set[Vector],
) -> bool:
    """Whether sum c_j vectors[j] (c_j in ``worths``) plus ``more`` (1 or 2) of ``others``,
    each times one of ``other_worths``, is a target mod t; True past :data:`SUMS_LIMIT`."""
    if not others:
        return False
    if len(worths) ** len(vectors) > SUMS_LIMIT:
        return True
    width = len(next(iter(targets)))
    sums = _sums(vectors, worths, width)
    scaled = {tuple(c * e % T for e in w) for w in others for c in other_worths}
    if more == 1:
        return any(_minus(t, v) in sums for t in targets for v in scaled)
    return any(_minus(_minus(t, s), v) in scaled for t in targets for s in sums for v in scaled)


def _minus(a: Vector, b: Vector) -> Vector:
    return tuple((p - q) % T for p, q in zip(a, b, strict=True))


def _sums(vectors: list[Vector], cs: tuple[int, ...], width: int) -> set[Vector]:
    """Every sum c_j vectors[j] (mod t), each c_j in ``cs``."""
    out: set[Vector] = {(0,) * width}
    for v in vectors:
        out = {tuple((a + c * e) % T for a, e in zip(s, v, strict=True)) for s in out for c in cs}
    return out


def _signless(v: Vector) -> Vector:
    """``v`` or ``-v``, whichever has its first nonzero coefficient positive."""
    return tuple(-c for c in v) if next((c for c in v if c), 0) < 0 else v


def _moved(v: Vector, move: tuple[int, ...]) -> Vector | None:
    """``v`` with each symbol i moved to ``move[i]`` (up to sign); None if one it holds
    leaves R (-1)."""
    out = [0] * len(v)
    for i, j in enumerate(move):
        if v[i]:
            if j < 0:
                return None
            out[j] = v[i]
    return _signless(tuple(out))


class _Spent(Exception):
    """The step budget of :func:`splat_circuit` ran out: no claim is made."""


def splat_adds(
    stencil: Stencil,
    shape: tuple[int, ...],
    constants: tuple[int, ...],
    least: int,
    tries: int = SPLAT_TRIES,
    steps: int | None = None,
) -> int:
    """The fewest additions and subtractions, at least ``least`` (known otherwise), of a
    kernel whose rotations are exactly groups of sizes ``shape`` offering R's tuples (any
    amounts :func:`~porcupine.search.stencil_circuits.stencil_groups` offers: every such
    kernel's are among them), with no library sum, no ct*ct multiply and at most one ct*pt
    multiply, by a splat constant among ``constants``: counts from ``least`` on while
    :func:`splat_circuit` denies them for every choice and constant, ``tries`` at most,
    each search given ``steps`` states (:data:`SPLAT_STEPS` if None).
    ``least`` when the groups offer other than |R| tuples (not counted); no choice at all:
    no such kernel, ``least + tries`` stands."""
    choices = stencil_groups(stencil, shape)
    if choices is None or not constants:
        return least
    steps = SPLAT_STEPS if steps is None else steps
    for adds in range(least, least + tries):
        for groups in choices:
            if any(splat_circuit(stencil, groups, adds, k, steps) is not False for k in constants):
                return adds
    return least + tries


class Bounded(Protocol):
    """What :func:`scaled_counts` reads of a :class:`~porcupine.search.bounds.Floor`."""

    @property
    def stencil(self) -> Stencil | None: ...

    @property
    def splat(self) -> tuple[int, ...] | None: ...


def scaled_counts(
    floor: Bounded, shape: tuple[int, ...], op: Opcode, least: int, ceiling: int
) -> tuple[tuple[int, int], ...]:
    """The (additions, multiplies ``op``) at least of each kind of kernel ``floor`` bounds
    with a multiply ``op`` and rotation groups of sizes ``shape`` (no library sum), ``least``
    additions known otherwise. Where ``op`` is the ct*pt multiply, every plaintext is a
    splat constant (:attr:`~porcupine.search.bounds.Floor.splat`: a sketch's kernels, no
    plaintext input) and the groups offer exactly the stencil's tuples: one multiply and
    :func:`splat_adds` additions (counted up to ``ceiling``), or two multiplies (a kernel
    with a ct*ct multiply is the ct*ct plan's); else ``least`` additions and one multiply."""
    stencil, splat = floor.stencil, floor.splat
    if not OPS[op].multiplies_plaintext or splat is None or stencil is None:
        return ((least, 1),)
    if stencil_groups(stencil, shape) is None:
        return ((least, 1),)
    tries = max(0, ceiling - least)
    return ((splat_adds(stencil, shape, splat, least, tries), 1), (least, 2))
