"""What a sketch's values mean to the solver: one Z3 model per abstraction.

The encoding (:mod:`porcupine.search.encode`) builds a sketch's value at a slot generically: a
leaf, or an op (chosen by a hole) applied to two operands (chosen by holes, rotated by a
hole). A :class:`ValueModel` supplies what varies: the leaf values, a scalar ring in which
the op table's semantics are evaluated (:func:`quill.ops.apply_scalar`), and a selection
(``If``) on its values. So every model derives from the one op table:

* :class:`ExactModel`: the value's polynomial in the input slots, with Z3 bit-vector
  coefficients. Constraining the result's polynomial at an output slot to the spec's is
  exactly "equal for all inputs at that slot" (up to the narrow-width relaxation, see
  :mod:`porcupine.search.cegis`): counterexample-guided search over slots, not inputs.
* :class:`ExampleModel`: the value on concrete narrow example inputs.
* :class:`SupportModel`: which monomials a value may contain (no arithmetic at all); a
  cheap necessary condition that refutes small sketches quickly.
* :class:`DegreeModel`: the value's degree in ciphertext variables (slot-independent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import z3

from quill.algebra import ScalarRing
from quill.ranges import residue
from quill.slots import T

Term = Any  # a Z3 expression, or a Python int/bool standing for a constant one
Monomial = tuple[int, ...]


class ValueModel(Protocol):
    """The solver's view of sketch values in one abstraction."""

    @property
    def ring(self) -> ScalarRing[Any]:
        """The arithmetic of the op table's semantics on this model's values."""
        ...

    @property
    def slot_invariant(self) -> bool:
        """The value does not depend on the slot (it is evaluated at slot 0)."""
        ...

    def leaf(self, name: str, constant: int | None, slot: int) -> Any:
        """The value of a leaf (an input by name, or a constant) at ``slot``."""
        ...

    def ite(self, cond: Any, a: Any, b: Any) -> Any:
        """``a`` if ``cond`` else ``b``."""
        ...

    def select(self, default: Any, cases: Sequence[tuple[Any, Any]]) -> Any:
        """The value of the case whose condition holds, else ``default``: the chain
        ``ite(c_n, v_n, ... ite(c_1, v_1, default))``. The conditions must exclude each
        other (an index hole equal to distinct constants), so a case whose value equals
        the default is left out of the chain without changing its meaning."""
        ...


# --- narrow bit-vector terms with constant folding -----------------------------------
#
# Building a sketch's values makes hundreds of thousands of selections; z3.If and z3's
# operators coerce and inspect their arguments on every call. The terms here are already
# of one sort, so they call Z3's C API directly (the same terms, built several times
# faster).


def _bv_ite(cond: Any, a: Any, b: Any) -> Any:
    ctx = a.ctx
    return z3.BitVecRef(z3.Z3_mk_ite(ctx.ref(), cond.as_ast(), a.as_ast(), b.as_ast()), ctx)


def _bool_ite(cond: Any, a: Any, b: Any) -> Any:
    ctx = cond.ctx
    return z3.BoolRef(z3.Z3_mk_ite(ctx.ref(), cond.as_ast(), a.as_ast(), b.as_ast()), ctx)


