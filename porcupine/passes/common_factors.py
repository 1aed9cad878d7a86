"""Linear combinations of rotations of one root that share a factor, computed once.

Rotations of one ciphertext compose like powers of a variable: ``rot(rot(p, a), b) =
rot(p, a + b)``, so a form ``sum c_k rot(p, k)`` is a Laurent polynomial ``sum c_k z^k``
over Z_t and a chain of stages is a product of polynomials. Two Sobel gradients,

    gx = (z^-w + 2 + z^w)(z^-1 - z),    gy = (z^-1 + 2 + z)(z^-w - z^w),

share the 2x2 window sum ``b = (1 + z)(1 + z^w)``: once it is computed (2 rotations, 2
additions), each gradient is 4 rotations of b that the two share (3 when one of them is b
itself), where the gradients written alone take 4 rotations each. What is left of the forms
over b, ``z^-1 + z^(-w-1) - 1 - z^-w`` and ``z^-w + z^(-w-1) - 1 - z^-1``, share two partial
sums, ``z^(-w-1) - 1`` and ``z^-1 - z^-w``: the gradients are their sum and difference
(:func:`shared_sums`).

:func:`common_factor_plans` finds the binomials ``1 + c z^d`` (c = 1 or -1) that divide every
form of a group by exact polynomial division, and offers the plans that take out some of
them (each a stage with one rotation and one addition) before each form's quotient, flat;
:mod:`porcupine.passes.rotation_forms` builds and prices them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from quill.slots import T, normalize_amount

Poly = dict[int, int]  # exponent (a rotation amount, centred) -> coefficient mod t
Binomial = tuple[int, int]  # (d, c): 1 + c z^d, d > 0

MAX_FACTORS = 4
"""Binomials taken out together at most (a 2-D stencil's factors are few and small)."""

MAX_PLANS = 4
"""Plans offered per group, the fewest estimated instructions first, and only those
estimated cheaper than the polynomials flat (the pricing picks among them)."""


def divide(p: Poly, factor: Binomial) -> Poly | None:
    """``p / (1 + c z^d)`` when the division is exact, else ``None``."""
    d, c = factor
    if not p:
        return None
    low, high = min(p), max(p)
    q: Poly = {}
    for k in range(low, high - d + 1):
        v = (p.get(k, 0) - c * q.get(k - d, 0)) % T
        if v:
            q[k] = v
    for k in range(max(low, high - d + 1), high + 1):
        if (p.get(k, 0) - c * q.get(k - d, 0)) % T:
            return None
    return q


def common_factor_plans(polys: dict[str, Poly]) -> Iterator[tuple[list[Binomial], dict[str, Poly]]]:
    """``(factors, quotients)``: binomials dividing every polynomial of ``polys``, and what
    is left of each, over up to :data:`MAX_FACTORS` factors, the fewest instructions by
    :func:`_estimate` first, at most :data:`MAX_PLANS` of them."""
    if len(polys) < 2:
        return
    gaps = sorted({abs(a - b) for p in polys.values() for a, b in itertools.combinations(p, 2)})
    # the binomials that divide every polynomial once: only they can be taken out at all
    candidates = [
        (d, c) for d in gaps for c in (1, T - 1) if all(divide(p, (d, c)) for p in polys.values())
    ]
    found: dict[tuple[Binomial, ...], dict[str, Poly]] = {}
    frontier: list[tuple[tuple[Binomial, ...], dict[str, Poly]]] = [((), dict(polys))]
    for _ in range(MAX_FACTORS):
        grown: list[tuple[tuple[Binomial, ...], dict[str, Poly]]] = []
        for chain, quotients in frontier:
            for factor in candidates:
                if chain and factor < chain[-1]:
                    continue  # each multiset of factors once
                divided = {v: divide(p, factor) for v, p in quotients.items()}
                kept = {v: q for v, q in divided.items() if q}
                if len(kept) < len(divided):
                    continue
                key = (*chain, factor)
                found[key] = kept
                grown.append((key, kept))
        # the most promising chains grow further (a bound on the work, not on the result)
        frontier = sorted(grown, key=lambda kv: _estimate(list(kv[0]), kv[1]))[:MAX_PLANS]
    flat = _estimate([], polys)  # the polynomials as they are, each flat
    ranked = sorted(found.items(), key=lambda kv: _estimate(list(kv[0]), kv[1]))
    for chain, quotients in ranked[:MAX_PLANS]:
        if _estimate(list(chain), quotients) < flat:  # the others cannot pay
            yield list(chain), quotients


def _estimate(factors: list[Binomial], quotients: dict[str, Poly]) -> tuple[int, int]:
    """Instructions, then rotations, before shared sums: a rotation and an addition per
    factor, a rotation per exponent of the quotients but 0, an addition per further term."""
    rotations = len(factors) + len({e for q in quotients.values() for e in q if e})
    additions = len(factors) + sum(len(q) - 1 for q in quotients.values())
    return rotations + additions, rotations


def poly_of(terms: dict[int, int], slots: int) -> Poly:
    """A form's terms ``{rotation amount: coefficient}`` as a polynomial with centred
    exponents (a stencil's offsets are small next to the slot count)."""
    out: Poly = {}
    for k, c in terms.items():
        e = normalize_amount(k, slots)
        out[e] = (out.get(e, 0) + c) % T
    return {e: c for e, c in out.items() if c}


def shared_sums(
    combos: list[dict[str, int]],
) -> tuple[list[tuple[str, dict[str, int]]], list[dict[str, int]]]:
    """Partial sums that several combinations share, each to be computed once.

    Greedily, the pair of terms whose coefficients are proportional in the most
    combinations (at least two) becomes a new term ``a (u + r v)``, named ``#k``, in each of
    them (``a`` the coefficient of u in the first, where the new term then has coefficient 1),
    until no pair is shared. Returns the new terms in order (each over earlier names) and
    the combinations over them: gx = a + b - c - d and gy = -a + b - c + d become ``#0 = b -
    c``, ``#1 = a - d``, gx = #0 + #1, gy = #0 - #1."""
    combos = [dict(c) for c in combos]
    made: list[tuple[str, dict[str, int]]] = []
    while True:
        counts: dict[tuple[str, str, int], int] = {}
        for combo in combos:
            names = sorted(combo)
            for i, u in enumerate(names):
                inv = pow(combo[u], T - 2, T)
                for v in names[i + 1 :]:
                    key = (u, v, combo[v] * inv % T)
                    counts[key] = counts.get(key, 0) + 1
        shared = [key for key, n in counts.items() if n >= 2]
        if not shared:
            return made, combos
        u, v, ratio = max(shared, key=lambda key: counts[key])
        users = [c for c in combos if u in c and v in c and c[v] == c[u] * ratio % T]
        a = users[0][u]  # the first user takes the new term with coefficient 1
        name = f"#{len(made)}"
        made.append((name, {u: a, v: a * ratio % T}))
        inv = pow(a, T - 2, T)
        for combo in users:
            combo[name] = combo.pop(u) * inv % T
            del combo[v]
