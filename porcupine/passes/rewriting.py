"""What the passes over verified kernels share: pricing a candidate rewrite by the objective
at the parameter set its own noise needs, and building the instructions of a rewrite."""

from __future__ import annotations

import itertools

from porcupine.passes.quadratic import centered
from quill.cost import CostTable, Objective, measures, objective
from quill.ir import Const, Instr, Program
from quill.noise import NoiseBudgetExceeded, parameters
from quill.ops import Opcode
from quill.slots import T
from quill.transform import simplify


def rank(
    program: Program,
    slots: int,
    table: CostTable,
    goal: Objective,
    max_keys: int | None = None,
) -> tuple[int, ...] | None:
    """``program``'s objective at the cheapest parameter set its noise allows, or ``None``
    when no set holds its noise or it needs more than ``max_keys`` rotation keys."""
    try:
        where = parameters(program, slots, table).param_set
    except NoiseBudgetExceeded:
        return None
    if max_keys is not None and measures(program, where, table).keys > max_keys:
        return None
    return objective(program, where, table, goal)


class Builder:
    """New instructions with fresh names: linear combinations, products and rotations."""

    def __init__(self, program: Program, *, doublings: bool = False) -> None:
        self.taken = set(program.kinds())
        self.body: list[Instr] = []
        self.consts: dict[int, str] = {}
        self.doublings = doublings  # combinations by doubling (:meth:`by_doublings`)

    def finish(self, program: Program, body: list[Instr], result: str) -> Program:
        """``program`` with ``body`` and ``result``, the constants built here added,
        simplified (common subexpressions merged, dead code dropped)."""
        consts = program.consts + tuple(Const(name, (c,)) for c, name in self.consts.items())
        return simplify(Program(program.name, program.params, consts, tuple(body), result))

    def fresh(self, stem: str) -> str:
        for k in itertools.count():
            name = f"{stem}{k}"
            if name not in self.taken:
                self.taken.add(name)
                return name
        raise AssertionError("unreachable")

    def op(self, opcode: Opcode, *args: str, amount: int | None = None) -> str:
        dest = self.fresh("f")
        self.body.append(Instr(dest, opcode, args, amount))
        return dest

    def times(self, name: str, c: int) -> str:
        """``c * name`` for c > 0: the value itself, an add for 2, a ct*pt multiply."""
        if c == 1:
            return name
        if c == 2:
            return self.op(Opcode.ADD_CC, name, name)
        if c not in self.consts:
            self.consts[c] = self.fresh("k")
        return self.op(Opcode.MUL_CP, name, self.consts[c])

    def combination(self, terms: list[tuple[str, int]]) -> str:
        """``sum c * v``, constants centred so that -c is a subtraction of c * v, and the
        values of one coefficient magnitude summed before their one multiply (``7a + 7b -
        7c`` is ``7 (a + b - c)``: a multiply, not three)."""
        signed = [(v, centered(c)) for v, c in terms if c % T]
        assert signed, "a combination of nothing: callers never build a zero value"
        if self.doublings:
            return self.by_doublings(signed)
        magnitudes = sorted({abs(c) for _, c in signed})
        grouped = []
        for m in magnitudes:
            inner, sign = self._signed_sum(
                [(v, 1 if c > 0 else -1) for v, c in signed if abs(c) == m]
            )
            grouped.append((inner, m * sign))
        value, sign = self._signed_sum(grouped)
        return value if sign > 0 else self.op(Opcode.NEG, value)

    def by_doublings(self, signed: list[tuple[str, int]]) -> str:
        """``sum c * v`` (``c`` centred, nonzero) with additions only, by the bits of the
        magnitudes from the highest: double what is summed so far, then add or subtract
        the values whose coefficient has this bit (``v + 4 w + 6 x`` is
        ``2 (2 (w + x) + x) + v``: five additions where the multiplies by 4 and 6 took two
        multiplies and two additions, and with no constant, cheaper where an addition is)."""
        acc: str | None = None
        sign = 1  # the value is sign * acc
        for bit in reversed(range(max(abs(c) for _, c in signed).bit_length())):
            if acc is not None:
                acc = self.op(Opcode.ADD_CC, acc, acc)
            for v, c in signed:
                if not abs(c) >> bit & 1:
                    continue
                s = 1 if c > 0 else -1
                if acc is None:
                    acc, sign = v, s
                else:
                    acc = self.op(Opcode.ADD_CC if s == sign else Opcode.SUB_CC, acc, v)
        assert acc is not None
        return acc if sign > 0 else self.op(Opcode.NEG, acc)

    def _signed_sum(self, terms: list[tuple[str, int]]) -> tuple[str, int]:
        """``sum c * v`` as ``(value, sign)``: the sum, or its negation when every ``c`` is
        negative (the caller folds the sign into what it does next)."""
        plus = [(v, c) for v, c in terms if c > 0]
        minus = [(v, -c) for v, c in terms if c < 0]
        sign = 1
        if not plus:
            plus, minus, sign = minus, [], -1
        acc = self.times(*plus[0])
        for v, c in plus[1:]:
            acc = self.op(Opcode.ADD_CC, acc, self.times(v, c))
        for v, c in minus:
            acc = self.op(Opcode.SUB_CC, acc, self.times(v, c))
        return acc, sign
