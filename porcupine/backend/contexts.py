"""Contexts other than a kernel's own, timed key generation and key sizes (for the evaluation).

An emitted kernel builds exactly its parameter set (:func:`porcupine.backend.planning.new_context`
builds any set the same way). To compare with what an HE programmer writes by hand, this
module also builds :func:`default_context`: OpenFHE's own choice for a multiplicative depth
(``SetMultiplicativeDepth(d)``, t = 65537, 128-bit classic, nothing else set), and finds the
parameter set of :mod:`quill.params` that matches a context (:func:`matching_set`), so that
a kernel emitted for that set makes its emission decisions (hoisting) for the right ring.

:func:`timed_keys` generates a kernel's keys as the emitted ``generate_keys`` does, timing
the key pair, the relinearization key and the rotation keys apart, and measures the
rotation keys' serialized size. :class:`ContextSession` is a
:class:`~porcupine.backend.openfhe_run.Session` in a context built elsewhere; it runs a
module's ``evaluate`` (the kernel's OpenFHE calls, without ``kernel``'s context checks,
which refuse any context but the module's own).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import openfhe

from porcupine.backend.kernel_module import EmittedKernel
from porcupine.backend.openfhe_run import Session
from porcupine.backend.options import DEFAULT_SECURITY
from quill.params import SETS, ParameterSet
from quill.slots import T


def default_context(
    depth: int, *, advanced_she: bool = False, security: str = DEFAULT_SECURITY
) -> Any:
    """OpenFHE's default BFV context for multiplicative depth ``depth``: what
    ``CCParamsBFVRNS`` with ``SetMultiplicativeDepth(depth)``, ``SetPlaintextModulus(65537)``
    and ``SetSecurityLevel(security)`` builds (ring dimension, towers, key switching, digit
    size and multiplication technique all OpenFHE's), with PKE, KEYSWITCH and LEVELEDSHE
    enabled, and ADVANCEDSHE if ``advanced_she``."""
    params = openfhe.CCParamsBFVRNS()
    params.SetPlaintextModulus(T)
    params.SetMultiplicativeDepth(depth)
    params.SetSecurityLevel(getattr(openfhe, security))
    cc = openfhe.GenCryptoContext(params)
    for feature in (openfhe.PKE, openfhe.KEYSWITCH, openfhe.LEVELEDSHE):
        cc.Enable(feature)
    if advanced_she:
        cc.Enable(openfhe.ADVANCEDSHE)
    return cc


@dataclass(frozen=True)
class ContextFacts:
    """What a context is: ring dimension, modulus and key switching."""

    ring_dim: int
    log2_q: float
    digit_size: int  # 0: one digit per tower
    key_switching: str

    def describe(self) -> str:
        digit = f"digit {self.digit_size}" if self.digit_size else "one digit per tower"
        return f"N = {self.ring_dim}, log2 Q = {self.log2_q:.0f}, {self.key_switching} with {digit}"


def context_facts(cc: Any) -> ContextFacts:
    """The ring dimension, log2 Q, digit size and key switching of ``cc``."""
    technique = cc.GetKeySwitchTechnique()
    return ContextFacts(
        ring_dim=int(cc.GetRingDimension()),
        log2_q=math.log2(int(cc.GetElementParams().GetModulus())),
        digit_size=int(cc.GetDigitSize()),
        key_switching=str(getattr(technique, "name", technique)),
    )


def matching_set(cc: Any) -> ParameterSet:
    """The :mod:`quill.params` set with ``cc``'s ring dimension, modulus Q, digit size and
    key switching (the multiplication technique may differ); failing that, the set of the
    same ring dimension and key switching whose log2 Q is nearest. ValueError when no set
    has the ring dimension."""
    facts = context_facts(cc)
    modulus = int(cc.GetElementParams().GetModulus())
    same_ring = [
        s for s in SETS if s.ring_dim == facts.ring_dim and s.key_switching == facts.key_switching
    ]
    for s in same_ring:
        if s.modulus == modulus and s.digit_size == facts.digit_size:
            return s
    if not same_ring:
        raise ValueError(f"no parameter set of quill.params has {facts.describe()}")
    return min(same_ring, key=lambda s: (abs(s.log2_q - facts.log2_q), s.digit_size))


@dataclass(frozen=True)
class KeyGenStats:
    """One timed key generation (seconds) and the rotation keys it made."""

    keypair_s: float
    relin_s: float  # EvalMultKeyGen, 0 when the kernel needs no relinearization key
    rotation_s: float  # EvalRotateKeyGen of every rotation index (EvalSum's included)
    rotation_keys: int
    rotation_key_bytes: int  # the rotation keys serialized (OpenFHE's BINARY format)

    @property
    def evaluation_keys_s(self) -> float:
        """Rotation plus relinearization keys: what the client generates for the kernel."""
        return self.relin_s + self.rotation_s


def rotation_key_bytes(key_tag: str) -> int:
    """The size of every rotation (automorphism) key of ``key_tag``, serialized in
    OpenFHE's BINARY format; 0 when there are none."""
    try:
        data = openfhe.SerializeEvalAutomorphismKeyString(openfhe.BINARY, key_tag)
    except RuntimeError:  # no automorphism key under this tag
        return 0
    return len(data)


def timed_keys(
    cc: Any, rotation_indices: Sequence[int], ct_ct_mult: bool, *, measure_bytes: bool = True
) -> tuple[Any, KeyGenStats]:
    """A key pair with the keys a kernel needs, generated as the emitted ``generate_keys``
    does (relinearization key if ``ct_ct_mult``, rotation keys for ``rotation_indices``),
    each step timed; and the rotation keys' serialized size (unless not ``measure_bytes``)."""
    start = time.perf_counter()
    keys = cc.KeyGen()
    after_pair = time.perf_counter()
    if ct_ct_mult:
        cc.EvalMultKeyGen(keys.secretKey)
    after_relin = time.perf_counter()
    if rotation_indices:
        cc.EvalRotateKeyGen(keys.secretKey, list(rotation_indices))
    end = time.perf_counter()
    tag = keys.secretKey.GetKeyTag()
    size = rotation_key_bytes(tag) if measure_bytes and rotation_indices else 0
    stats = KeyGenStats(
        keypair_s=after_pair - start,
        relin_s=after_relin - after_pair if ct_ct_mult else 0.0,
        rotation_s=end - after_relin if rotation_indices else 0.0,
        rotation_keys=len(set(rotation_indices)),
        rotation_key_bytes=size,
    )
    return keys, stats


def clear_rotation_keys() -> None:
    """Drop every rotation key OpenFHE holds (they live in a process-wide map)."""
    openfhe.CryptoContext.ClearEvalAutomorphismKeys()


class ContextSession(Session):
    """A :class:`Session` in the context ``cc``, built by the caller (any parameters), with
    keys for ``modules`` generated by :func:`timed_keys` (``keygen`` holds the timings).

    :meth:`run` calls the module's ``evaluate``: the kernel's OpenFHE calls only, which run
    in any context with the keys (``kernel`` would refuse a context that is not exactly the
    module's own parameter set). The decryption check (:meth:`Session.check`) is the
    Session's.
    """

    def __init__(self, cc: Any, modules: Sequence[EmittedKernel]) -> None:
        if not modules:
            raise ValueError("a session needs at least one kernel module")
        rotations = tuple(sorted({k for m in modules for k in m.ROTATION_INDICES}))
        self.cc = cc
        self.keys, self.keygen = timed_keys(cc, rotations, any(m.CT_CT_MULT for m in modules))
        self.keygen_s = self.keygen.keypair_s + self.keygen.evaluation_keys_s
        self.setup_s = self.keygen_s
        self.parameter_set = matching_set(cc).name
        self.mult_depth = modules[0].MULT_DEPTH
        self.facts = context_facts(cc)

    def run(self, module: EmittedKernel, args: Mapping[str, Any]) -> tuple[Any, float]:
        """Run the module's ``evaluate`` once in this context: (output, milliseconds)."""
        start = time.perf_counter()
        out = module.evaluate(self.cc, **args)
        return out, (time.perf_counter() - start) * 1e3
