"""Porcupine's local-rotate sketch, and the programs that fill it.

A sketch of L components over the spec's inputs: component k is ``op(rot(a, ra), rot(b, rb))``
where ``op`` comes from the allowed set, ``a`` and ``b`` are inputs, constants or earlier
components, and each rotation amount is 0 or an allowed amount. Holes are the op, the
operands and the rotations; the last component is the result.

This module holds the sketch's value space and its filled-in programs, with no solver: the
Z3 encoding (:mod:`porcupine.search.encode`) fills holes, :func:`to_quill` lowers the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from porcupine.search.restrictions import Restrictions
from quill.ir import Const, Instr, Param, Program
from quill.ops import OPS, Kind, Opcode
from quill.spec import Spec


@dataclass(frozen=True)
class Leaf:
    """A value the sketch starts from: a ciphertext input, a plaintext input or a constant."""

    name: str
    kind: Kind
    constant: int | None = None


@dataclass(frozen=True)
class Space:
    """The leaves (ciphertexts first, then plaintexts) and the restrictions of a sketch."""

    leaves: tuple[Leaf, ...]
    restrictions: Restrictions
    n: int

    @property
    def n_ct(self) -> int:
        return sum(1 for leaf in self.leaves if leaf.kind is Kind.CT)

    def is_ct(self, value: int) -> bool:
        """Whether value index ``value`` (leaves, then components) is a ciphertext."""
        return value >= len(self.leaves) or self.leaves[value].kind is Kind.CT


def space_for(spec: Spec, restrictions: Restrictions) -> Space:
    """The sketch's value space for ``spec``."""
    ct = [Leaf(d.name, d.kind) for d in spec.inputs if d.kind is Kind.CT]
    pt = [Leaf(d.name, d.kind) for d in spec.inputs if d.kind is Kind.PT]
    consts = [Leaf(_const_name(c), Kind.PT, c) for c in restrictions.constants]
    return Space(tuple(ct + pt + consts), restrictions, spec.n)


def _const_name(c: int) -> str:
    return f"k{c}" if c >= 0 else f"k_neg{-c}"


@dataclass(frozen=True)
class Operand:
    value: int  # index: leaves first, then components
    rotation: int  # 0, or an allowed amount


@dataclass(frozen=True)
class Component:
    op: Opcode
    a: Operand
    b: Operand | None  # None for unary ops
    amount: int | None = None  # for an op with an amount (the sum's window)


@dataclass(frozen=True)
class Filled:
    """A sketch with every hole filled."""

    components: tuple[Component, ...]


def to_quill(filled: Filled, space: Space, name: str) -> Program:
    """Lower a filled sketch to a Quill program: each non-zero operand rotation becomes one
    ``rot`` instruction (shared when two operands rotate the same value by the same amount)."""
    names = [leaf.name for leaf in space.leaves]
    names += [f"t{k}" for k in range(len(filled.components))]
    body: list[Instr] = []
    rotated: dict[tuple[int, int], str] = {}

    def operand(o: Operand) -> str:
        if o.rotation == 0:
            return names[o.value]
        key = (o.value, o.rotation)
        if key not in rotated:
            suffix = f"{o.rotation}" if o.rotation > 0 else f"neg{-o.rotation}"
            rotated[key] = f"{names[o.value]}_r{suffix}"
            body.append(Instr(rotated[key], Opcode.ROT, (names[o.value],), o.rotation))
        return rotated[key]

    for k, comp in enumerate(filled.components):
        args = [operand(comp.a)] + ([operand(comp.b)] if comp.b is not None else [])
        body.append(Instr(names[len(space.leaves) + k], comp.op, tuple(args), comp.amount))
    params = tuple(Param(leaf.name, leaf.kind) for leaf in space.leaves if leaf.constant is None)
    consts = tuple(
        Const(leaf.name, (leaf.constant,)) for leaf in space.leaves if leaf.constant is not None
    )
    used = _used_names(body, names[-1])
    return Program(
        name,
        params,
        tuple(c for c in consts if c.name in used),
        tuple(i for i in body if i.dest in used),
        names[-1],
    )


def _used_names(body: list[Instr], result: str) -> set[str]:
    """Names the result depends on (dead components are dropped)."""
    live = {result}
    for ins in reversed(body):
        if ins.dest in live:
            live.update(ins.args)
    return live


def arity(op: Opcode) -> int:
    return len(OPS[op].operands)


def from_quill(program: Program, space: Space) -> Filled | None:
    """The filled sketch a program is, when it has the sketch's shape: every instruction
    other than a rotation is a component whose operands are values or rotations of values,
    over the sketch's leaves. ``None`` otherwise (a rotation of a rotation, say)."""
    index = {leaf.name: k for k, leaf in enumerate(space.leaves)}
    consts = {c.name: c.values for c in program.consts}
    for name, values in consts.items():
        match = [k for k, leaf in enumerate(space.leaves) if leaf.constant is not None
                 and (leaf.constant,) == values]  # fmt: skip
        if not match:
            return None
        index[name] = match[0]
    rotated: dict[str, Operand] = {}
    components: list[Component] = []
    for ins in program.body:
        if ins.opcode.rotates:
            if ins.args[0] not in index or ins.amount is None:
                return None
            rotated[ins.dest] = Operand(index[ins.args[0]], ins.amount)
            continue
        operands = []
        for a in ins.args:
            if a in rotated:
                operands.append(rotated[a])
            elif a in index:
                operands.append(Operand(index[a], 0))
            else:
                return None
        b = operands[1] if len(operands) > 1 else None
        components.append(Component(ins.opcode, operands[0], b, ins.amount))
        index[ins.dest] = len(space.leaves) + len(components) - 1
    if not components or index.get(program.result) != len(space.leaves) + len(components) - 1:
        return None
    return Filled(tuple(components))
