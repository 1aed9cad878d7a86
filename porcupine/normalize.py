"""Algebraic normalization: an elementwise spec's formula in its simplest factored form.

A spec says what to compute, not how: ``(a + b) * (c + d) - a * c - b * d`` written out
costs two products and five additions, where its polynomial, ``a d + b c``, costs two
products and one addition. For a spec whose every output slot computes the same polynomial
of its inputs at that slot (elementwise), :func:`normalized_term` reads that polynomial
from the exact reference (constants folded, cancelled terms gone) and factors it by a
greedy multivariate Horner scheme: the input that occurs in the most monomials is taken
out of them (``x q + r``), recursively, so shared factors are multiplied once; what is
left is a sum of monomials, each power by square-and-multiply, negative coefficients
subtracted. The lowering (:func:`porcupine.lowering.lower`) writes both forms out and
keeps the cheaper as the direct kernel that bounds the search; products over Z_t are
refactored after it (:mod:`porcupine.passes.fewer_products`).
"""

from __future__ import annotations

from collections import Counter

from quill.ops import Kind
from quill.ranges import residue
from quill.spec import Spec
from quill.spec_eval import Add, Const, InputSlot, Mul, Power, Sub, Term
from quill.verify import Reference

NamePoly = dict[tuple[str, ...], int]
"""A polynomial over input names: sorted names (repeated for powers) -> coefficient mod T."""

LEAF_SLOT = 0
"""The slot the normalized term's reads name: every read is at the output slot itself, so
the lowering takes each input as it is (see :func:`normalized_term`)."""


def elementwise_polynomial(ref: Reference) -> NamePoly | None:
    """The one polynomial every output slot that matters computes of its inputs at that
    slot, or ``None`` when a slot reads another slot or slots compute different ones."""
    var_slot = ref.sym.var_slot
    common: NamePoly | None = None
    for o, poly in ref.polys.items():
        named: NamePoly = {}
        for m, c in poly.items():
            names = []
            for v in m:
                name, s = var_slot[v]
                if s != o:
                    return None
                names.append(name)
            named[tuple(sorted(names))] = c
        if common is None:
            common = named
        elif named != common:
            return None
    return common


def normalized_term(spec: Spec, ref: Reference) -> Term | None:
    """The factored form of an elementwise spec's polynomial (module docstring), as a term
    whose reads are :class:`InputSlot` (name, :data:`LEAF_SLOT`); ``None`` when the spec is
    not elementwise or has stages."""
    if spec.stages:
        return None
    poly = elementwise_polynomial(ref)
    if poly is None:
        return None
    ct = {d.name for d in spec.inputs if d.kind is Kind.CT}
    return _factored(poly, ct)


def _factored(poly: NamePoly, ct: set[str]) -> Term:
    """Greedy Horner: take out the input in the most monomials while one is in two."""
    occurs = Counter(v for m in poly for v in set(m))
    if occurs:
        # ciphertexts first: a plaintext factor is a cheap ct*pt multiply either way
        best = max(sorted(occurs), key=lambda v: (occurs[v], v in ct))
        if occurs[best] >= 2:
            quotient: NamePoly = {}
            rest: NamePoly = {}
            for m, c in poly.items():
                if best in m:
                    reduced = list(m)
                    reduced.remove(best)
                    quotient[tuple(reduced)] = c
                else:
                    rest[m] = c
            factor = Mul(InputSlot(best, LEAF_SLOT), _factored(quotient, ct))
            return _signed_sum([(factor, 1), *_terms(rest, ct)])
    return _signed_sum(_terms(poly, ct))


def _terms(poly: NamePoly, ct: set[str]) -> list[tuple[Term, int]]:
    """Each monomial as a term and a sign: the magnitude of its centred coefficient as a
    factor (none for 1), powers of one input as :class:`Power`."""
    out: list[tuple[Term, int]] = []
    for m, c in sorted(poly.items()):
        centred = residue(c)
        sign, size = (1, centred) if centred > 0 else (-1, -centred)
        factors: list[Term] = [
            InputSlot(v, LEAF_SLOT) if e == 1 else Power(InputSlot(v, LEAF_SLOT), e)
            for v, e in sorted(Counter(m).items())
        ]
        if not factors:
            out.append((Const(size), sign))
            continue
        term = factors[0]
        for f in factors[1:]:
            term = Mul(term, f)
        out.append((term if size == 1 else Mul(term, Const(size)), sign))
    return out


def _signed_sum(parts: list[tuple[Term, int]]) -> Term:
    """The sum of ``parts``, the negative ones subtracted at the end (no negations)."""
    plus = [t for t, s in parts if s > 0]
    minus = [t for t, s in parts if s < 0]
    if not plus and not minus:
        return Const(0)
    if not plus:
        plus = [Const(0)]
    total = plus[0] if len(plus) == 1 else Add(tuple(plus))
    for t in minus:
        total = Sub(total, t)
    return total
