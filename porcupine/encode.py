"""The Z3 encoding of a local-rotate sketch with L components.

Holes are small bit-vectors: per component an op index, two operand indices and two
rotation indices. The program's value on an example input is built lazily, slot by slot, as
Z3 terms over the holes, and only for the slots that the constrained output slots reach, so
constraining a few output slots builds a small formula. Arithmetic is on ``width``-bit
vectors, i.e. mod 2^width: a relaxation of the exact semantics (see
:mod:`porcupine.search` for when an UNSAT answer is nevertheless a proof), and every
candidate is verified exactly before it counts.

Symmetries broken (all sound for a cheapest program): commutative operands ordered; every
component but the last used later; no two components equal; unary ops' unused holes fixed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import z3

from porcupine.sketch import Component, Filled, Operand, Space
from quill.cost import (
    INSTRUCTION_WEIGHT_MS,
    KEY_SWITCH_WEIGHT_MS,
    KEY_TIE_BREAK_MS,
    CostTable,
    Objective,
    rotation_group_cost,
)
from quill.ops import OPS, Kind, Opcode

COST_SCALE = 1000
"""Costs are milliseconds; the encoding counts integer microseconds."""

COST_BITS = 48  # room for the lexicographic weights of quill.cost

# Which arithmetic an op performs; ct*ct and ct*pt forms differ only in operand kinds.
_ARITH = {
    Opcode.ADD_CC: "add",
    Opcode.ADD_CP: "add",
    Opcode.SUB_CC: "sub",
    Opcode.SUB_CP: "sub",
    Opcode.MUL_CC: "mul",
    Opcode.MUL_CP: "mul",
    Opcode.NEG: "neg",
}


_LeafFn = Callable[[int, int, int], Any]  # (leaf, example, slot) -> term
_CombineFn = Callable[[int, Any, Any], Any]  # (component, a, b) -> term
LeafVars = Mapping[str, Mapping[int, int]]  # leaf name -> slot -> variable bit
_DEPENDENCIES = -1  # the pseudo-example index of the dependency abstraction


def _bits_for(count: int) -> int:
    """Bits for an index in [0, count) that can also be compared with ``count`` itself."""
    return max(1, count.bit_length())


def _lex_le(xs: Sequence[Any], ys: Sequence[Any]) -> Any:
    """``xs <= ys`` lexicographically, on unsigned bit-vectors."""
    le: Any = z3.BoolVal(True)
    for x, y in reversed(list(zip(xs, ys, strict=True))):
        le = z3.Or(z3.ULT(x, y), z3.And(x == y, le))
    return le


class _Assertions:
    """The constraints of an encoding (a list, so every check can start a fresh solver)."""

    def __init__(self) -> None:
        self.facts: list[Any] = []

    def add(self, *constraints: Any) -> None:
        self.facts.extend(constraints)


class SketchEncoding:
    """An incremental solver for one sketch size: add examples, bound the cost, solve."""

    def __init__(
        self,
        space: Space,
        components: int,
        width: int,
        table: CostTable,
        ring_dim: int,
        seed: int = 0,
        goal: Objective = Objective.INSTRUCTIONS,
    ) -> None:
        self.space = space
        self.L = components
        self.width = width
        self.mask = (1 << width) - 1
        self.ops = tuple(op for op in space.restrictions.ops if op is not Opcode.ROT)
        self.rots = (0, *space.restrictions.rotations)
        self.n_leaves = len(space.leaves)
        self.seed = seed
        # Constraints are kept here and handed to a fresh solver on every check: Z3's
        # incremental bit-vector solving was measured 10x slower than solving from scratch
        # (16 s against 1 s for one UNSAT proof on dot_product), and rebuilding is cheap.
        self.constraints = _Assertions()
        self._examples: list[Any] = []
        self._model: Any = None
        nv = self.n_leaves + components
        self._op = [z3.BitVec(f"op{k}", _bits_for(len(self.ops))) for k in range(components)]
        self._val = {
            w: [z3.BitVec(f"{w}{k}", _bits_for(nv)) for k in range(components)] for w in "ab"
        }
        self._rot = {
            w: [z3.BitVec(f"r{w}{k}", _bits_for(len(self.rots))) for k in range(components)]
            for w in "ab"
        }
        self._terms: dict[tuple[int, int, int], Any] = {}
        self._leaf_values: list[Mapping[str, Sequence[int]]] = []
        self._constrained: set[tuple[int, int]] = set()
        self._domains()
        self._symmetry()
        self._depth()
        self.cost = self._cost(table.at(ring_dim), goal)

    # -- hole domains -------------------------------------------------------------------

    def _is(self, k: int, ops: Sequence[Opcode]) -> Any:
        return z3.Or([self._op[k] == self.ops.index(op) for op in ops if op in self.ops])

    def _kind_ops(self, pred: Any) -> list[Opcode]:
        return [op for op in self.ops if pred(OPS[op])]

    def _domains(self) -> None:
        s, sp = self.constraints, self.space
        cp_ops = self._kind_ops(lambda i: i.operands == (Kind.CT, Kind.PT))
        unary = self._kind_ops(lambda i: len(i.operands) == 1)
        ct_vals = [v for v in range(self.n_leaves) if sp.is_ct(v)]
        pt_vals = [v for v in range(self.n_leaves) if not sp.is_ct(v)]
        for k in range(self.L):
            s.add(z3.ULT(self._op[k], len(self.ops)))
            for w in "ab":
                s.add(z3.ULT(self._rot[w][k], len(self.rots)))
            a, b = self._val["a"][k], self._val["b"][k]
            earlier = [self.n_leaves + j for j in range(k)]
            s.add(z3.Or([a == v for v in ct_vals + earlier]))
            is_cp, is_unary = self._is(k, cp_ops), self._is(k, unary)
            s.add(
                z3.Implies(
                    is_cp,
                    z3.And(z3.Or([b == v for v in pt_vals] or [False]), self._rot["b"][k] == 0),
                )
            )
            s.add(z3.Implies(is_unary, z3.And(b == 0, self._rot["b"][k] == 0)))
            s.add(
                z3.Implies(
                    z3.Not(z3.Or(is_cp, is_unary)), z3.Or([b == v for v in ct_vals + earlier])
                )
            )

    def _symmetry(self) -> None:
        s = self.constraints
        comm = self._kind_ops(lambda i: i.commutative and i.operands == (Kind.CT, Kind.CT))
        for k in range(self.L):
            a, b = self._val["a"][k], self._val["b"][k]
            ra, rb = self._rot["a"][k], self._rot["b"][k]
            s.add(
                z3.Implies(self._is(k, comm), z3.Or(z3.ULT(a, b), z3.And(a == b, z3.ULE(ra, rb))))
            )
            me = self.n_leaves + k
            if k < self.L - 1:
                s.add(
                    z3.Or(
                        [
                            z3.Or(self._val["a"][j] == me, self._val["b"][j] == me)
                            for j in range(k + 1, self.L)
                        ]
                    )
                )
            for j in range(k):
                s.add(
                    z3.Not(
                        z3.And(
                            self._op[j] == self._op[k],
                            self._val["a"][j] == a,
                            self._val["b"][j] == b,
                            self._rot["a"][j] == ra,
                            self._rot["b"][j] == rb,
                        )
                    )
                )
            # Two adjacent components that do not depend on each other can be swapped (later
            # references renumbered); keep only the order with the smaller holes first.
            if k + 1 < self.L:
                follower = (self._val["a"][k + 1], self._val["b"][k + 1])
                independent = z3.And([v != me for v in follower])
                s.add(z3.Implies(independent, _lex_le(self._holes(k), self._holes(k + 1))))

    def _holes(self, k: int) -> list[Any]:
        return [
            self._op[k],
            self._val["a"][k],
            self._rot["a"][k],
            self._val["b"][k],
            self._rot["b"][k],
        ]

    def _select(self, k: int, w: str, table: Sequence[Any]) -> Any:
        """The entry of ``table`` (indexed by value) that operand ``w`` of component ``k``
        picks."""
        sel = self._val[w][k]
        term = table[0]
        for v in range(1, self.n_leaves + k):
            term = z3.If(sel == v, table[v], term)
        return term

    def _depth(self) -> None:
        mul_cc = self._kind_ops(lambda i: i.ct_ct_mult)
        dbits = 4
        depth: list[Any] = [z3.BitVecVal(0, dbits)] * self.n_leaves
        for k in range(self.L):
            da, db = self._select(k, "a", depth), self._select(k, "b", depth)
            deeper = z3.If(z3.UGT(da, db), da, db)
            depth.append(deeper + z3.If(self._is(k, mul_cc), z3.BitVecVal(1, dbits), 0))
        self.constraints.add(z3.ULE(depth[-1], self.space.restrictions.max_depth))

    # -- cost -----------------------------------------------------------------------------

    def _cost(self, row: Mapping[str, float], goal: Objective) -> Any:
        """The objective of :func:`quill.cost.objective`, in integer units."""

        def units(ms: float) -> int:
            return round(ms * COST_SCALE)

        total: Any = z3.BitVecVal(0, COST_BITS)
        rotations: list[Any] = []  # one flag per distinct (value, amount) rotated
        for k in range(self.L):
            for op in self.ops:
                total += z3.If(
                    self._op[k] == self.ops.index(op),
                    z3.BitVecVal(units(row[OPS[op].cost]), COST_BITS),
                    z3.BitVecVal(0, COST_BITS),
                )
        # Rotations: each distinct (value, amount) costs once; the amounts applied to one
        # value are priced as a group, hoisted when that is cheaper (quill.cost).
        for v in range(self.n_leaves + self.L):
            if not self.space.is_ct(v):
                continue
            used = []
            for r in range(1, len(self.rots)):
                used.append(
                    z3.Or(
                        [
                            z3.And(self._val[w][k] == v, self._rot[w][k] == r)
                            for k in range(self.L)
                            for w in "ab"
                        ]
                    )
                )
            rotations += used
            count = z3.Sum([z3.If(u, z3.BitVecVal(1, 8), z3.BitVecVal(0, 8)) for u in used])
            group = z3.BitVecVal(0, COST_BITS)
            for c in range(len(used), 0, -1):
                group = z3.If(
                    count == c,
                    z3.BitVecVal(units(rotation_group_cost(c, dict(row))), COST_BITS),
                    group,
                )
            total += group
        # Each distinct rotation amount needs a key: a tie-breaker.
        key = units(KEY_TIE_BREAK_MS)
        for r in range(1, len(self.rots)):
            used = z3.Or([self._rot[w][k] == r for k in range(self.L) for w in "ab"])
            total += z3.If(used, z3.BitVecVal(key, COST_BITS), z3.BitVecVal(0, COST_BITS))
        if goal is Objective.INSTRUCTIONS:
            # Instructions: the L components and the distinct rotations; key switches: the
            # rotations and the ct*ct multiplies.
            switch = z3.BitVecVal(units(KEY_SWITCH_WEIGHT_MS), COST_BITS)
            instr = z3.BitVecVal(units(INSTRUCTION_WEIGHT_MS), COST_BITS)
            zero = z3.BitVecVal(0, COST_BITS)
            total += z3.BitVecVal(units(INSTRUCTION_WEIGHT_MS) * self.L, COST_BITS)
            for rotation in rotations:
                total += z3.If(rotation, switch + instr, zero)
            mul_cc = self._kind_ops(lambda i: i.ct_ct_mult)
            for k in range(self.L):
                total += z3.If(self._is(k, mul_cc), switch, zero)
        return total

    def bound_cost(self, below: int) -> None:
        """Only programs cheaper than ``below`` cost units from now on."""
        self.constraints.add(z3.ULT(self.cost, below))

    def cap(self, below: int) -> Any:
        """A constraint, for one :meth:`check`, that the cost is under ``below``."""
        return z3.ULT(self.cost, below)

    # -- examples -------------------------------------------------------------------------

    def add_example(self, leaves: Mapping[str, Sequence[int]]) -> int:
        """Register an example input (leaf values by name); returns its index. Nothing is
        constrained until :meth:`constrain` names its slots."""
        self._leaf_values.append(leaves)
        return len(self._leaf_values) - 1

    @property
    def examples_known(self) -> int:
        return len(self._leaf_values)

    def constrain(self, e: int, expected: Mapping[int, int]) -> None:
        """Constrain the result on example ``e`` to ``expected`` (slot -> value, mod
        2^width)."""
        result = self.n_leaves + self.L - 1
        for slot, want in expected.items():
            if (e, slot) not in self._constrained:
                self._constrained.add((e, slot))
                self._examples.append(self._term(result, e, slot) == (want & self.mask))

    def _term(self, v: int, e: int, slot: int) -> Any:
        """Value ``v`` at ``slot`` on example ``e``, as a ``width``-bit term."""
        return self._lazy(v, slot, e, self._leaf_term, self._arith)

    def _leaf_term(self, v: int, e: int, slot: int) -> Any:
        leaf = self.space.leaves[v]
        raw = leaf.constant if leaf.constant is not None else self._leaf_values[e][leaf.name][slot]
        return z3.BitVecVal(raw & self.mask, self.width)

    def _arith(self, k: int, a: Any, b: Any) -> Any:
        arith = {"add": a + b, "sub": a - b, "mul": a * b, "neg": -a}
        term = arith[_ARITH[self.ops[0]]]
        for i, op in enumerate(self.ops[1:], start=1):
            term = z3.If(self._op[k] == i, arith[_ARITH[op]], term)
        return term

    def _lazy(self, v: int, slot: int, e: int, leaf: _LeafFn, combine: _CombineFn) -> Any:
        """Value ``v`` at ``slot`` in one abstraction (``e`` >= 0: example ``e``;
        ``e`` = -1: input dependencies), built on demand and memoized."""
        key = (v, e, slot)
        if key not in self._terms:
            if v < self.n_leaves:
                self._terms[key] = leaf(v, e, slot)
            else:
                k = v - self.n_leaves
                a, b = (self._operand(k, w, slot, e, leaf, combine) for w in "ab")
                self._terms[key] = combine(k, a, b)
        return self._terms[key]

    def _operand(
        self, k: int, w: str, slot: int, e: int, leaf: _LeafFn, combine: _CombineFn
    ) -> Any:
        """Operand ``w`` of component ``k`` at ``slot``: the chosen value, rotated."""
        n = self.space.n
        per_value = []
        for v in range(self.n_leaves + k):
            term = self._lazy(v, slot, e, leaf, combine)
            if self.space.is_ct(v):
                for r in range(1, len(self.rots)):
                    shifted = self._lazy(v, (slot + self.rots[r]) % n, e, leaf, combine)
                    term = z3.If(self._rot[w][k] == r, shifted, term)
            per_value.append(term)
        return self._select(k, w, per_value)

    # -- abstractions ---------------------------------------------------------------------

    def require_dependencies(self, needed: Mapping[int, int], leaf_vars: LeafVars) -> None:
        """A sound relaxation that needs no arithmetic: the result's slot must syntactically
        read every input variable its spec polynomial has (``needed``: slot -> bit mask of
        variables; ``leaf_vars[leaf name][slot]``: the variable's bit, 0 for none). The
        solver refutes small sketches with it long before it could through multipliers."""
        width = max(1, max(needed.values(), default=0).bit_length())

        def leaf(v: int, _e: int, slot: int) -> Any:
            bit = leaf_vars.get(self.space.leaves[v].name, {}).get(slot, 0)
            return z3.BitVecVal(bit, width)

        def combine(k: int, a: Any, b: Any) -> Any:
            unary = self._is(k, self._kind_ops(lambda i: len(i.operands) == 1))
            return z3.If(unary, a, a | b)

        result = self.n_leaves + self.L - 1
        for slot, mask in needed.items():
            dep = self._lazy(result, slot, _DEPENDENCIES, leaf, combine)
            self.constraints.add(dep & mask == mask)

    def require_degree(self, degree: int) -> None:
        """The result's syntactic degree in ciphertext variables reaches the spec's."""
        bits = 8
        mul_cc = self._kind_ops(lambda i: i.ct_ct_mult)
        deg: list[Any] = [
            z3.BitVecVal(1 if self.space.is_ct(v) else 0, bits) for v in range(self.n_leaves)
        ]
        for k in range(self.L):
            da, db = self._select(k, "a", deg), self._select(k, "b", deg)
            deeper = z3.If(z3.UGT(da, db), da, db)
            deg.append(z3.If(self._is(k, mul_cc), da + db, deeper))
        self.constraints.add(z3.UGE(deg[-1], degree))

    # -- solving ----------------------------------------------------------------------------

    def check(
        self, timeout_ms: int | None, examples: bool = True, extra: tuple[Any, ...] = ()
    ) -> z3.CheckSatResult:
        """Solve with the example constraints, or (``examples=False``) only the abstraction:
        UNSAT there already proves the sketch size exhausted."""
        solver = z3.SolverFor("QF_BV")
        solver.set("random_seed", self.seed)
        solver.add(*self.constraints.facts, *extra)
        if examples:
            solver.add(*self._examples)
        # The deadline interrupts the solver from a timer instead of a solver timeout: Z3
        # picks its strategy by the timeout value, so a timeout that shrinks as the search
        # goes on made the same spec give different kernels on different runs.
        timer = None
        if timeout_ms is not None:
            timer = threading.Timer(max(1, timeout_ms) / 1000, solver.ctx.interrupt)
            timer.start()
        try:
            result = solver.check()
        finally:
            if timer is not None:
                timer.cancel()
        self._model = solver.model() if result == z3.sat else None
        return result

    def model_cost(self) -> int:
        """The objective value of the program in the last model, in cost units."""
        return int(self._model.eval(self.cost).as_long())

    def filled(self) -> Filled:
        """The program in the current model (after a ``sat`` check)."""
        m = self._model

        def num(x: Any) -> int:
            return int(m.eval(x, model_completion=True).as_long())

        comps = []
        for k in range(self.L):
            op = self.ops[num(self._op[k])]
            a = Operand(num(self._val["a"][k]), self.rots[num(self._rot["a"][k])])
            b = None
            if len(OPS[op].operands) == 2:
                b = Operand(num(self._val["b"][k]), self.rots[num(self._rot["b"][k])])
            comps.append(Component(op, a, b))
        return Filled(tuple(comps))

    def block(self, filled: Filled) -> None:
        """Exclude exactly this hole assignment (used when no narrow counterexample exists)."""
        same = []
        for k, c in enumerate(filled.components):
            same.append(self._op[k] == self.ops.index(c.op))
            for w, o in (("a", c.a), ("b", c.b)):
                if o is not None:
                    same += [
                        self._val[w][k] == o.value,
                        self._rot[w][k] == self.rots.index(o.rotation),
                    ]
        self.constraints.add(z3.Not(z3.And(same)))
