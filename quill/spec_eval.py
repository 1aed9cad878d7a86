"""Reference semantics of specs: the rings a spec is evaluated in, and the unrolled terms it
is evaluated from (the rings themselves live in :mod:`quill.algebra`).

When a spec is instantiated (:mod:`quill.spec`), every definition is unrolled, for each of
its index tuples that matters, into a :data:`Term`: a small tree whose leaves are constants,
input slots and stage slots, with index arithmetic done and sums expanded. Evaluating a spec
is then a walk over these terms in any :class:`ScalarRing` (ints mod T for the reference,
exact ints, or a symbolic ring such as Z3 terms for the synthesizer). Unrolling once at load
time is also what lets every out-of-range read be reported before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from quill.algebra import ScalarRing

S = TypeVar("S")


# --- unrolled terms ----------------------------------------------------------------------
# slots=True: a 64x64 multi-stage kernel unrolls into a few hundred thousand of these.


@dataclass(frozen=True, slots=True)
class Const:
    value: int


@dataclass(frozen=True, slots=True)
class InputSlot:
    """Slot ``slot`` of input ``name`` (after layout and padding are resolved)."""

    name: str
    slot: int


@dataclass(frozen=True, slots=True)
class StageSlot:
    """Slot ``slot`` of stage ``name``: the stage's term there, evaluated once and shared."""

    name: str
    slot: int


@dataclass(frozen=True, slots=True)
class Add:
    """The sum of two or more terms (n-ary so that unrolled sums stay shallow)."""

    parts: tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class Sub:
    left: Term
    right: Term


@dataclass(frozen=True, slots=True)
class Mul:
    left: Term
    right: Term


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Term


@dataclass(frozen=True, slots=True)
class Power:
    base: Term
    exponent: int


Term = Const | InputSlot | StageSlot | Add | Sub | Mul | Negate | Power


def children(t: Term) -> tuple[Term, ...]:
    """The terms ``t`` is built from, in order (none for a constant or a read)."""
    if isinstance(t, Add):
        return t.parts
    if isinstance(t, (Sub, Mul)):
        return (t.left, t.right)
    if isinstance(t, Negate):
        return (t.operand,)
    if isinstance(t, Power):
        return (t.base,)
    return ()


def leaves(term: Term) -> list[InputSlot | StageSlot]:
    """The input and stage slots ``term`` reads (with repetitions), without recursion."""
    out: list[InputSlot | StageSlot] = []
    todo = [term]
    while todo:
        t = todo.pop()
        if isinstance(t, (InputSlot, StageSlot)):
            out.append(t)
        else:
            todo.extend(children(t))
    return out


def power(ring: ScalarRing[S], base: S, exponent: int) -> S:
    """``base ** exponent`` by square-and-multiply (``exponent >= 0``)."""
    result: S | None = None
    square = base
    while exponent:
        if exponent & 1:
            result = square if result is None else ring.mul(result, square)
        exponent >>= 1
        if exponent:
            square = ring.mul(square, square)
    return ring.const(1) if result is None else result


def evaluator(
    ring: ScalarRing[S],
    inputs: Mapping[str, Sequence[S]],
    stages: Mapping[str, Mapping[int, S]],
) -> Callable[[Term], S]:
    """A function evaluating terms in ``ring``, reading input slots from ``inputs`` and
    stage slots from the already evaluated ``stages``."""

    def ev(t: Term) -> S:
        if isinstance(t, InputSlot):
            return inputs[t.name][t.slot]
        if isinstance(t, Const):
            return ring.const(t.value)
        if isinstance(t, StageSlot):
            return stages[t.name][t.slot]
        if isinstance(t, Add):
            acc = ev(t.parts[0])
            for p in t.parts[1:]:
                acc = ring.add(acc, ev(p))
            return acc
        if isinstance(t, Mul):
            return ring.mul(ev(t.left), ev(t.right))
        if isinstance(t, Sub):
            return ring.sub(ev(t.left), ev(t.right))
        if isinstance(t, Negate):
            return ring.neg(ev(t.operand))
        return power(ring, ev(t.base), t.exponent)

    return ev
