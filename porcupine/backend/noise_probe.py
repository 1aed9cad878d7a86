"""Encrypted probes of the noise model (:mod:`quill.noise`) at the edge of each parameter set.

A probe runs a Quill program emitted for a parameter set under real OpenFHE, on worst-case
inputs (:func:`~porcupine.backend.rawnoise.worst_slots`: every plaintext coefficient at
+-(t-1)/2, in every slot of both rows), and checks two things: that every one of the N slots
decrypts to what the cleartext backend computes from the same slots (a wrong decryption is
a model that undershot), and that the noise measured exactly (:class:`RawDecryptor`) is no
more than the model predicts. The programs are the noisiest patterns kernels are made of, at
the longest length the model accepts on the set (:func:`edge`): chains of squarings, ct*pt
multiplies by plaintexts and by constants (one value in every slot), rotations then
multiplies, sums of products, EvalSum.

``tests/test_noise_probe.py`` runs the probes at the small sets; ``eval/noise_probe.py`` at
every set, with more seeds, and calibrates the model's constants (:func:`primitives`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from porcupine.backend.kernel_module import EmittedKernel, emitted_module
from porcupine.backend.openfhe_run import Session
from porcupine.backend.options import EmitOptions
from porcupine.backend.planning import new_context
from porcupine.backend.program_spec import ProgramSpec
from porcupine.backend.rawnoise import RawDecryptor, packing_root, worst_slots
from quill.ir import Const, Instr, Param, Program
from quill.noise import accepts, noise_bits
from quill.ops import Kind, Opcode
from quill.params import ParameterSet
from quill.relin import place_relinearizations
from quill.slots import T

Rows = npt.NDArray[np.int64]  # all N slot values

SLOTS = 16
"""The probes' kernel slot count (EvalSum windows and rotations stay within it)."""


class _Chain:
    """Accumulates the instructions of one pattern's program."""

    def __init__(self) -> None:
        self.body: list[Instr] = []

    def op(self, opcode: Opcode, *args: str, amount: int | None = None) -> str:
        dest = f"v{len(self.body)}"
        self.body.append(Instr(dest, opcode, args, amount))
        return dest

    def program(self, name: str, plaintext: bool, constant: int | None = None) -> Program:
        params = [Param("x", Kind.CT)] + ([Param("p", Kind.PT)] if plaintext else [])
        consts = () if constant is None else (Const("k", (constant,)),)
        return Program(name, tuple(params), consts, tuple(self.body), self.body[-1].dest)


def _rounds(
    name: str, step: Callable[[_Chain, str], str], plaintext: bool, constant: int | None
) -> Callable[[int], Program]:
    """A pattern of ``length`` repetitions of ``step`` on the running value (``constant``:
    the value of the uniform constant ``k`` it multiplies by, if any)."""

    def build(length: int) -> Program:
        chain, value = _Chain(), "x"
        for _ in range(length):
            value = step(chain, value)
        return chain.program(f"{name}_{length}", plaintext, constant)

    return build


def _products(chain: _Chain, c: str, ct_ct: bool) -> str:
    """The sum of 16 products ``rot(c, j) * c`` (ct*ct, relinearized once) or ``* p``."""
    total = ""
    for j in range(16):
        r = chain.op(Opcode.ROT, c, amount=j) if j else c
        product = chain.op(Opcode.MUL_CC, r, c) if ct_ct else chain.op(Opcode.MUL_CP, r, "p")
        total = chain.op(Opcode.ADD_CC, total, product) if total else product
    return total


def _rot(ch: _Chain, c: str) -> str:
    return ch.op(Opcode.ROT, c, amount=1)


def _window(ch: _Chain, c: str) -> str:
    return ch.op(Opcode.SUM, c, amount=SLOTS)


def _by_k(ch: _Chain, c: str) -> str:
    return ch.op(Opcode.MUL_CP, c, "k")


