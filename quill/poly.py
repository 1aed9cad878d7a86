"""Exact symbolic semantics: polynomials over Z_T in the input slots.

Running a Quill program (or a spec's reference) on symbolic inputs gives, for each slot, a
polynomial in the input variables. Two slot functions are equal for all inputs exactly
when their polynomials are equal in canonical form, because

* T is prime and every degree here is far below T, so a polynomial over the field Z_T of
  degree < T in each variable is the zero function only if it is the zero polynomial;
* on bit inputs (domain ``bits``) ``x^2 = x``, and the multilinear form is canonical for
  functions on {0, 1}^m: :class:`PolyRing` reduces bit variables as it multiplies.

This is what lets Porcupine prove a kernel equal to its spec instead of sampling it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from quill.slots import T

Monomial = tuple[int, ...]
"""Sorted variable ids, repeated for powers; ``()`` is the constant monomial."""

Poly = dict[Monomial, int]
"""Non-zero coefficients in [1, T). Treated as immutable once built."""


class PolyRing:
    """Arithmetic on :data:`Poly` mod T; variables in ``bits`` satisfy x^2 = x."""

    def __init__(self, bits: Iterable[int] = ()) -> None:
        self.bits = frozenset(bits)

    def const(self, c: int) -> Poly:
        c %= T
        return {(): c} if c else {}

    def var(self, v: int) -> Poly:
        return {(v,): 1}

    def add(self, a: Poly, b: Poly) -> Poly:
        out = dict(a)
        for m, c in b.items():
            s = (out.get(m, 0) + c) % T
            if s:
                out[m] = s
            else:
                out.pop(m, None)
        return out

    def neg(self, a: Poly) -> Poly:
        return {m: T - c for m, c in a.items()}

    def sub(self, a: Poly, b: Poly) -> Poly:
        return self.add(a, self.neg(b))

    def mul(self, a: Poly, b: Poly) -> Poly:
        out: Poly = {}
        for ma, ca in a.items():
            for mb, cb in b.items():
                m = self._monomial(ma + mb)
                s = (out.get(m, 0) + ca * cb) % T
                if s:
                    out[m] = s
                else:
                    out.pop(m, None)
        return out

    def _monomial(self, vs: tuple[int, ...]) -> Monomial:
        if not self.bits:
            return tuple(sorted(vs))
        # x^2 = x for bits: keep one copy of each bit variable.
        seen: set[int] = set()
        kept = []
        for v in sorted(vs):
            if v in self.bits:
                if v in seen:
                    continue
                seen.add(v)
            kept.append(v)
        return tuple(kept)


def evaluate_at(p: Poly, point: Mapping[int, int]) -> int:
    """The value of ``p`` mod T with variables set by ``point`` (missing ones are 0)."""
    total = 0
    for m, c in p.items():
        term = c
        for v in m:
            term = term * point.get(v, 0) % T
            if not term:
                break
        total += term
    return total % T


def variables(p: Poly) -> set[int]:
    return {v for m in p for v in m}
