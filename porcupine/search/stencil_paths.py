"""A stencil's weights through two rotation groups that must take every choice they offer
(issue 24: gaussian3).

:func:`crossed_paths` is a term of the lower bound (:mod:`porcupine.search.bounds`), the
two-group counterpart of :func:`~porcupine.search.stencil_circuits.rotated_paths`: a kernel
whose rotations are exactly two groups offering one tuple of choices per offset of the read,
with no multiply, pays for every weight of the read, not only for the count of its
offsets. gaussian3 ``[[1, 2, 1], [2, 4, 2], [1, 2, 1]]`` with two hoisted groups of two:
six additions, where :func:`~porcupine.search.bounds.fan_in` counts four.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, product
from math import comb

from porcupine.search.stencil_circuits import Stencil, stencil_groups
from quill.slots import T

SPARE_PAIRS = 20_000
"""Past this many pairs of amount sets :func:`spare_groups` is not tried (no claim)."""

NO_KERNEL = 1 << 20
"""What :func:`crossed_paths` returns when no amounts of the shape reach the read: no kernel
with exactly those groups computes the stencil (the plan is not priced by the term then)."""


@dataclass(frozen=True)
class _Counts:
    """The signed path counts (their magnitudes) one factorization of the weights asks of a
    kernel with group ``1`` (source c1) before group ``2`` (source c2): ``zeta`` from x to
    c1, ``sigma0`` from x to c2, ``sigma[a]`` from rot1(a) to c2, ``rho[a]`` from rot1(a)
    to the output, ``tau[b]`` from rot2(b) to the output, ``omega`` from x to the output
    (every path in the graph without rotation edges)."""

    zeta: int
    sigma0: int
    sigma: tuple[int, ...]
    rho: tuple[int, ...]
    tau: tuple[int, ...]
    omega: int


def _divisors(m: int) -> list[int]:
    return [d for d in range(1, m + 1) if m % d == 0] if m else []


def _factorizations(
    weight: dict[tuple[int, int], int], first: tuple[int, ...], second: tuple[int, ...], at_x: bool
) -> list[_Counts]:
    """Every way the magnitudes of ``weight[(a, b)]`` (a in 0 + ``first``, b in 0 +
    ``second``) factor as :class:`_Counts` ask: |W(a, b)| = zeta sigma_a tau_b, |W(0, b)| =
    sigma_0 tau_b, |W(a, 0)| = zeta rho_a, |W(0, 0)| = omega (a, b nonzero); zeta = 1 when
    c1 is x (``at_x``). A column b whose weights are all 0 has tau_b = 0 (else sigma_0
    and every sigma_a are 0, and so every W(a, b') with a, b' nonzero, which
    :func:`crossed_paths` asks not to be); every other tau_b divides the column's gcd."""
    out: list[_Counts] = []
    rotated = [abs(weight[(a, b)]) for a in first for b in (0, *second)]
    common = 0
    for w in rotated:
        common = _gcd(common, w)
    for zeta in [1] if at_x else _divisors(common):
        per_b: list[list[int]] = []
        for b in second:
            g = abs(weight[(0, b)])
            for a in first:
                g = _gcd(g, abs(weight[(a, b)]) // zeta)
            per_b.append(_divisors(g) or [0])
        for tau in product(*per_b):
            sigma0 = {abs(weight[(0, b)]) // t for b, t in zip(second, tau, strict=True) if t}
            sigma = [
                {abs(weight[(a, b)]) // (zeta * t) for b, t in zip(second, tau, strict=True) if t}
                for a in first
            ]
            if len(sigma0) != 1 or any(len(s) != 1 for s in sigma):
                continue
            out.append(
                _Counts(
                    zeta,
                    sigma0.pop(),
                    tuple(s.pop() for s in sigma),
                    tuple(abs(weight[(a, 0)]) // zeta for a in first),
                    tuple(tau),
                    abs(weight[(0, 0)]),
                )
            )
    return out


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def _least_excess(counts: _Counts, at_x: bool, c1_sink: bool, c2_sink: bool) -> int:
    """The least F (:func:`crossed_paths`) a graph with these sinks can have and still offer
    the paths ``counts`` ask."""

    def joined(out: int, to_c2: int) -> int:  # paths to the output and to c2
        return out + to_c2 if c2_sink else max(out, to_c2)

    rot = max(
        max(joined(r, s) for r, s in zip(counts.rho, counts.sigma, strict=True)),
        max(counts.tau),
    )
    to_c1 = counts.zeta if c1_sink and not at_x else 0
    rest = joined(counts.omega, counts.sigma0)
    excess = 0
    while True:
        for inside in range(excess + 1):
            reach = 1 << (excess - inside)
            exits = -(-rest // reach)
            if reach >= rot and to_c1 + exits <= 1 << inside:
                return excess
        excess += 1


def spare_groups(
    stencil: Stencil, shape: tuple[int, int], amounts: tuple[int, ...]
) -> list[tuple[tuple[int, ...], ...]] | None:
    """Every pair of amount sets of sizes ``shape`` drawn from ``amounts`` (a sketch's, mod
    n) whose tuples of choices reach every offset R weighs nonzero: the amounts of any
    kernel of the sketch with exactly those groups (no library sum) that computes the
    stencil, when the groups offer more tuples than R has offsets (:func:`stencil_groups`
    asks exactly as many). None (no claim) when such a pair has two tuples at one offset
    (the weights then do not say each tuple's), or none of its tuples of two rotations
    reads a nonzero weight (nothing then orders the groups), or past :data:`SPARE_PAIRS`."""
    n = stencil.n
    pool = sorted({a % n for a in amounts} - {0})
    if comb(len(pool), shape[0]) * comb(len(pool), shape[1]) > SPARE_PAIRS:
        return None
    weights = dict(zip(stencil.offsets, stencil.weights, strict=True))
    needed = {o for o, w in weights.items() if w}
    out: list[tuple[tuple[int, ...], ...]] = []
    for first in combinations(pool, shape[0]):
        for second in combinations(pool, shape[1]):
            if shape[0] == shape[1] and second < first:
                continue  # equal sizes in one order: crossed_paths tries both
            sums = [(a + b) % n for a in (0, *first) for b in (0, *second)]
            if not needed <= set(sums):
                continue
            if len(set(sums)) < len(sums):
                return None
            if not any(weights.get((a + b) % n) for a in first for b in second):
                return None
            out.append((first, second))
    return out


def crossed_paths(
    stencil: Stencil, shape: tuple[int, int], amounts: tuple[int, ...] | None = None
) -> int:
    """The fewest two-operand instructions (additions, subtractions) of a kernel for the
    stencil's spec whose rotations are exactly two groups of ``shape`` sizes, offering one
    tuple of choices per offset of R (:func:`~porcupine.search.stencil_circuits.stencil_groups`),
    with no library sum and no multiply (ct*pt or ct*ct); 0 when not counted (the counts
    could wrap mod t, or the groups offer other than |R| tuples); :data:`NO_KERNEL` when no
    amounts reach R. With ``amounts`` (a sketch's), groups offering more tuples than R has
    offsets are counted too, over :func:`spare_groups`.

    Proof. Without multiplies the coefficients are signed path counts (any matching slot
    will do). Every tuple of choices is needed, its offset its own, and W(a, b) != 0 for
    a tuple (a, b) with a, b nonzero, so some path takes a rotation of both groups: one
    group's source (c1, group 1) precedes the other's (c2), and no path takes group 2
    before group 1 (a cycle). Cut the rotation edges: a graph D. A path of tuple (a, b) is
    a D-path x -> c1, the rotation, a D-path rot1(a) -> c2, the rotation, a D-path
    rot2(b) -> out, so over Z W(a, b) = zeta sigma_a tau_b, W(0, b) = sigma_0 tau_b,
    W(a, 0) = zeta rho_a, W(0, 0) = omega, the signed D-path counts :class:`_Counts`
    names (c1 = x: zeta = 1); their magnitudes are one of :func:`_factorizations`.
    With :func:`spare_groups`' tuples beyond R's, each tuple still has its own offset, so
    W(a, b) is the weight at a + b, 0 off R, and all of this stands with zero entries; so
    it does for a centre not read (W(0, 0) = 0,
    :func:`~porcupine.search.stencil_circuits.stencil_of`).

    D's sources S are x and the k1 + k2 rotations; its sinks Z the output, and c1 and c2
    when their only out-edges are rotations (c2 != x: it follows a rotation; x, never a
    source of a group but c1, is a sink only as c1, and then reaches nothing in D: omega =
    sigma_0 = 0, so only where W(0, 0) and every W(0, b) are 0). Counting D's edges by
    heads and tails, two-operand instructions = |S| - |Z| + F,
    F the sum of (d - 1) over D's nodes of out-degree d >= 1. A node v has at most
    2^(the F of the nodes it reaches) paths to the sinks (their out-degrees' product, d <=
    2^(d-1)); the paths to distinct sinks are distinct, each at least its signed count.
    Let A be c1 and its D-ancestors, E_A their part of F. No rotation reaches A (c1
    precedes it), so every rotation has at most 2^(F - E_A) paths: at least rho_a +
    sigma_a from rot1(a) when c2 is a sink (the paths to two sinks), else max(rho_a,
    sigma_a) (c2 then has a D-out-edge, and its D-paths end at the output: it reaches
    nothing in A, so not c1; so each D-path to c2 extends to one to the output), tau_b
    from rot2(b). The paths from x leave A by at most 2^E_A prefixes (the same product
    over A), zeta of them ending at c1 when it is a sink, and each other prefix ends at a
    node outside A, which reaches nothing in A: at most 2^(F - E_A) paths each, omega +
    sigma_0 in all when c2 is a sink, else max(omega, sigma_0), likewise. The least
    F that allows this (:func:`_least_excess`), over both orders of the groups, every
    choice of amounts, factorization and set of sinks, bounds the count.

    Over Z: a kernel below the count has F <= count - 1 - |S| + 3, every signed count at
    most 2^F, so each product at most 2^(3F): with 2^(3F) + |w| < t the congruences mod t
    are equalities."""
    choices = stencil_groups(stencil, shape)
    if choices is None and amounts is not None:
        choices = spare_groups(stencil, shape, amounts)
    if choices is None:
        return 0
    weights = dict(zip(stencil.offsets, stencil.weights, strict=True))
    n, sources = stencil.n, 1 + sum(shape)
    best = NO_KERNEL
    for chosen in choices:
        for first, second in (chosen, chosen[::-1]):
            weight = {
                (a, b): weights.get((a + b) % n, 0) for a in (0, *first) for b in (0, *second)
            }
            for at_x, c1_sink, c2_sink in product((True, False), repeat=3):
                sinks = 1 + c1_sink + c2_sink
                for counts in _factorizations(weight, first, second, at_x):
                    if at_x and c1_sink and (counts.omega or counts.sigma0):
                        continue  # x a sink reaches nothing in D
                    excess = _least_excess(counts, at_x, c1_sink, c2_sink)
                    best = min(best, sources - sinks + excess)
    if best == NO_KERNEL:
        return best
    most = max(best + 2 - sources, 0)
    return best if (1 << (3 * most)) + max(map(abs, stencil.weights)) < T else 0