_STEPS: dict[str, tuple[Callable[[_Chain, str], str], bool, int, int | None]] = {
    "rot_add": (lambda ch, c: ch.op(Opcode.ADD_CC, c, _rot(ch, c)), False, 16, None),
    "evalsum": (_window, False, 12, None),
    "square": (lambda ch, c: ch.op(Opcode.MUL_CC, c, c), False, 8, None),
    "mul_pt": (lambda ch, c: ch.op(Opcode.MUL_CP, c, "p"), True, 12, None),
    "rot_mul_pt": (lambda ch, c: ch.op(Opcode.MUL_CP, _rot(ch, c), "p"), True, 12, None),
    "rot_square": (lambda ch, c: ch.op(Opcode.MUL_CC, *[_rot(ch, c)] * 2), False, 8, None),
    "sum_cc": (lambda ch, c: _products(ch, c, True), False, 6, None),
    "sum_pt": (lambda ch, c: _products(ch, c, False), True, 10, None),
    "evalsum_pt": (lambda ch, c: _window(ch, ch.op(Opcode.MUL_CP, c, "p")), True, 12, None),
    "evalsum_cc": (lambda ch, c: _window(ch, ch.op(Opcode.MUL_CC, c, c)), False, 8, None),
    "mul_const": (_by_k, False, 20, T - 1),
    "rot_mul_const": (lambda ch, c: _by_k(ch, _rot(ch, c)), False, 24, 255),
    "square_const": (lambda ch, c: _by_k(ch, ch.op(Opcode.MUL_CC, c, c)), False, 8, 16),
}

PATTERNS: dict[str, tuple[Callable[[int], Program], int]] = {
    name: (_rounds(name, step, plaintext, constant), most)
    for name, (step, plaintext, most, constant) in _STEPS.items()
}
"""Each pattern's builder (length -> program) and the longest length tried: ``rot_add``
rotates by one and adds, ``evalsum`` sums the 16-slot window; ``square`` squares, ``mul_pt``
multiplies by the plaintext input ``p``; ``rot_*`` rotate first; ``sum_cc`` / ``sum_pt`` add
16 products of the value's rotations with the value / with ``p`` (relinearized once);
``evalsum_*`` multiply, then EvalSum; ``*_const`` multiply by a constant of one value in
every slot: t - 1 (the largest residue, 16 bits of growth), 255 after a rotation, 16 after
a squaring (as Harris does)."""


def edge(pattern: str, param_set: ParameterSet) -> int:
    """The longest ``pattern`` the noise model accepts on ``param_set`` (0: none)."""
    build, most = PATTERNS[pattern]
    longest = 0
    for length in range(1, most + 1):
        if not accepts(param_set, build(length), SLOTS):
            break
        longest = length
    return longest


@dataclass(frozen=True)
class ProbeRun:
    """One encrypted run of a probe program."""

    program: str
    param_set: str
    predicted: float  # the model's noise for the result, log2 |e|
    measured: float  # the exact noise of OpenFHE's result
    capacity: float  # log2 Q - log2 t - 1
    wrong_slots: int  # of all N, against the cleartext backend

    @property
    def budget(self) -> float:
        """Measured bits left before decryption fails."""
        return self.capacity - self.measured

    @property
    def slack(self) -> float:
        """How far the prediction is above the measurement (negative: the model undershot)."""
        return self.predicted - self.measured


def _modules(program: Program, param_set: ParameterSet) -> tuple[EmittedKernel, EmittedKernel]:
    spec = ProgramSpec(program, SLOTS)
    return tuple(  # type: ignore[return-value]
        emitted_module(program, spec, EmitOptions(param_set=param_set), cleartext_backend=clear)
        for clear in (False, True)
    )


def _full_rows(session: Session, values: dict[str, Rows], kinds: dict[str, str]) -> dict[str, Any]:
    """The inputs as ciphertexts or plaintexts of all N slot values (not tiled)."""
    cc, keys = session.cc, session.keys
    args: dict[str, Any] = {}
    for name, kind in kinds.items():
        plain = cc.MakePackedPlaintext([int(v) for v in values[name]])
        args[name] = cc.Encrypt(keys.publicKey, plain) if kind == "ct" else plain
    return args


def _decrypt_all(session: Session, ciphertext: Any) -> Rows:
    n = session.cc.GetRingDimension()
    plain = session.cc.Decrypt(session.keys.secretKey, ciphertext)
    plain.SetLength(n)
    return np.array(plain.GetPackedValue()[:n], dtype=np.int64) % T


@functools.cache
def _worst(ring_dim: int, root: int, seed: int, count: int) -> tuple[Rows, ...]:
    """``count`` worst-case slot vectors (the same for every set of one ring dimension)."""
    rng = np.random.default_rng(seed)
    return tuple(worst_slots(ring_dim, root, rng) for _ in range(count))


