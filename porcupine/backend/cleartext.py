"""The cleartext backend: the part of OpenFHE an emitted kernel calls, on plain numpy slots.

An emitted module :func:`bind`-ed to :data:`OPENFHE` builds a :class:`ClearContext` in
``make_context`` and runs ``kernel`` without encryption, in milliseconds, with the slot
semantics of BFV in OpenFHE: two rows of N/2 slots mod t, rotations cyclic within each row
(HEIR's cleartext backend is the model). It is stricter than OpenFHE where OpenFHE is
silently wrong: it counts each ciphertext's elements (three after ``EvalMultNoRelin``, two
again after ``Relinearize``) and raises :class:`CleartextError` where a three-element
ciphertext meets a two-element one or a plaintext, is rotated, multiplied or decrypted as a
kernel's result (measured in OpenFHE 1.6.1: garbage slots, or a process abort for
``EvalMult`` by a plaintext). So a cleartext run also checks the relinearization placement
(:mod:`quill.relin`). It also refuses what OpenFHE refuses (missing keys, mixed key pairs,
values it cannot encode, EvalSum without ADVANCEDSHE, a modulus too large for the ring at
128-bit classic security) and decrypting under the wrong secret key. Its modulus Q is the one
OpenFHE builds for the parameter sets of :mod:`quill.params`; other settings have none.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt
import openfhe

from quill.noise import RING_DIM
from quill.ops import sum_keys
from quill.params import MAX_LOG2_Q, SETS

Rows = npt.NDArray[np.int64]  # shape (2, N/2): the two rows of slots, values in [0, t)


class CleartextError(RuntimeError):
    """An operation OpenFHE would compute wrongly without a word, abort on, or refuse."""


@dataclass(frozen=True, eq=False)
class ClearKey:
    """A public or secret key: only its tag, which OpenFHE copies into ciphertexts."""

    tag: str

    def GetKeyTag(self) -> str:
        return self.tag


@dataclass(frozen=True)
class ClearKeyPair:
    """``cc.KeyGen()``'s result, with OpenFHE's attribute names."""

    publicKey: ClearKey
    secretKey: ClearKey


@dataclass(frozen=True, eq=False)
class ClearCiphertext:
    """A ciphertext in the clear: its slots, its element count (3 for a ct*ct product not
    yet relinearized), OpenFHE's noise scale degree and the key tag it is under."""

    context: ClearContext
    rows: Rows
    elements: int
    degree: int
    tag: str

    def GetKeyTag(self) -> str:
        return self.tag

    def GetNoiseScaleDeg(self) -> int:
        return self.degree


