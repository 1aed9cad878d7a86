"""The one table of Quill instructions: operand kinds, slot semantics, depth and cost keys.

Every other part of the compiler (parser, type checker, interpreters, noise analysis, cost
model, synthesizer encodings, code emitters) reads this table instead of switching on op
names, so an instruction's meaning is stated exactly once.

Semantics are written against a :class:`SlotAlgebra`, the carrier of slot vectors: numpy
arrays mod t (the interpreter), polynomial vectors (exact verification), Z3 bit-vectors (the
synthesizer). Rotation is part of the algebra because its meaning is fixed by the slot model
in :mod:`quill.slots`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, TypeVar

V = TypeVar("V")


class Kind(Enum):
    """What a Quill value is at run time."""

    CT = "ct"  # a ciphertext
    PT = "pt"  # a plaintext (an input the server knows, or a constant)

    def __str__(self) -> str:
        return self.value


class SlotAlgebra(Protocol[V]):
    """Slot-wise arithmetic mod t and cyclic rotation on some carrier of slot vectors."""

    def add(self, a: V, b: V) -> V: ...
    def sub(self, a: V, b: V) -> V: ...
    def mul(self, a: V, b: V) -> V: ...
    def neg(self, a: V) -> V: ...
    def rot(self, a: V, k: int) -> V:
        """Left-rotate: ``out[i] = a[(i + k) mod n]`` (see :mod:`quill.slots`)."""
        ...


class Opcode(Enum):
    """Quill instructions. The surface syntax names them by ``mnemonic``; the operand kinds
    decide between the ciphertext-ciphertext and ciphertext-plaintext forms."""

    ADD_CC = "add_cc"
    SUB_CC = "sub_cc"
    MUL_CC = "mul_cc"
    ADD_CP = "add_cp"
    SUB_CP = "sub_cp"
    MUL_CP = "mul_cp"
    NEG = "neg"
    ROT = "rot"

    @property
    def info(self) -> OpInfo:
        return OPS[self]


@dataclass(frozen=True)
class OpInfo:
    """Everything the compiler knows about one instruction."""

    opcode: Opcode
    mnemonic: str  # surface name in Quill text
    operands: tuple[Kind, ...]  # kinds of the value operands, in order
    has_amount: bool  # takes a constant rotation amount
    commutative: bool
    ct_ct_mult: bool  # adds one to the multiplicative depth
    noise: str  # key into quill.noise's growth table
    cost: str  # key into quill.cost's latency table
    semantics: Callable[..., object]  # (algebra, *operands[, amount]) -> value


def _op(
    opcode: Opcode,
    mnemonic: str,
    operands: tuple[Kind, ...],
    semantics: Callable[..., object],
    *,
    cost: str,
    noise: str,
    commutative: bool = False,
    ct_ct_mult: bool = False,
    has_amount: bool = False,
) -> tuple[Opcode, OpInfo]:
    return opcode, OpInfo(
        opcode, mnemonic, operands, has_amount, commutative, ct_ct_mult, noise, cost, semantics
    )


CC = (Kind.CT, Kind.CT)
CP = (Kind.CT, Kind.PT)

# The table. Cost keys name rows of quill.cost tables; noise keys rows of quill.noise.GROWTH.
OPS: dict[Opcode, OpInfo] = dict(
    [
        _op(Opcode.ADD_CC, "add", CC, lambda A, a, b: A.add(a, b),
            cost="add", noise="add", commutative=True),
        _op(Opcode.SUB_CC, "sub", CC, lambda A, a, b: A.sub(a, b), cost="add", noise="add"),
        _op(Opcode.MUL_CC, "mul", CC, lambda A, a, b: A.mul(a, b),
            cost="mul_cc", noise="mul_cc", commutative=True, ct_ct_mult=True),
        _op(Opcode.ADD_CP, "add", CP, lambda A, a, b: A.add(a, b),
            cost="add_pt", noise="add", commutative=True),
        _op(Opcode.SUB_CP, "sub", CP, lambda A, a, b: A.sub(a, b), cost="add_pt", noise="add"),
        _op(Opcode.MUL_CP, "mul", CP, lambda A, a, b: A.mul(a, b),
            cost="mul_pt", noise="mul_pt", commutative=True),
        _op(Opcode.NEG, "neg", (Kind.CT,), lambda A, a: A.neg(a), cost="add", noise="none"),
        _op(Opcode.ROT, "rot", (Kind.CT,), lambda A, a, k: A.rot(a, k),
            cost="rotate", noise="rotate", has_amount=True),
    ]
)  # fmt: skip


def resolve(mnemonic: str, kinds: tuple[Kind, ...]) -> Opcode | None:
    """The opcode for a surface mnemonic applied to operands of the given kinds, if any.

    Commutative ciphertext-plaintext ops also accept the plaintext first; the caller then
    swaps the operands into the table's order (see :func:`needs_swap`).
    """
    for info in OPS.values():
        if info.mnemonic != mnemonic:
            continue
        if info.operands == kinds or (info.commutative and info.operands == kinds[::-1]):
            return info.opcode
    return None


def needs_swap(opcode: Opcode, kinds: tuple[Kind, ...]) -> bool:
    """True when operands of ``kinds`` must be swapped to match ``opcode``'s operand order."""
    return OPS[opcode].operands != kinds


MNEMONICS: frozenset[str] = frozenset(info.mnemonic for info in OPS.values())


def apply(algebra: SlotAlgebra[V], opcode: Opcode, args: list[V], amount: int | None) -> V:
    """Apply ``opcode`` to slot vectors ``args`` in ``algebra``: the one evaluation rule."""
    info = OPS[opcode]
    result = (
        info.semantics(algebra, *args, amount)
        if info.has_amount
        else info.semantics(algebra, *args)
    )
    return result  # type: ignore[return-value]
