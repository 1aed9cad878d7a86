"""Run Quill programs: one generic evaluator over any :class:`~quill.ops.SlotAlgebra`, and
the exact numpy interpreter mod T built on it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from quill.ir import Program
from quill.ops import SlotAlgebra, apply
from quill.slots import T

V = TypeVar("V")
Slots = npt.NDArray[np.int64]


def evaluate(
    program: Program,
    algebra: SlotAlgebra[V],
    inputs: Mapping[str, V],
    const: Callable[[tuple[int, ...]], V],
) -> V:
    """Evaluate ``program`` with ``inputs`` bound to its parameters, in ``algebra``.

    ``const`` turns a constant's periodic values into the algebra's slot vector.
    """
    env: dict[str, V] = {}
    for p in program.params:
        if p.name not in inputs:
            raise KeyError(f"no value given for input {p.name!r}")
        env[p.name] = inputs[p.name]
    for c in program.consts:
        env[c.name] = const(c.values)
    for ins in program.body:
        env[ins.dest] = apply(algebra, ins.opcode, [env[a] for a in ins.args], ins.amount)
    return env[program.result]


class ModT:
    """Slot vectors as int64 numpy arrays with entries in [0, T)."""

    def add(self, a: Slots, b: Slots) -> Slots:
        return (a + b) % T

    def sub(self, a: Slots, b: Slots) -> Slots:
        return (a - b) % T

    def mul(self, a: Slots, b: Slots) -> Slots:
        return (a * b) % T  # < 2^34: no int64 overflow

    def neg(self, a: Slots) -> Slots:
        return (-a) % T

    def rot(self, a: Slots, k: int) -> Slots:
        return np.roll(a, -k)  # out[i] = a[(i + k) mod n], see quill.slots


def periodic(values: tuple[int, ...], n: int) -> Slots:
    """A constant's values repeated over ``n`` slots, reduced mod T."""
    if n % len(values):
        raise ValueError(f"a constant of {len(values)} values does not tile {n} slots")
    return np.array(values * (n // len(values)), dtype=np.int64) % T


def interpret(program: Program, inputs: Mapping[str, npt.ArrayLike]) -> Slots:
    """Run ``program`` on slot vectors (all of one length n) and return the result mod T."""
    arrays = {k: np.asarray(v, dtype=np.int64) % T for k, v in inputs.items()}
    lengths = {a.shape for a in arrays.values()}
    if len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise ValueError(f"inputs must be 1-d slot vectors of one length, got {lengths}")
    (n,) = next(iter(lengths))
    return evaluate(program, ModT(), arrays, lambda vs: periodic(vs, n))
