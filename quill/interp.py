"""Run Quill programs: one generic evaluator over any :class:`~quill.algebra.SlotAlgebra`,
a demand-driven one over any :class:`~quill.algebra.ScalarRing`, and the exact numpy
interpreter mod T built on them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from quill.algebra import ModT, ScalarRing, SlotAlgebra, Slots
from quill.ir import Program
from quill.ops import OPS, apply, apply_scalar
from quill.slots import T

__all__ = ["Slots", "demanded_slots", "evaluate", "evaluate_at_slots", "interpret", "periodic"]

V = TypeVar("V")
S = TypeVar("S")


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


def demanded_slots(program: Program, slots: Iterable[int], n: int) -> dict[str, set[int]]:
    """For each value, the slots needed to compute the result at ``slots`` (on ``n``
    slots): a reduction's result slot needs few slots of most intermediate values."""
    demand: dict[str, set[int]] = {program.result: set(slots)}
    for ins in reversed(program.body):
        want = demand.get(ins.dest)
        if not want:
            continue
        reads = OPS[ins.opcode].reads
        if reads is not None:
            assert ins.amount is not None
            want = {r for s in want for r in reads(s, ins.amount, n)}
        for a in ins.args:
            demand.setdefault(a, set()).update(want)
    return demand


def evaluate_at_slots(
    program: Program,
    ring: ScalarRing[S],
    inputs: Mapping[str, Sequence[S]],
    slots: Iterable[int],
    n: int,
) -> dict[int, S]:
    """The result at ``slots`` only, computing each value only where it is needed.

    Same semantics as :func:`evaluate` (the op table's rules, applied slot by slot; an op
    with an amount adds up the operand slots its row ``reads``), at a fraction of the work
    for reductions over many slots.
    """
    wanted = set(slots)
    demand = demanded_slots(program, wanted, n)
    env: dict[str, dict[int, S]] = {}
    for p in program.params:
        env[p.name] = {s: inputs[p.name][s] for s in demand.get(p.name, ())}
    for c in program.consts:
        env[c.name] = {s: ring.const(c.values[s % len(c.values)]) for s in demand.get(c.name, ())}
    for ins in program.body:
        here = demand.get(ins.dest, set())
        reads = OPS[ins.opcode].reads
        if reads is not None:
            assert ins.amount is not None
            src, k = env[ins.args[0]], ins.amount
            env[ins.dest] = {s: _total(ring, [src[r] for r in reads(s, k, n)]) for s in here}
        else:
            args = [env[a] for a in ins.args]
            env[ins.dest] = {s: apply_scalar(ring, ins.opcode, [v[s] for v in args]) for s in here}
    return {s: env[program.result][s] for s in wanted}


def _total(ring: ScalarRing[S], values: list[S]) -> S:
    total = values[0]
    for v in values[1:]:
        total = ring.add(total, v)
    return total
