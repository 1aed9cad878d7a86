"""Writing spec syntax from what the compiler derived: the automatic stages
(:mod:`porcupine.staging.decompose`) and the client packings (:mod:`porcupine.layouts.packing`) are
ordinary specs, built as syntax trees, so every later step takes them as it takes a
user's."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from quill.poly import Poly, PolyRing
from quill.ranges import residue
from quill.spec_ast import BinOp, Expr, Name, Neg, Num, Pow
from quill.spec_eval import (
    Add,
    Const,
    InputSlot,
    Mul,
    Negate,
    Power,
    StageSlot,
    Sub,
    Term,
    evaluator,
)


def number(c: int) -> Expr:
    """The literal for ``c`` mod t, as the integer of least magnitude."""
    c = residue(c)
    return Num(c) if c >= 0 else Neg(Num(-c))


def total(parts: list[Expr]) -> Expr:
    """``parts[0] + parts[1] + ...``."""
    out = parts[0]
    for p in parts[1:]:
        out = BinOp("+", out, p)
    return out


def shifted(var: str, delta: int) -> Expr:
    """``var + delta`` (or ``var - |delta|``, or ``var``)."""
    if delta == 0:
        return Name(var)
    return BinOp("+" if delta > 0 else "-", Name(var), Num(abs(delta)))


def term_expr(t: Term, leaf: Callable[[InputSlot | StageSlot], Expr]) -> Expr:
    """An unrolled term as a formula, each read written by ``leaf``."""

    def go(x: Term) -> Expr:
        if isinstance(x, (InputSlot, StageSlot)):
            return leaf(x)
        if isinstance(x, Const):
            return number(x.value)
        if isinstance(x, Add):
            return total([go(p) for p in x.parts])
        if isinstance(x, Sub):
            return BinOp("-", go(x.left), go(x.right))
        if isinstance(x, Mul):
            return BinOp("*", go(x.left), go(x.right))
        if isinstance(x, Negate):
            return Neg(go(x.operand))
        assert isinstance(x, Power)
        return Pow(go(x.base), x.exponent)

    return go(t)


class Leaves:
    """A term's reads as polynomial variables, numbered in the order they are first read."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, int], int] = {}
        self.leaves: list[tuple[str, int]] = []

    def var(self, name: str, slot: int) -> Poly:
        key = (name, slot)
        if key not in self.ids:
            self.ids[key] = len(self.leaves)
            self.leaves.append(key)
        return {(self.ids[key],): 1}


class _Source(Mapping[str, Any]):
    """Inputs and stages as :func:`quill.spec_eval.evaluator` reads them, made of variables."""

    def __init__(self, leaves: Leaves) -> None:
        self.leaves = leaves

    def __getitem__(self, name: str) -> Any:
        return _Reads(self.leaves, name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class _Reads:
    def __init__(self, leaves: Leaves, name: str) -> None:
        self.leaves, self.name = leaves, name

    def __getitem__(self, slot: int) -> Poly:
        return self.leaves.var(self.name, slot)


def polynomial(t: Term, leaves: Leaves) -> Poly:
    """``t``'s polynomial over Z_T, each read a variable of ``leaves``."""
    source = _Source(leaves)
    poly: Poly = evaluator(PolyRing(), source, source)(t)
    return poly
