"""The Z3 encoding of a local-rotate sketch with L components.

Holes are small bit-vectors: per component an op index, two operand indices and two
rotation indices. Three named formulas make up a query (Rosette's style):

* :attr:`SketchEncoding.wellformed`: hole domains, the depth bound, and symmetry breaking
  (commutative operands ordered; every component used later; no two components equal;
  adjacent independent components ordered), all sound for a cheapest program;
* :meth:`SketchEncoding.cheaper`: the objective of :func:`quill.cost.objective` as solver
  terms (op latencies from the cost table, rotations of one value priced as a hoisted
  group, relinearizations placed as :mod:`quill.relin` places them), compared with a
  bound;
* the semantics: the result's value in any :class:`~porcupine.search.models.ValueModel` at any
  slot, built on demand from the op table's semantics (:meth:`SketchEncoding.result`), which
  the search constrains.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import z3

from porcupine.budget import Budget
from porcupine.search.models import ValueModel
from porcupine.search.sketch import Component, Filled, Operand, Space
from quill.cost import Objective, op_us, rotation_group_us, sum_switches
from quill.ops import OPS, Opcode, apply_scalar

COUNT_BITS = 8
LATENCY_BITS = 28  # microseconds: room for minutes


def _bits_for(count: int) -> int:
    """Bits for an index in [0, count) that can also be compared with ``count`` itself."""
    return max(1, count.bit_length())


def _lex_le(xs: Sequence[Any], ys: Sequence[Any]) -> Any:
    """``xs <= ys`` lexicographically, on unsigned bit-vectors."""
    le: Any = z3.BoolVal(True)
    for x, y in reversed(list(zip(xs, ys, strict=True))):
        le = z3.Or(z3.ULT(x, y), z3.And(x == y, le))
    return le


def _lex_lt(xs: Sequence[Any], ys: Sequence[int]) -> Any:
    """``xs < ys`` lexicographically (terms against constants)."""
    lt: Any = z3.BoolVal(False)
    for x, y in reversed(list(zip(xs, ys, strict=True))):
        lt = z3.Or(z3.ULT(x, y), z3.And(x == y, lt))
    return lt


def _count(flags: Sequence[Any], bits: int = COUNT_BITS) -> Any:
    one, zero = z3.BitVecVal(1, bits), z3.BitVecVal(0, bits)
    return z3.Sum([z3.If(f, one, zero) for f in flags]) if flags else zero


class SketchEncoding:
    """One sketch size: holes, well-formedness, cost terms and values in any model."""

    def __init__(
        self,
        space: Space,
        components: int,
        row_us: dict[str, int],
        goal: Objective,
        seed: int = 0,
        budget: Budget | None = None,
    ) -> None:
        self.space = space
        self.budget = budget or Budget()
        self.L = components
        self.seed = seed
        self.goal = goal
        # Rotations live in the operands; the only op with an amount here is the sum over
        # the restrictions' window.
        self.ops = tuple(op for op in space.restrictions.ops if not op.rotates)
        self.window = space.restrictions.window
        self.rots = (0, *space.restrictions.rotations)
        self.n_leaves = len(space.leaves)
        nv = self.n_leaves + components
        self._op = [z3.BitVec(f"op{k}", _bits_for(len(self.ops))) for k in range(components)]
        self._val = {
            w: [z3.BitVec(f"{w}{k}", _bits_for(nv)) for k in range(components)] for w in "ab"
        }
        self._rot = {
            w: [z3.BitVec(f"r{w}{k}", _bits_for(len(self.rots))) for k in range(components)]
            for w in "ab"
        }
        self._values: dict[tuple[int, int, int], Any] = {}  # (model id, value, slot)
        # (model id, component, operand, slot): the sum op reads its operand at every slot
        # of its window, and each of those is also another slot's plain operand.
        self._operands: dict[tuple[int, int, str, int], Any] = {}
        # The hole tests the selections are made of, built once.
        self._op_is = [[o == i for i in range(len(self.ops))] for o in self._op]
        self._val_is = {
            w: [[x == v for v in range(self.n_leaves + k)] for k, x in enumerate(xs)]
            for w, xs in self._val.items()
        }
        self._rot_is = {
            w: [[x == r for r in range(len(self.rots))] for x in xs] for w, xs in self._rot.items()
        }
        self.wellformed: list[Any] = []
        self.symmetry: list[Any] = []  # kept apart: tests check kernels in any order
        self._domains()
        self._symmetry()
        self._depth()
        self.rank = self._objective(row_us)
        self._model: Any = None
        self._ctx: Any = None

    # -- holes --------------------------------------------------------------------------

    def _is(self, k: int, pred: Any) -> Any:
        """Component ``k``'s op satisfies ``pred`` (a predicate on op table rows)."""
        return z3.Or(
            [self._op[k] == i for i, op in enumerate(self.ops) if pred(OPS[op])] or [False]
        )

    def _domains(self) -> None:
        s, sp = self.wellformed, self.space
        ct_vals = [v for v in range(self.n_leaves) if sp.is_ct(v)]
        pt_vals = [v for v in range(self.n_leaves) if not sp.is_ct(v)]
        for k in range(self.L):
            s.append(z3.ULT(self._op[k], len(self.ops)))
            for w in "ab":
                s.append(z3.ULT(self._rot[w][k], len(self.rots)))
            a, b, rb = self._val["a"][k], self._val["b"][k], self._rot["b"][k]
            earlier = [self.n_leaves + j for j in range(k)]
            s.append(z3.Or([a == v for v in ct_vals + earlier]))
            is_cp = self._is(k, lambda i: i.plaintext_operand)
            is_unary = self._is(k, lambda i: i.arity == 1)
            s.append(
                z3.Implies(is_cp, z3.And(z3.Or([b == v for v in pt_vals] or [False]), rb == 0))
            )
            s.append(z3.Implies(is_unary, z3.And(b == 0, rb == 0)))
            s.append(
                z3.Implies(
                    z3.Not(z3.Or(is_cp, is_unary)), z3.Or([b == v for v in ct_vals + earlier])
                )
            )
            for w in "ab":  # a plaintext is never rotated (no plaintext rotation op)
                s.append(
                    z3.Implies(
                        z3.Or([self._val[w][k] == v for v in pt_vals] or [False]),
                        self._rot[w][k] == 0,
                    )
                )

    def _symmetry(self) -> None:
        s = self.symmetry
        for k in range(self.L):
            a, b = self._val["a"][k], self._val["b"][k]
            ra, rb = self._rot["a"][k], self._rot["b"][k]
            comm = self._is(k, lambda i: i.commutative and not i.plaintext_operand)
            s.append(z3.Implies(comm, z3.Or(z3.ULT(a, b), z3.And(a == b, z3.ULE(ra, rb)))))
            me = self.n_leaves + k
            if k < self.L - 1:
                s.append(
                    z3.Or(
                        [
                            z3.Or(self._val["a"][j] == me, self._val["b"][j] == me)
                            for j in range(k + 1, self.L)
                        ]
                    )
                )
            for j in range(k):
                same = [
                    x[j] == x[k]
                    for x in (
                        self._op,
                        self._val["a"],
                        self._val["b"],
                        self._rot["a"],
                        self._rot["b"],
                    )
                ]
                s.append(z3.Not(z3.And(same)))
            # Two adjacent components that do not depend on each other can be swapped (later
            # references renumbered); keep only the order with the smaller holes first.
            if k + 1 < self.L:
                follower = (self._val["a"][k + 1], self._val["b"][k + 1])
                independent = z3.And([v != me for v in follower])
                s.append(z3.Implies(independent, _lex_le(self._holes(k), self._holes(k + 1))))

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
        term = table[0]
        for v in range(1, self.n_leaves + k):
            term = z3.If(self._val[w][k] == v, table[v], term)
        return term

    def _depth(self) -> None:
        dbits = 4
        depth: list[Any] = [z3.BitVecVal(0, dbits)] * self.n_leaves
        for k in range(self.L):
            da, db = self._select(k, "a", depth), self._select(k, "b", depth)
            deeper = z3.If(z3.UGT(da, db), da, db)
            depth.append(
                deeper + z3.If(self._is(k, lambda i: i.ct_ct_mult), z3.BitVecVal(1, dbits), 0)
            )
        self.wellformed.append(z3.ULE(depth[-1], self.space.restrictions.max_depth))

    # -- cost -----------------------------------------------------------------------------

    def _uses(self, v: int) -> list[tuple[int, str]]:
        """Every (component, operand) that may read value ``v``."""
        first = max(0, v - self.n_leaves + 1)
        return [(k, w) for k in range(first, self.L) for w in "ab"]

    def _objective(self, row: dict[str, int]) -> tuple[Any, ...]:
        """The terms of :func:`quill.cost.rank`, in the same integer units."""
        lat = [z3.BitVecVal(0, LATENCY_BITS)]

        def us(x: int) -> Any:
            return z3.BitVecVal(x, LATENCY_BITS)

        for k in range(self.L):
            cost = us(0)
            for i, op in enumerate(self.ops):
                cost = z3.If(self._op[k] == i, us(op_us(op, self._amount(op), row)), cost)
            lat.append(cost)
        # Rotations: each distinct (value, amount) once; a value's amounts form one group,
        # hoisted when that is cheaper (quill.cost.rotation_group_us).
        rotated: list[Any] = []
        amounts: dict[int, list[Any]] = {r: [] for r in range(1, len(self.rots))}
        for v in range(self.n_leaves + self.L - 1):
            if not self.space.is_ct(v):
                continue
            flags = []
            for r in range(1, len(self.rots)):
                used = z3.Or(
                    [z3.And(self._val[w][k] == v, self._rot[w][k] == r) for k, w in self._uses(v)]
                )
                flags.append(used)
                amounts[r].append(used)
            rotated += flags
            count = _count(flags)
            group = us(0)
            for c in range(1, len(flags) + 1):
                group = z3.If(count == c, us(rotation_group_us(c, row)), group)
            lat.append(group)
        relins = self._relinearizations()
        lat += [z3.If(r, us(row[OPS[Opcode.RELIN].cost]), us(0)) for r in relins]
        latency = z3.Sum(lat)
        # Keys: the rotation amounts used, and the ones an EvalSum needs if there is one.
        summing = z3.Or([self._is(k, lambda i: i.sums) for k in range(self.L)])
        inside = sum_switches(self.window) if self.window else 0
        sum_keys = set(OPS[Opcode.SUM].rotation_keys(self.window)) if self.window else set()
        by_value: dict[int, list[Any]] = {}
        for r, flags in amounts.items():
            by_value.setdefault(self.rots[r], []).extend(flags)
        for v in sum_keys:
            by_value.setdefault(v, []).append(summing)
        keys = _count([z3.Or(flags) for flags in by_value.values() if flags])
        self.latency, self.keys = latency, keys
        if self.goal is Objective.INSTRUCTIONS:
            # An EvalSum counts as the rotations and additions it performs (quill.cost).
            sums = [self._is(k, lambda i: i.sums) for k in range(self.L)]
            extra = z3.Sum(
                [
                    z3.If(f, z3.BitVecVal(inside, COUNT_BITS), z3.BitVecVal(0, COUNT_BITS))
                    for f in sums
                ]
            )
            switches = _count(rotated + relins) + extra
            instructions = (
                _count(rotated) + z3.BitVecVal(self.L, COUNT_BITS) + 2 * extra - _count(sums)
            )
            return (switches, instructions)
        return (latency,)

    def _relinearizations(self) -> list[Any]:
        """One flag per component: its value gets a ``relin``. The flags are free and the
        rule of :mod:`quill.relin` constrains them (no three-element value where two are
        needed); minimizing the cost picks the fewest, as :mod:`quill.relin` does."""
        seen_big: list[Any] = [z3.BoolVal(False)] * self.n_leaves
        flags = []
        for k in range(self.L):
            relin = z3.Bool(f"relin{k}")
            a, b = (self._select(k, w, seen_big) for w in "ab")
            passes = self._is(k, lambda i: not (i.grows or i.needs_linear or i.relinearizes))
            big = z3.Or(self._is(k, lambda i: i.grows), z3.And(passes, a))
            c = self.wellformed
            c.append(z3.Implies(relin, big))
            c.append(z3.Implies(self._is(k, lambda i: i.needs_linear), z3.Not(a)))
            binary_cc = self._is(k, lambda i: i.arity == 2 and not i.plaintext_operand)
            c.append(
                z3.Implies(z3.And(binary_cc, self._is(k, lambda i: i.needs_linear)), z3.Not(b))
            )
            c.append(z3.Implies(self._is(k, lambda i: i.same_size), a == b))
            for w, big_operand in (("a", a), ("b", b)):  # a rotation needs two elements
                c.append(z3.Implies(self._rot[w][k] != 0, z3.Not(big_operand)))
            seen = z3.And(big, z3.Not(relin))
            if k == self.L - 1:
                c.append(z3.Not(seen))  # the result has two elements
            flags.append(relin)
            seen_big.append(seen)
        return flags

    def cheaper(self, bound: Sequence[int]) -> Any:
        """The objective is strictly below ``bound`` (a :func:`quill.cost.rank` tuple)."""
        return _lex_lt(self.rank, bound)

    def same_rank(self, rank: Sequence[int]) -> Any:
        """The objective equals ``rank`` (the rotation-key polish keeps it)."""
        return z3.And([t == v for t, v in zip(self.rank, rank, strict=True)])

    def at_most(self, index: int, value: int) -> Any:
        """The ``index``-th objective term is at most ``value`` (rising caps)."""
        return z3.ULE(self.rank[index], value)

    def max_keys(self, keys: int) -> Any:
        """At most ``keys`` rotation keys."""
        return z3.ULE(self.keys, keys)

    # -- values ---------------------------------------------------------------------------

    def value(self, model: ValueModel, v: int, slot: int) -> Any:
        """Value ``v`` (leaves first, then components) at ``slot`` in ``model``."""
        if model.slot_invariant:
            slot = 0
        key = (id(model), v, slot)
        if key not in self._values:
            # Building a big query takes seconds, and one value of an abstraction (a product
            # of large monomial sets) up to a tenth of one: check before each.
            self.budget.check("encode")
            if v < self.n_leaves:
                leaf = self.space.leaves[v]
                self._values[key] = model.leaf(leaf.name, leaf.constant, slot)
            else:
                k = v - self.n_leaves
                a, b = self._operand(model, k, "a", slot), self._operand(model, k, "b", slot)
                outs = [
                    self._total(model, k, slot, op)
                    if OPS[op].reads is not None
                    else apply_scalar(model.ring, op, [a, b][: OPS[op].arity])
                    for op in self.ops
                ]
                is_op = self._op_is[k]
                cases = [(is_op[i], outs[i]) for i in range(1, len(outs))]
                self._values[key] = model.select(outs[0], cases)
        return self._values[key]

    def _amount(self, op: Opcode) -> int | None:
        return self.window if OPS[op].has_amount else None

    def _total(self, model: ValueModel, k: int, slot: int, op: Opcode) -> Any:
        """An op that adds up operand slots (the sum over the window) at ``slot``."""
        reads = OPS[op].reads
        assert reads is not None and self.window is not None
        slots = reads(0 if model.slot_invariant else slot, self.window, self.space.n)
        values = [self._operand(model, k, "a", s) for s in slots]
        total = values[0]
        for v in values[1:]:
            total = model.ring.add(total, v)
        return total

    def result(self, model: ValueModel, slot: int) -> Any:
        """The sketch's result at ``slot`` in ``model``."""
        return self.value(model, self.n_leaves + self.L - 1, slot)

    def _operand(self, model: ValueModel, k: int, w: str, slot: int) -> Any:
        """Operand ``w`` of component ``k`` at ``slot``: the chosen value, rotated."""
        if model.slot_invariant:
            slot = 0
        key = (id(model), k, w, slot)
        if key in self._operands:
            return self._operands[key]
        n = self.space.n
        is_rot, is_val = self._rot_is[w][k], self._val_is[w][k]
        per_value = []
        for v in range(self.n_leaves + k):
            term = self.value(model, v, slot)
            if self.space.is_ct(v) and not model.slot_invariant:
                shifted = [
                    (is_rot[r], self.value(model, v, (slot + self.rots[r]) % n))
                    for r in range(1, len(self.rots))
                ]
                term = model.select(term, shifted)
            per_value.append(term)
        term = model.select(
            per_value[0], [(is_val[v], per_value[v]) for v in range(1, len(per_value))]
        )
        self._operands[key] = term
        return term

    # -- solving --------------------------------------------------------------------------

    def check(
        self, constraints: Sequence[Any], budget: Budget, symmetry: bool = True
    ) -> z3.CheckSatResult:
        """Solve the well-formedness facts with ``constraints`` within ``budget``.

        Each check runs in a fresh Z3 context the formula is translated into: Z3's search
        depends on its term table, so solving in the context where everything was built
        made the same query take 4 s or 90 s, and give different kernels, depending on
        what the process had built before. A fresh solver too: Z3's incremental bit-vector
        solving was measured 10x slower than solving from scratch.
        """
        ctx = z3.Context()
        solver = z3.SolverFor("QF_BV", ctx=ctx)
        solver.set("random_seed", self.seed)
        facts = (*self.wellformed, *(self.symmetry if symmetry else ()), *constraints)
        solver.add([f.translate(ctx) for f in facts])
        # The deadline interrupts the solver from a timer instead of a solver timeout: Z3
        # picks its strategy by the timeout value, so a timeout that shrinks as the search
        # goes on would make the same spec give different kernels on different runs.
        with budget.watching(ctx):
            result = solver.check()
        self._model = solver.model() if result == z3.sat else None
        self._ctx = ctx
        return result

    def _eval(self, term: Any) -> int:
        return int(self._model.eval(term.translate(self._ctx), model_completion=True).as_long())

    def model_rank(self) -> tuple[int, ...]:
        """The objective of the program in the last model (a :func:`quill.cost.rank`)."""
        return tuple(self._eval(t) for t in self.rank)

    def model_keys(self) -> int:
        """The rotation keys of the program in the last model."""
        return self._eval(self.keys)

    def filled(self) -> Filled:
        """The program in the current model (after a ``sat`` check)."""
        num = self._eval
        comps = []
        for k in range(self.L):
            op = self.ops[num(self._op[k])]
            a = Operand(num(self._val["a"][k]), self.rots[num(self._rot["a"][k])])
            b = None
            if OPS[op].arity == 2:
                b = Operand(num(self._val["b"][k]), self.rots[num(self._rot["b"][k])])
            comps.append(Component(op, a, b, self._amount(op)))
        return Filled(tuple(comps))

    def fixed(self, filled: Filled) -> Any:
        """A constraint that the holes are exactly ``filled``'s."""
        return z3.Not(self.block(filled))

    def block(self, filled: Filled) -> Any:
        """A constraint excluding exactly this hole assignment."""
        same = []
        for k, c in enumerate(filled.components):
            same.append(self._op[k] == self.ops.index(c.op))
            for w, o in (("a", c.a), ("b", c.b)):
                if o is not None:
                    same += [
                        self._val[w][k] == o.value,
                        self._rot[w][k] == self.rots.index(o.rotation),
                    ]
        return z3.Not(z3.And(same))