def _same(a: Any, b: Any) -> bool:
    """``a`` and ``b`` are the same term (a Python constant, or one Z3 object)."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return a is b


def _chain(default: Any, cases: Sequence[tuple[Any, Any]], ite: Any) -> Any:
    """``ite(c_n, v_n, ... ite(c_1, v_1, default))``, leaving out cases equal to the
    default (the conditions exclude each other)."""
    term = default
    for cond, value in cases:
        if not _same(value, default):
            term = ite(cond, value, term)
    return term


class BitVecTerms:
    """Helpers for ``width``-bit terms that stay Python ints while they are constant, so
    that selections among equal constants and arithmetic on zeros vanish before Z3 sees
    them."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.mask = (1 << width) - 1
        self._consts: dict[int, Any] = {}

    def lift(self, t: Term) -> Any:
        if not isinstance(t, int):
            return t
        t &= self.mask
        c = self._consts.get(t)
        if c is None:
            c = self._consts[t] = z3.BitVecVal(t, self.width)
        return c

    def ite(self, cond: Any, a: Term, b: Term) -> Term:
        if isinstance(a, int) and isinstance(b, int) and (a - b) & self.mask == 0:
            return a & self.mask
        if a is b:
            return a
        return _bv_ite(cond, self.lift(a), self.lift(b))

    def select(self, default: Term, cases: Sequence[tuple[Any, Term]]) -> Term:
        """See :meth:`ValueModel.select` (constants are compared mod 2^width)."""
        if isinstance(default, int):
            default &= self.mask
        term = default
        for cond, value in cases:
            if isinstance(value, int):
                value &= self.mask
            if not _same(value, default):
                term = _bv_ite(cond, self.lift(value), self.lift(term))
        return term

    def add(self, a: Term, b: Term) -> Term:
        if isinstance(a, int) and isinstance(b, int):
            return (a + b) & self.mask
        if isinstance(a, int) and a & self.mask == 0:
            return b
        if isinstance(b, int) and b & self.mask == 0:
            return a
        x, y = self.lift(a), self.lift(b)
        ctx = x.ctx
        return z3.BitVecRef(z3.Z3_mk_bvadd(ctx.ref(), x.as_ast(), y.as_ast()), ctx)

    def neg(self, a: Term) -> Term:
        if isinstance(a, int):
            return -a & self.mask
        return z3.BitVecRef(z3.Z3_mk_bvneg(a.ctx.ref(), a.as_ast()), a.ctx)

    def mul(self, a: Term, b: Term) -> Term:
        if isinstance(a, int) and isinstance(b, int):
            return (a * b) & self.mask
        if isinstance(a, int):
            a, b = b, a
        if isinstance(b, int):
            b &= self.mask
            if b == 0:
                return 0
            if b == 1:
                return a
            if b == self.mask:
                return self.neg(a)
        y = self.lift(b)
        ctx = a.ctx
        return z3.BitVecRef(z3.Z3_mk_bvmul(ctx.ref(), a.as_ast(), y.as_ast()), ctx)


class _BitVecRing:
    """Scalar ring on single narrow terms (the example model)."""

    def __init__(self, bv: BitVecTerms) -> None:
        self.bv = bv

    def const(self, c: int) -> Term:
        return c & self.bv.mask

    def add(self, a: Term, b: Term) -> Term:
        return self.bv.add(a, b)

    def sub(self, a: Term, b: Term) -> Term:
        return self.bv.add(a, self.bv.neg(b))

    def mul(self, a: Term, b: Term) -> Term:
        return self.bv.mul(a, b)

    def neg(self, a: Term) -> Term:
        return self.bv.neg(a)


class ExampleModel:
    """Values on concrete example inputs, mod 2^width; one model per example."""

    slot_invariant = False

    def __init__(self, width: int, inputs: Mapping[str, Sequence[int]]) -> None:
        self.bv = BitVecTerms(width)
        self.ring = _BitVecRing(self.bv)
        self.inputs = inputs

    def leaf(self, name: str, constant: int | None, slot: int) -> Term:
        raw = constant if constant is not None else self.inputs[name][slot]
        return raw & self.bv.mask

    def ite(self, cond: Any, a: Term, b: Term) -> Term:
        return self.bv.ite(cond, a, b)

    def select(self, default: Term, cases: Sequence[tuple[Any, Term]]) -> Term:
        return self.bv.select(default, cases)


# --- polynomials with solver coefficients ------------------------------------------------

Poly = dict[Monomial, Term]