class ClearPlaintext:
    """A packed plaintext in the clear. Mutable, as OpenFHE's is: ``SetLength``."""

    def __init__(self, context: ClearContext, rows: Rows) -> None:
        self.context, self.rows, self.length = context, rows, rows.size

    def SetLength(self, length: int) -> None:
        self.length = length

    def GetPackedValue(self) -> list[int]:
        """The first ``length`` slots, centred in [-t/2, t/2] as decryption returns them."""
        t = self.context.t
        values = self.rows.ravel()[: self.length]
        return [int(v) - t if v > t // 2 else int(v) for v in values]

    def GetNoiseScaleDeg(self) -> int:
        return 1


@dataclass(frozen=True, eq=False)
class ClearPrecompute:
    """``EvalFastRotationPrecompute``'s result: valid for its source ciphertext only."""

    source: ClearCiphertext


class ClearParams:
    """``openfhe.CCParamsBFVRNS``: the setters the runtime calls, with OpenFHE's defaults.
    Mutable, as OpenFHE's."""

    def __init__(self) -> None:
        self.t, self.depth, self.ring_dim = 0, 0, 0
        self.scaling_mod_size, self.digit_size = 60, 0
        self.security: Any = openfhe.HEStd_128_classic
        self.key_switching: Any = openfhe.BV
        self.multiplication: Any = openfhe.HPSPOVERQLEVELED

    def SetPlaintextModulus(self, t: int) -> None:
        self.t = t

    def SetMultiplicativeDepth(self, depth: int) -> None:
        self.depth = depth

    def SetSecurityLevel(self, level: Any) -> None:
        self.security = level

    def SetRingDim(self, ring_dim: int) -> None:
        self.ring_dim = ring_dim

    def SetScalingModSize(self, bits: int) -> None:
        self.scaling_mod_size = bits

    def SetDigitSize(self, bits: int) -> None:
        self.digit_size = bits

    def SetKeySwitchTechnique(self, technique: Any) -> None:
        self.key_switching = technique

    def SetMultiplicationTechnique(self, technique: Any) -> None:
        self.multiplication = technique


@dataclass(frozen=True)
class ClearElementParams:
    """``cc.GetElementParams()``: the modulus Q."""

    modulus: int | None

    def GetModulus(self) -> int:
        if self.modulus is None:
            raise CleartextError(
                "the cleartext backend knows Q only for the parameter sets of quill.params"
            )
        return self.modulus


def _modulus(params: ClearParams, ring_dim: int) -> int | None:
    """Q of the quill.params set these settings build (the multiplication technique does
    not change Q), if any."""
    build = (ring_dim, params.depth, params.scaling_mod_size, params.digit_size)
    for s in SETS:
        same = (s.ring_dim, s.mult_depth, s.scaling_mod_size, s.digit_size) == build
        if same and getattr(openfhe, s.key_switching) == params.key_switching:
            return s.modulus
    return None


Operand = ClearCiphertext | ClearPlaintext


class ClearContext:
    """``openfhe.GenCryptoContext(params)`` in the clear.

    The ring dimension is the one set, else the one OpenFHE picks for the depth at 128-bit
    classic security (:data:`quill.noise.RING_DIM`). Keys are tags: a relinearization key
    and rotation keys (by automorphism index, as OpenFHE files them) per secret key.
    """

    def __init__(self, params: ClearParams) -> None:
        self.t, self.depth = params.t, params.depth
        default = RING_DIM.get(max(params.depth, 1), max(RING_DIM.values()))
        self.ring_dim = params.ring_dim or default
        self.security = int(params.security)
        self.modulus = _modulus(params, self.ring_dim)
        bound = MAX_LOG2_Q.get(self.ring_dim, 0)
        secure = params.security == openfhe.HEStd_128_classic
        if secure and self.modulus and self.modulus.bit_length() - 1 > bound:  # as OpenFHE
            raise CleartextError(
                f"Ring dimension {self.ring_dim} specified by the user does not meet the "
                "security requirement"
            )
        self.digit_size = params.digit_size
        self.key_switching = params.key_switching
        self.multiplication = int(params.multiplication)
        self.features: set[Any] = set()
        self.mult_keys: set[str] = set()
        self.rotation_keys: dict[str, set[int]] = {}

    # --- parameters and keys ---------------------------------------------------------------

    def GetRingDimension(self) -> int:
        return self.ring_dim

    def GetCyclotomicOrder(self) -> int:
        return 2 * self.ring_dim

    def GetPlaintextModulus(self) -> int:
        return self.t

    def GetMultiplicativeDepth(self) -> int:
        return self.depth

    def GetElementParams(self) -> ClearElementParams:
        return ClearElementParams(self.modulus)

    def GetDigitSize(self) -> int:
        return self.digit_size

    def GetKeySwitchTechnique(self) -> Any:
        return self.key_switching

    def Enable(self, feature: Any) -> None:
        self.features.add(feature)

    def KeyGen(self) -> ClearKeyPair:
        key = ClearKey(uuid.uuid4().hex)
        return ClearKeyPair(key, key)

    def EvalMultKeyGen(self, secret: ClearKey) -> None:
        self.mult_keys.add(secret.tag)

    def EvalRotateKeyGen(self, secret: ClearKey, indices: list[int]) -> None:
        have = self.rotation_keys.setdefault(secret.tag, set())
        have.update(self.FindAutomorphismIndex(k) for k in indices)

    def GetAllEvalMultKeys(self) -> dict[str, tuple[()]]:
        return {tag: () for tag in self.mult_keys}

    def GetExistingEvalAutomorphismKeyIndices(self, tag: str) -> list[int]:
        return sorted(self.rotation_keys.get(tag, ()))

    def FindAutomorphismIndex(self, k: int) -> int:
        """OpenFHE's index for a rotation by ``k``: 5^k mod 2N (5 has order N/2)."""
        return pow(5, k % (self.ring_dim // 2), 2 * self.ring_dim)

    # --- encoding and encryption -----------------------------------------------------------

    def MakePackedPlaintext(self, values: list[int]) -> ClearPlaintext:
        if len(values) > self.ring_dim:
            raise CleartextError(f"{len(values)} values do not fit ring dimension {self.ring_dim}")
        array = np.array(values, dtype=np.int64)
        outside = np.abs(array) >= self.t
        if outside.any():  # as OpenFHE: "Cannot encode integer ..."
            raise CleartextError(f"cannot encode integer {array[outside][0]}: |v| >= t")
        rows = np.zeros(self.ring_dim, dtype=np.int64)
        rows[: array.size] = array % self.t
        return ClearPlaintext(self, rows.reshape(2, -1))

    def Encrypt(self, public: ClearKey, plaintext: ClearPlaintext) -> ClearCiphertext:
        self._own(plaintext)
        return ClearCiphertext(self, plaintext.rows.copy(), 2, 1, public.tag)

    def Decrypt(self, secret: ClearKey, ciphertext: ClearCiphertext) -> ClearPlaintext:
        self._own(ciphertext)
        if ciphertext.tag != secret.tag:
            raise CleartextError("Decrypt under another secret key: OpenFHE returns garbage")
        _linear(ciphertext, "decrypting a kernel's result", "an application computes on it")
        return ClearPlaintext(self, ciphertext.rows.copy())

    # --- arithmetic ------------------------------------------------------------------------

    def EvalAdd(self, a: Operand, b: Operand) -> ClearCiphertext:
        return self._linear_op("EvalAdd", a, b, np.add)

    def EvalSub(self, a: Operand, b: Operand) -> ClearCiphertext:
        return self._linear_op("EvalSub", a, b, np.subtract)

    def EvalNegate(self, a: ClearCiphertext) -> ClearCiphertext:
        self._own(a)  # three elements are fine: OpenFHE negates them correctly
        return self._result(a, -a.rows, a.elements, a.degree)

    def EvalMult(self, a: Operand, b: Operand) -> ClearCiphertext:
        if isinstance(a, ClearPlaintext):
            a, b = b, a
        if not isinstance(a, ClearCiphertext):
            raise TypeError("EvalMult needs a ciphertext operand")
        if isinstance(b, ClearCiphertext):  # OpenFHE's relinearizing ct*ct multiply
            return self.Relinearize(self.EvalMultNoRelin(a, b))
        self._own(a, b)
        _linear(a, "EvalMult by a plaintext", "aborts the process")
        return self._result(a, a.rows * b.rows, 2, a.degree)

    def EvalMultNoRelin(self, a: ClearCiphertext, b: ClearCiphertext) -> ClearCiphertext:
        if not (isinstance(a, ClearCiphertext) and isinstance(b, ClearCiphertext)):
            raise TypeError("EvalMultNoRelin multiplies two ciphertexts")
        self._own(a, b)
        self._same_keys(a, b)
        for c in (a, b):  # OpenFHE makes 4 or 5 elements that Relinearize then refuses
            _linear(c, "EvalMultNoRelin", "makes a ciphertext Relinearize cannot reduce")
        return self._result(a, a.rows * b.rows, 3, max(a.degree, b.degree) + 1)

    def Relinearize(self, a: ClearCiphertext) -> ClearCiphertext:
        self._own(a)
        if a.elements > 2 and a.tag not in self.mult_keys:
            raise CleartextError("Relinearize without a relinearization key (EvalMultKeyGen)")
        return self._result(a, a.rows, 2, a.degree)

    def EvalRotate(self, a: ClearCiphertext, k: int) -> ClearCiphertext:
        self._own(a)
        _linear(a, "EvalRotate", "rotates it to garbage")
        return self._rotated(a, k)

    def EvalSum(self, a: ClearCiphertext, k: int) -> ClearCiphertext:
        """The forward window sum ``out[i] = a[i] + ... + a[i + k - 1]``, cyclic within each
        row (OpenFHE's radix-4 fold: rotations by s, 2s, 3s for s = 1, 4, 16, ...)."""
        self._own(a)
        if openfhe.ADVANCEDSHE not in self.features:
            raise CleartextError("EvalSum: Enable(ADVANCEDSHE) must be called (OpenFHE)")
        _linear(a, "EvalSum", "sums it to garbage")
        if k < 1 or k & (k - 1) or k > self.ring_dim // 2:
            raise CleartextError(
                f"EvalSum(ct, {k}): OpenFHE sums a power-of-two window within a row of "
                f"{self.ring_dim // 2} slots; other windows come out wrong"
            )
        for index in sum_keys(k):
            self._key(a, index, f"EvalSum(ct, {k})")
        rows = sum(np.roll(a.rows, -j, axis=1) for j in range(k))
        return self._result(a, np.asarray(rows), a.elements, a.degree)

    def EvalFastRotationPrecompute(self, a: ClearCiphertext) -> ClearPrecompute:
        self._own(a)
        _linear(a, "EvalFastRotationPrecompute", "rotates it to garbage")
        return ClearPrecompute(a)

    def EvalFastRotation(
        self, a: ClearCiphertext, k: int, order: int, pre: ClearPrecompute
    ) -> ClearCiphertext:
        self._own(a)
        if pre.source is not a:
            raise CleartextError("EvalFastRotation with another ciphertext's precompute")
        if order != self.GetCyclotomicOrder():
            raise CleartextError(f"EvalFastRotation with order {order}, not the context's")
        return self._rotated(a, k)

    # --- helpers ---------------------------------------------------------------------------

    def _own(self, *operands: object) -> None:
        for x in operands:
            if not isinstance(x, ClearCiphertext | ClearPlaintext):
                raise TypeError(f"not a ciphertext or plaintext: {type(x).__name__}")
            if x.context is not self:
                raise CleartextError("an operand from another crypto context")

    def _same_keys(self, a: ClearCiphertext, b: ClearCiphertext) -> None:
        if a.tag != b.tag:  # as OpenFHE's TypeCheck
            raise CleartextError("Ciphertexts were not encrypted with same keys")

    def _result(
        self, like: ClearCiphertext, rows: Rows, elements: int, degree: int
    ) -> ClearCiphertext:
        return ClearCiphertext(self, rows % self.t, elements, degree, like.tag)

    def _linear_op(
        self, name: str, a: Operand, b: Operand, op: Callable[[Rows, Rows], Rows]
    ) -> ClearCiphertext:
        self._own(a, b)
        first = a if isinstance(a, ClearCiphertext) else b
        if not isinstance(first, ClearCiphertext):
            raise TypeError(f"{name} needs a ciphertext operand")
        if isinstance(a, ClearCiphertext) and isinstance(b, ClearCiphertext):
            self._same_keys(a, b)
            if a.elements != b.elements:
                raise CleartextError(
                    f"{name} of a {a.elements}-element and a {b.elements}-element ciphertext: "
                    "OpenFHE returns garbage without an error; relinearize the product first"
                )
        else:
            _linear(first, f"{name} with a plaintext", "returns garbage without an error")
        # As OpenFHE: the result takes the first operand's metadata.
        return self._result(first, op(a.rows, b.rows), first.elements, first.degree)

    def _rotated(self, a: ClearCiphertext, k: int) -> ClearCiphertext:
        row = self.ring_dim // 2
        if not -row < k < row:  # OpenFHE picks an automorphism that mixes the rows
            raise CleartextError(f"rotation by {k}: OpenFHE rotates correctly only by |k| < N/2")
        self._key(a, k, "rotation")
        return self._result(a, np.roll(a.rows, -k, axis=1), a.elements, a.degree)

    def _key(self, a: ClearCiphertext, k: int, what: str) -> None:
        if self.FindAutomorphismIndex(k) not in self.rotation_keys.get(a.tag, ()):
            raise CleartextError(f"no rotation key for index {k} (OpenFHE: map::at), for {what}")


def _linear(a: ClearCiphertext, what: str, consequence: str) -> None:
    """Raise unless ``a`` has two elements."""
    if a.elements != 2:
        raise CleartextError(
            f"{what} of a {a.elements}-element ciphertext (a ct*ct product not relinearized): "
            f"OpenFHE {consequence}; relinearize it first"
        )


def serialize(obj: object, fmt: object) -> str:
    """``openfhe.Serialize`` of a context: the fields the runtime reads."""
    if not isinstance(obj, ClearContext):
        raise TypeError(f"cannot serialize {type(obj).__name__} in the cleartext backend")
    enabled = sum(int(feature) for feature in obj.features)
    settings = {"slv": obj.security, "muls": obj.multiplication}
    return json.dumps({"value0": settings, "enabled": enabled})


OPENFHE = SimpleNamespace(
    CCParamsBFVRNS=ClearParams,
    GenCryptoContext=ClearContext,
    Ciphertext=ClearCiphertext,
    Plaintext=ClearPlaintext,
    Serialize=serialize,
    JSON=openfhe.JSON,
    PKE=openfhe.PKE,
    KEYSWITCH=openfhe.KEYSWITCH,
    LEVELEDSHE=openfhe.LEVELEDSHE,
    ADVANCEDSHE=openfhe.ADVANCEDSHE,
    SecurityLevel=openfhe.SecurityLevel,
    KeySwitchTechnique=openfhe.KeySwitchTechnique,
    MultiplicationTechnique=openfhe.MultiplicationTechnique,
    **openfhe.SecurityLevel.__members__,
    **openfhe.KeySwitchTechnique.__members__,
    **openfhe.MultiplicationTechnique.__members__,
)
"""What an emitted module sees as ``openfhe`` on the cleartext backend."""


def bind(module: object) -> None:
    """Make ``module`` (an emitted kernel module) run on the cleartext backend: its
    functions look ``openfhe`` up when called, and find :data:`OPENFHE`."""
    vars(module)["openfhe"] = OPENFHE
