"""The one table of Quill instructions. An op is defined here and nowhere else.

Each row of :data:`OPS` states everything the compiler knows about one instruction: its
surface mnemonic, operand kinds, family, slot semantics, what it does to a ciphertext's
size (relinearization), its depth, noise and cost keys, and the OpenFHE call that
implements it. Every consumer derives from the row instead of switching on op names:

* the interpreter, exact verification and the synthesizer's solver encodings evaluate the
  ``semantics`` in their own algebra (numpy mod T, polynomials, Z3 terms, or abstract
  domains such as "which inputs does this read" and "how large can a coefficient get");
* the noise and cost models look up ``noise`` and ``cost`` in their tables;
* the backend emits ``openfhe``; statistics group by ``family``;
* code that treats some ops specially asks the row's predicates (``rotates``, ``sums``,
  ``ct_ct_mult``, ...; on an opcode ``op.rotates``), :func:`opcode_for` and
  :func:`by_mnemonic`, never compares opcodes, families or mnemonics itself
  (``tests/test_op_tests.py`` counts such comparisons outside this module and the parser).

Semantics are written against a :class:`~quill.algebra.SlotAlgebra`; ops without a
rotation amount only use its ring operations, so they also evaluate slot by slot in any
:class:`~quill.algebra.ScalarRing` (:func:`apply_scalar`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from quill.algebra import ScalarRing, SlotAlgebra

V = TypeVar("V")


class _Singletons(Enum):
    """An enum hashed by identity: its members are singletons compared by identity, and
    Enum's own ``__hash__`` is Python code the pricing loops call millions of times (11 s
    of 106 in slot packing on Harris, profiled)."""

    __hash__ = object.__hash__


class Kind(_Singletons):
    """What a Quill value is at run time."""

    CT = "ct"  # a ciphertext
    PT = "pt"  # a plaintext (an input the server knows, or a constant)

    def __str__(self) -> str:
        return self.value


class Family(_Singletons):
    """What an op does, independent of its operand kinds."""

    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    NEG = "neg"
    ROT = "rot"
    SUM = "sum"
    RELIN = "relin"


class Opcode(_Singletons):
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
    SUM = "sum"
    RELIN = "relin"

    @property
    def info(self) -> OpInfo:
        return OPS[self]

    @property
    def rotates(self) -> bool:
        """A plain rotation (:attr:`OpInfo.rotates`)."""
        return OPS[self].rotates

    @property
    def sums(self) -> bool:
        """A window sum (:attr:`OpInfo.sums`)."""
        return OPS[self].sums

    @property
    def multiplies_ciphertexts(self) -> bool:
        """A ciphertext-ciphertext product (:attr:`OpInfo.ct_ct_mult`)."""
        return OPS[self].ct_ct_mult


@dataclass(frozen=True)
class OpInfo:
    """Everything the compiler knows about one instruction (one row of :data:`OPS`)."""

    opcode: Opcode
    mnemonic: str  # surface name in Quill text
    family: Family
    operands: tuple[Kind, ...]  # kinds of the value operands, in order
    semantics: Callable[..., Any]  # (algebra, *operands[, amount]) -> value
    cost: str  # row of a quill.cost latency table
    noise: str  # rule in quill.noise.GROWTH
    openfhe: str  # the CryptoContext method the backend calls
    commutative: bool = False
    has_amount: bool = False  # takes a constant amount (rotation, window)
    # An op with an amount reads other slots: output slot i reads these slots of its operand
    # (given i, the amount and the slot count n), and adds them up.
    reads: Callable[[int, int, int], tuple[int, ...]] | None = None
    # The rotation keys an instruction needs, given its amount (the client generates them).
    rotation_keys: Callable[[int], tuple[int, ...]] = lambda _amount: ()
    # Which amounts the op takes, in words for error messages, and as a test.
    amounts: str = "any integer"
    amount_ok: Callable[[int], bool] = lambda _amount: True
    ct_ct_mult: bool = False  # adds one to the multiplicative depth
    # Ciphertext size (quill.relin places the relinearizations): a ct*ct product has three
    # elements until it is relinearized. OpenFHE adds and negates three-element ciphertexts
    # correctly, but a three-element ciphertext meeting a two-element one or a plaintext,
    # or being rotated or multiplied, decrypts to garbage without an error (measured).
    grows: bool = False  # the result has three elements
    needs_linear: bool = False  # every ciphertext operand must have two elements
    same_size: bool = False  # both operands have the same size, which the result has
    relinearizes: bool = False  # the result has two elements, whatever the operand had
    key_switch: bool = False  # needs an evaluation key (rotation or relinearization)
    # The noise rule when an operand is a constant with one value in every slot (its
    # residue then bounds the growth; quill.noise), if it differs from `noise`.
    noise_uniform: str | None = None
    # Algebra the direct lowering folds with: the constant that leaves the other operand
    # unchanged on either side, and the one that makes the result itself.
    left_unit: int | None = None
    right_unit: int | None = None
    absorbing: int | None = None

    @property
    def arity(self) -> int:
        return len(self.operands)

    @property
    def plaintext_operand(self) -> bool:
        return Kind.PT in self.operands

    # Classification, for code that treats some ops specially: ask these, never compare
    # opcodes, families or mnemonics (tests/test_op_tests.py counts such comparisons).
    @property
    def rotates(self) -> bool:
        """A plain rotation by its amount (the backend may hoist it; the synthesizer keeps
        it in the operands)."""
        return self.family is Family.ROT

    @property
    def sums(self) -> bool:
        """A window sum (``EvalSum``): adds up ``amount`` consecutive slots."""
        return self.family is Family.SUM

    @property
    def counted(self) -> bool:
        """Counted as an instruction (the paper's count leaves out relinearizations)."""
        return not self.relinearizes

    @property
    def additive(self) -> bool:
        """An addition, subtraction or negation (of any operand kinds)."""
        return self.family in (Family.ADD, Family.SUB, Family.NEG)

    @property
    def adds_ciphertexts(self) -> bool:
        """The ciphertext-ciphertext addition."""
        return self.family is Family.ADD and Kind.PT not in self.operands

    @property
    def adds_plaintext(self) -> bool:
        """The ciphertext-plaintext addition."""
        return self.family is Family.ADD and Kind.PT in self.operands

    @property
    def multiplies_plaintext(self) -> bool:
        """The ciphertext-plaintext product."""
        return self.family is Family.MUL and Kind.PT in self.operands


CC = (Kind.CT, Kind.CT)
CP = (Kind.CT, Kind.PT)
C = (Kind.CT,)

# The table. `cost` names rows of quill.cost tables; `noise` rules of quill.noise.GROWTH.
_ROWS = (
    OpInfo(Opcode.ADD_CC, "add", Family.ADD, CC, lambda A, a, b: A.add(a, b),
           cost="add", noise="add", openfhe="EvalAdd", commutative=True, same_size=True,
           left_unit=0, right_unit=0),
    OpInfo(Opcode.SUB_CC, "sub", Family.SUB, CC, lambda A, a, b: A.sub(a, b),
           cost="add", noise="add", openfhe="EvalSub", same_size=True, right_unit=0),
    OpInfo(Opcode.MUL_CC, "mul", Family.MUL, CC, lambda A, a, b: A.mul(a, b),
           cost="mul_cc", noise="mul_cc", openfhe="EvalMultNoRelin", commutative=True,
           ct_ct_mult=True, grows=True, needs_linear=True, left_unit=1, right_unit=1,
           absorbing=0),
    OpInfo(Opcode.ADD_CP, "add", Family.ADD, CP, lambda A, a, b: A.add(a, b),
           cost="add_pt", noise="add", openfhe="EvalAdd", commutative=True, needs_linear=True,
           left_unit=0, right_unit=0),
    OpInfo(Opcode.SUB_CP, "sub", Family.SUB, CP, lambda A, a, b: A.sub(a, b),
           cost="add_pt", noise="add", openfhe="EvalSub", needs_linear=True, right_unit=0),
    OpInfo(Opcode.MUL_CP, "mul", Family.MUL, CP, lambda A, a, b: A.mul(a, b),
           cost="mul_pt", noise="mul_pt", openfhe="EvalMult", commutative=True,
           needs_linear=True, noise_uniform="mul_const", left_unit=1, right_unit=1,
           absorbing=0),
    OpInfo(Opcode.NEG, "neg", Family.NEG, C, lambda A, a: A.neg(a),
           cost="add", noise="none", openfhe="EvalNegate"),
    OpInfo(Opcode.ROT, "rot", Family.ROT, C, lambda A, a, k: A.rot(a, k),
           cost="rotate", noise="rotate", openfhe="EvalRotate", has_amount=True,
           reads=lambda i, k, n: ((i + k) % n,), rotation_keys=lambda k: (k,),
           needs_linear=True, key_switch=True),
    OpInfo(Opcode.SUM, "sum", Family.SUM, C, lambda A, a, k: _window_sum(A, a, k),
           cost="sum", noise="sum", openfhe="EvalSum", has_amount=True,
           reads=lambda i, k, n: tuple((i + j) % n for j in range(k)),
           rotation_keys=lambda k: sum_keys(k), needs_linear=True, key_switch=True,
           amounts="a power of two from 1 to 65536",
           amount_ok=lambda k: 0 < k <= 1 << 16 and k & (k - 1) == 0),
    OpInfo(Opcode.RELIN, "relin", Family.RELIN, C, lambda A, a: a,
           cost="relin", noise="relin", openfhe="Relinearize", relinearizes=True,
           key_switch=True),
)  # fmt: skip


def _window_sum(algebra: SlotAlgebra[V], a: V, k: int) -> V:
    """``out[i] = a[i] + a[i+1] + ... + a[i+k-1]`` (k a power of two), by doubling."""
    total, width = a, 1
    while width < k:
        total = algebra.add(total, algebra.rot(total, width))
        width *= 2
    return total


def sum_keys(k: int) -> tuple[int, ...]:
    """The rotations OpenFHE's ``EvalSum(ct, k)`` uses (a radix-4 fold: s, 2s, 3s for
    s = 1, 4, 16, ..., then s once more when log2 k is odd; measured on openfhe 1.6.1)."""
    keys, s = [], 1
    while s * 4 <= k:
        keys += [s, 2 * s, 3 * s]
        s *= 4
    if s < k:
        keys.append(s)
    return tuple(keys)


OPS: dict[Opcode, OpInfo] = {row.opcode: row for row in _ROWS}
assert set(OPS) == set(Opcode), "every opcode has exactly one row"


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


def opcode_for(family: Family, kinds: tuple[Kind, ...]) -> Opcode:
    """The opcode of ``family`` on operands of exactly ``kinds`` (KeyError if none)."""
    for info in OPS.values():
        if info.family is family and info.operands == kinds:
            return info.opcode
    raise KeyError(f"no {family.value} instruction takes {', '.join(map(str, kinds))}")


def by_mnemonic(mnemonic: str) -> OpInfo:
    """The first row with this surface mnemonic (forms of one mnemonic share its family,
    amount rule and wording; KeyError if none)."""
    for info in OPS.values():
        if info.mnemonic == mnemonic:
            return info
    raise KeyError(mnemonic)


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
    return result  # type: ignore[no-any-return]


def apply_scalar(ring: ScalarRing[V], opcode: Opcode, args: list[V]) -> V:
    """Apply an op without a rotation amount to single slot values of ``ring``: the same
    rule as :func:`apply`, slot by slot (the ring operations of a slot algebra are
    slot-wise)."""
    info = OPS[opcode]
    if info.has_amount:
        raise ValueError(f"{opcode.value} moves slots; evaluate it on whole vectors")
    return info.semantics(ring, *args)  # type: ignore[no-any-return]


def arithmetic(*families: Family) -> tuple[Opcode, ...]:
    """The opcodes of the given families, in table order."""
    return tuple(op for op, info in OPS.items() if info.family in families)