class _PolyRing:
    """Polynomials whose coefficients are narrow terms, truncated above ``degree`` (a
    quotient ring, so truncation commutes with every op) and with x^2 = x for bits."""

    def __init__(self, bv: BitVecTerms, degree: int, bits: frozenset[int]) -> None:
        self.bv, self.degree, self.bits = bv, degree, bits
        self._products: dict[tuple[Monomial, Monomial], Monomial | None] = {}

    def const(self, c: int) -> Poly:
        return {(): c & self.bv.mask} if c & self.bv.mask else {}

    def add(self, a: Poly, b: Poly) -> Poly:
        out = dict(a)
        for m, c in b.items():
            out[m] = self.bv.add(out[m], c) if m in out else c
        return out

    def neg(self, a: Poly) -> Poly:
        return {m: self.bv.neg(c) for m, c in a.items()}

    def sub(self, a: Poly, b: Poly) -> Poly:
        return self.add(a, self.neg(b))

    def mul(self, a: Poly, b: Poly) -> Poly:
        out: Poly = {}
        for ma, ca in a.items():
            for mb, cb in b.items():
                m = self.product(ma, mb)
                if m is None:
                    continue
                term = self.bv.mul(ca, cb)
                out[m] = self.bv.add(out[m], term) if m in out else term
        return out

    def product(self, ma: Monomial, mb: Monomial) -> Monomial | None:
        """The monomial ``ma * mb``, None if it is truncated (above the degree)."""
        key = (ma, mb)
        if key in self._products:
            return self._products[key]
        m: Monomial | None = self.monomial(ma + mb)
        if m is not None and len(m) > self.degree:
            m = None
        self._products[key] = m
        return m

    def monomial(self, vs: tuple[int, ...]) -> Monomial:
        ordered = sorted(vs)
        if self.bits:  # x^2 = x: one copy of each bit variable
            ordered = [
                v for k, v in enumerate(ordered) if v not in self.bits or ordered[k - 1 : k] != [v]
            ]
        return tuple(ordered)


class ExactModel:
    """A value's polynomial in the input slot variables, coefficients as narrow terms."""

    slot_invariant = False

    def __init__(
        self,
        width: int,
        variables: Mapping[tuple[str, int], int],
        degree: int,
        bits: frozenset[int],
    ) -> None:
        self.bv = BitVecTerms(width)
        self.ring = _PolyRing(self.bv, degree, bits)
        self.variables = variables  # (input, slot) -> variable id; absent: the slot is 0

    def leaf(self, name: str, constant: int | None, slot: int) -> Poly:
        if constant is not None:
            return self.ring.const(constant)
        v = self.variables.get((name, slot))
        return {} if v is None else {(v,): 1}

    def ite(self, cond: Any, a: Poly, b: Poly) -> Poly:
        out: Poly = {}
        for m in a.keys() | b.keys():
            t = self.bv.ite(cond, a.get(m, 0), b.get(m, 0))
            if not (isinstance(t, int) and t == 0):
                out[m] = t
        return out

    def select(self, default: Poly, cases: Sequence[tuple[Any, Poly]]) -> Poly:
        """One selection per monomial, over the cases whose coefficient differs from the
        default's (a monomial usually appears in few of them)."""
        monomials = dict.fromkeys(default)
        for _, p in cases:
            monomials.update(dict.fromkeys(p))
        out: Poly = {}
        for m in monomials:
            t = self.bv.select(default.get(m, 0), [(c, p.get(m, 0)) for c, p in cases])
            if not (isinstance(t, int) and t == 0):
                out[m] = t
        return out

    def equal(self, got: Poly, want: Mapping[Monomial, int]) -> list[Any]:
        """Constraints that ``got`` has the coefficients of ``want`` (integers mod T, read
        centred and reduced to the narrow width)."""
        out = []
        for m in got.keys() | want.keys():
            c = residue(want.get(m, 0))
            g = got.get(m, 0)
            if isinstance(g, int):
                if (g - c) & self.bv.mask:
                    out.append(z3.BoolVal(False))
            else:
                out.append(g == self.bv.lift(c))
        return out


# --- boolean support -------------------------------------------------------------------

Support = dict[Monomial, Any]  # monomial -> "may be present" (a Z3 Bool or Python True)


def _bool_op(mk: Any, a: Any, b: Any) -> Any:
    ctx = a.ctx
    args = (z3.Ast * 2)(a.as_ast(), b.as_ast())
    return z3.BoolRef(mk(ctx.ref(), 2, args), ctx)


def _or(a: Any, b: Any) -> Any:
    if a is True or b is True:
        return True
    return _bool_op(z3.Z3_mk_or, a, b)


def _any(ps: Sequence[Any]) -> Any:
    ctx = ps[0].ctx
    args = (z3.Ast * len(ps))(*(p.as_ast() for p in ps))
    return z3.BoolRef(z3.Z3_mk_or(ctx.ref(), len(ps), args), ctx)


def _bool(p: Any) -> Any:
    return z3.BoolVal(p) if isinstance(p, bool) else p


def _and(a: Any, b: Any) -> Any:
    if a is True:
        return b
    if b is True:
        return a
    return _bool_op(z3.Z3_mk_and, a, b)