_ROOTS: dict[int, int] = {}  # OpenFHE's packing root per ring dimension, read once


def run(program: Program, param_set: ParameterSet, seed: int = 0) -> ProbeRun:
    """Run ``program`` on ``param_set`` on worst-case inputs drawn with ``seed`` (see the
    module docstring)."""
    module, clear = _modules(program, param_set)
    session, fake = Session([module]), Session([clear])
    decryptor = RawDecryptor(session.cc, session.keys.secretKey)
    ring = param_set.ring_dim
    if ring not in _ROOTS:
        _ROOTS[ring] = packing_root(session.cc, session.keys, decryptor)
    worst = _worst(ring, _ROOTS[ring], seed, len(module.INPUTS))
    values = dict(zip(module.INPUTS, worst, strict=True))
    out = module.evaluate(session.cc, **_full_rows(session, values, module.INPUTS))
    want = _decrypt_all(fake, clear.evaluate(fake.cc, **_full_rows(fake, values, clear.INPUTS)))
    got = _decrypt_all(session, out)
    noise = decryptor.noise(out)
    lowered = place_relinearizations(program)
    predicted = noise_bits(lowered, param_set)[lowered.result]
    wrong = int(np.count_nonzero(got != want))
    return ProbeRun(program.name, param_set.name, predicted, noise.bits, noise.capacity, wrong)


@dataclass(frozen=True)
class Primitive:
    """Measured noise of the model's primitive steps on one set, in bits (one sample)."""

    fresh: float
    key_switch: float  # a rotation of a fresh ciphertext
    relin_key_switch: float  # what relinearization added to a product
    mul_pt: float  # growth of ct*pt, the most over fresh, rotated and multiplied operands
    mul_cc: float  # growth of ct*ct over the sum of its operands' noise
    add_pt: float  # change of a plaintext addition
    mul_const: float  # growth of ct*pt by a uniform constant c, over log2 (c mod t)


CONSTANTS = (2, 3, 16, 255, 4096, 32768, T - 16, T - 1)
"""The uniform constants :func:`primitives` multiplies by (as the runtime packs them)."""


def primitives(param_set: ParameterSet, seed: int = 0) -> Primitive:
    """One sample of every primitive the model has a constant for, on worst-case inputs."""
    cc: Any = new_context(param_set)
    keys = cc.KeyGen()
    cc.EvalMultKeyGen(keys.secretKey)
    cc.EvalRotateKeyGen(keys.secretKey, [1])
    decryptor = RawDecryptor(cc, keys.secretKey)
    root = packing_root(cc, keys, decryptor)
    rng = np.random.default_rng(seed)

    def plain() -> Any:
        return cc.MakePackedPlaintext([int(v) for v in worst_slots(param_set.ring_dim, root, rng)])

    def bits(ct: Any) -> float:
        return decryptor.noise(ct).bits

    x, y, p = cc.Encrypt(keys.publicKey, plain()), cc.Encrypt(keys.publicKey, plain()), plain()
    rotated = cc.EvalRotate(x, 1)
    product = cc.EvalMultNoRelin(x, y)
    relinearized = cc.Relinearize(product)
    scaled = cc.EvalMult(x, p)
    growth_pt = [bits(cc.EvalMult(c, p)) - bits(c) for c in (x, rotated, scaled)]
    pairs = ((x, y), (rotated, y), (relinearized, relinearized), (scaled, rotated))
    growth_cc = [bits(cc.EvalMultNoRelin(a, b)) - _lse(bits(a), bits(b)) for a, b in pairs]
    added = bits(relinearized) - bits(product)
    n = param_set.ring_dim
    growth_const = [
        bits(cc.EvalMult(c, cc.MakePackedPlaintext([k] * n))) - bits(c) - float(np.log2(k))
        for k in CONSTANTS
        for c in (x, rotated, scaled)
    ]
    return Primitive(
        fresh=max(bits(x), bits(y)),
        key_switch=bits(rotated),
        relin_key_switch=bits(product) + np.log2(2.0**added - 1) if added > 0 else 0.0,
        mul_pt=max(growth_pt),
        mul_cc=max(growth_cc),
        add_pt=bits(cc.EvalAdd(scaled, p)) - bits(scaled),
        mul_const=max(growth_const),
    )


def _lse(a: float, b: float) -> float:
    return max(a, b) + float(np.log2(1 + 2.0 ** -abs(a - b)))