class _SupportRing:
    """Monomials a value may contain: cancellation is ignored, so this over-approximates
    the true support (add and sub unite, mul multiplies monomials)."""

    def __init__(self, poly: _PolyRing) -> None:
        self.poly = poly

    def const(self, c: int) -> Support:
        return {(): True} if c % T else {}

    def add(self, a: Support, b: Support) -> Support:
        out = dict(a)
        for m, p in b.items():
            out[m] = _or(out[m], p) if m in out else p
        return out

    def sub(self, a: Support, b: Support) -> Support:
        return self.add(a, b)

    def neg(self, a: Support) -> Support:
        return a

    def mul(self, a: Support, b: Support) -> Support:
        # A monomial's products are gathered first and joined in one Or (the nested binary
        # Ors this replaces were most of the time spent on deep sketches); None: present.
        acc: dict[Monomial, list[Any] | None] = {}
        for ma, pa in a.items():
            for mb, pb in b.items():
                m = self.poly.product(ma, mb)
                if m is None or (m in acc and acc[m] is None):
                    continue
                p = _and(pa, pb)
                if p is True:
                    acc[m] = None
                else:
                    acc.setdefault(m, []).append(p)  # type: ignore[union-attr]
        out: Support = {}
        for m, ps in acc.items():
            out[m] = True if ps is None else ps[0] if len(ps) == 1 else _any(ps)
        return out


class SupportModel:
    """Which monomials of the input slot variables a value may contain."""

    slot_invariant = False

    def __init__(
        self, variables: Mapping[tuple[str, int], int], degree: int, bits: frozenset[int]
    ) -> None:
        self.ring = _SupportRing(_PolyRing(BitVecTerms(1), degree, bits))
        self.variables = variables

    def leaf(self, name: str, constant: int | None, slot: int) -> Support:
        if constant is not None:
            return self.ring.const(constant)
        v = self.variables.get((name, slot))
        return {} if v is None else {(v,): True}

    def ite(self, cond: Any, a: Support, b: Support) -> Support:
        out: Support = {}
        for m in a.keys() | b.keys():
            pa, pb = a.get(m, False), b.get(m, False)
            out[m] = pa if pa is pb else z3.If(cond, pa, pb)
        return out

    def select(self, default: Support, cases: Sequence[tuple[Any, Support]]) -> Support:
        """One selection per monomial, as :meth:`ExactModel.select` (absent is False)."""
        monomials = dict.fromkeys(default)
        for _, p in cases:
            monomials.update(dict.fromkeys(p))
        out: Support = {}
        for m in monomials:
            d = default.get(m, False)
            term = d
            for cond, p in cases:
                q = p.get(m, False)
                if q is not d:
                    term = _bool_ite(cond, _bool(q), _bool(term))
            out[m] = term
        return out

    def contains(self, got: Support, monomials: Sequence[Monomial]) -> list[Any]:
        """Constraints that ``got`` may contain every monomial of ``monomials``."""
        out = [got.get(m, False) for m in monomials]
        return [z3.BoolVal(p) if isinstance(p, bool) else p for p in out]


# --- degree in ciphertext variables ------------------------------------------------------


class _DegreeRing:
    def __init__(self, bits: int) -> None:
        self.bits = bits

    def const(self, c: int) -> Any:
        return z3.BitVecVal(0, self.bits)

    def add(self, a: Any, b: Any) -> Any:
        return z3.If(z3.UGT(a, b), a, b)

    def sub(self, a: Any, b: Any) -> Any:
        return self.add(a, b)

    def neg(self, a: Any) -> Any:
        return a

    def mul(self, a: Any, b: Any) -> Any:
        return a + b


class DegreeModel:
    """The syntactic degree of a value in ciphertext variables (a plaintext has 0)."""

    slot_invariant = True
    BITS = 8

    def __init__(self, ciphertexts: frozenset[str]) -> None:
        self.ring = _DegreeRing(self.BITS)
        self.ciphertexts = ciphertexts

    def leaf(self, name: str, constant: int | None, slot: int) -> Any:
        return z3.BitVecVal(1 if name in self.ciphertexts else 0, self.BITS)

    def ite(self, cond: Any, a: Any, b: Any) -> Any:
        return z3.If(cond, a, b)

    def select(self, default: Any, cases: Sequence[tuple[Any, Any]]) -> Any:
        return _chain(default, cases, _bv_ite)
