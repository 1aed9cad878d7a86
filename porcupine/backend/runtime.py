"""The runtime of every emitted kernel module, kept as a module that ruff and mypy check.

:mod:`porcupine.backend.openfhe_emit` copies this file's source text into each emitted
module: the kernel's docstring replaces this one, the kernel's constants replace the block
between the ``kernel constants`` markers, and the kernel's code replaces everything after the
``kernel code`` marker; the rest is copied verbatim, and the sections it imports from
(:mod:`porcupine.backend.sections`) follow it. So an emitted module stays standalone (the
standard library, numpy and openfhe only), and this module's placeholder constants and code
form a working kernel of their own: ``y = x + x`` on 8 slots.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import openfhe

from porcupine.backend.context_facts import (
    _ADVANCED_SHE_BIT,
    _find,
    _known,
    _remember,
    _serialized,
)
from porcupine.backend.context_facts import classic_bits as classic_bits
from porcupine.backend.context_facts import fixed_settings as fixed_settings

Slots = npt.NDArray[np.int64]


def _slot_grid(base: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> Slots:
    """Slot indices of an element grid of ``shape`` laid out from ``base`` with ``strides``."""
    index = np.indices(shape, dtype=np.int64)
    grid: Slots = base + np.tensordot(np.array(strides, dtype=np.int64), index, axes=1)
    return grid


# --- kernel constants: generated (porcupine.backend.openfhe_emit writes this block) ---
KERNEL = "placeholder"
# Names this exact module (a digest of its text): bundles and requests carry it.
KERNEL_ID = "0000000000000000"
PLAINTEXT_MODULUS = 65537
SLOTS = 8
# The BFV context this kernel runs in, built by new_context() and required by check_context():
# quill.params' n4096_q60_w20 (log2 Q = 60, the product of the RNS TOWERS); its predicted noise
# stays 31.0 bits below the level at which decryption fails (quill.noise requires 5).
PARAMETER_SET = "n4096_q60_w20"
RING_DIM = 4096
MULT_DEPTH = 0
SCALING_MOD_SIZE = 60
DIGIT_SIZE = 20
KEY_SWITCHING = "BV"
MULTIPLICATION = "HPSPOVERQ"
TOWERS: tuple[int, ...] = (1152921504606830593,)
LOG2_Q = 60.0
NOISE_MARGIN_BITS = 32.0
SECURITY = "HEStd_128_classic"
CT_CT_MULT = False
ADVANCED_SHE = False
ROTATION_INDICES: tuple[int, ...] = ()
INPUTS: dict[str, str] = {"x": "ct"}
BIT_INPUTS: frozenset[str] = frozenset()
INPUT_RANGES: dict[str, tuple[int, int]] = {}
# The output slots the spec constrains; the others are don't-care.
OUTPUT_SLOTS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7)
# The slot of every element of each input and of the output, in its natural shape.
INPUT_LAYOUTS: dict[str, Slots] = {"x": _slot_grid(0, (8,), (1,))}
OUTPUT_LAYOUT: Slots = _slot_grid(0, (8,), (1,))
# The kernel's constants; each repeats periodically over the SLOTS slots.
_CONSTANT_VALUES: dict[str, tuple[int, ...]] = {}
# --- end of kernel constants ---


class KernelContextError(ValueError):
    """The crypto context or the keys do not fit this kernel: a parameter, a key or the
    security level is wrong, or ciphertexts and keys do not belong together."""


def context_parameters(
    security: openfhe.SecurityLevel | None = None,
    *,
    ring_dim: int = RING_DIM,
    mult_depth: int = MULT_DEPTH,
    scaling_mod_size: int = SCALING_MOD_SIZE,
    digit_size: int = DIGIT_SIZE,
    key_switching: str = KEY_SWITCHING,
    multiplication: str = MULTIPLICATION,
) -> openfhe.CCParamsBFVRNS:
    """The BFV parameters ``new_context`` builds: t = PLAINTEXT_MODULUS and every setting
    of the kernel's parameter set (by default; the keywords build another set), at
    ``security`` (by default the SECURITY this kernel was emitted for).

    Every setting is explicit: OpenFHE derives the modulus Q from all of them, and
    check_context requires exactly this kernel's Q.
    """
    params = openfhe.CCParamsBFVRNS()
    params.SetPlaintextModulus(PLAINTEXT_MODULUS)
    params.SetRingDim(ring_dim)
    params.SetMultiplicativeDepth(mult_depth)
    params.SetScalingModSize(scaling_mod_size)
    params.SetDigitSize(digit_size)
    params.SetKeySwitchTechnique(getattr(openfhe, key_switching))
    params.SetMultiplicationTechnique(getattr(openfhe, multiplication))
    params.SetSecurityLevel(getattr(openfhe, SECURITY) if security is None else security)
    return params


def new_context(
    security: openfhe.SecurityLevel | None = None,
    *,
    advanced_she: bool = ADVANCED_SHE,
    **settings: Any,
) -> openfhe.CryptoContext:
    """A BFV context of ``context_parameters(security, **settings)`` with PKE, KEYSWITCH
    and LEVELEDSHE enabled, and ADVANCEDSHE (for EvalSum) if ``advanced_she``."""
    cc = openfhe.GenCryptoContext(context_parameters(security, **settings))
    for feature in (openfhe.PKE, openfhe.KEYSWITCH, openfhe.LEVELEDSHE):
        cc.Enable(feature)
    if advanced_she:
        cc.Enable(openfhe.ADVANCEDSHE)
    return cc


def generate_keys(
    cc: openfhe.CryptoContext,
    rotation_indices: tuple[int, ...] = ROTATION_INDICES,
    ct_ct_mult: bool = CT_CT_MULT,
) -> openfhe.KeyPair:
    """A key pair, the relinearization key only if the kernel multiplies two ciphertexts,
    and rotation keys only for ``rotation_indices`` (EvalSum's included: its rotations need
    no EvalSumKeyGen)."""
    keys = cc.KeyGen()
    if ct_ct_mult:
        cc.EvalMultKeyGen(keys.secretKey)
    if rotation_indices:
        cc.EvalRotateKeyGen(keys.secretKey, list(rotation_indices))
    return keys


def make_context(
    security: openfhe.SecurityLevel | None = None,
) -> tuple[openfhe.CryptoContext, openfhe.KeyPair]:
    """The context and keys this kernel needs: ``cc, keys = make_context()``."""
    cc = new_context(security)
    return cc, generate_keys(cc)


def check_advanced_she(cc: openfhe.CryptoContext) -> None:
    """Raise KernelContextError unless ADVANCEDSHE (EvalSum) is enabled on ``cc``;
    remembered once it is (a feature stays enabled), so a failing context is checked again."""
    if _known(cc, "advanced") is not None:
        return
    if not int(str(_find(_serialized(cc), "enabled"))) & _ADVANCED_SHE_BIT:
        raise KernelContextError(
            "this kernel calls EvalSum, which needs cc.Enable(openfhe.ADVANCEDSHE) (as "
            "make_context() does)"
        )
    _remember(cc, "advanced", True)


def missing_rotation_keys(cc: openfhe.CryptoContext, key_tag: str) -> list[int]:
    """The indices in ROTATION_INDICES with no rotation key under ``key_tag``."""
    have = set(cc.GetExistingEvalAutomorphismKeyIndices(key_tag))
    return [k for k in ROTATION_INDICES if cc.FindAutomorphismIndex(k) not in have]


def _mismatch(what: str, have: object, want: object) -> KernelContextError:
    return KernelContextError(
        f"the context's {what} is {have}, this kernel needs {want}: it was emitted for "
        f"parameter set {PARAMETER_SET} (N = {RING_DIM}, log2 Q = {LOG2_Q:.0f}, digit size "
        f"{DIGIT_SIZE}, {KEY_SWITCHING} key switching, {MULTIPLICATION} multiplication); "
        "build the context with make_context()"
    )


def check_context(cc: openfhe.CryptoContext, key_tag: str | None = None) -> None:
    """Raise KernelContextError unless ``cc`` is this kernel's context.

    Checks that ``cc`` is exactly the parameter set the noise analysis proved the kernel
    safe for (plaintext modulus, ring dimension, modulus Q, digit size, key-switching and
    multiplication techniques), at a security level of at least SECURITY, with ADVANCEDSHE
    if the kernel calls EvalSum; and, given the inputs' key tag, the relinearization key and
    the rotation keys (without them OpenFHE fails with an unhelpful ``IndexError: map::at``).
    """
    level, multiplication = fixed_settings(cc)
    technique = cc.GetKeySwitchTechnique()
    modulus = cc.GetElementParams().GetModulus()
    for what, have, want in (
        ("plaintext modulus", cc.GetPlaintextModulus(), PLAINTEXT_MODULUS),
        ("ring dimension", cc.GetRingDimension(), RING_DIM),
        ("key-switching technique", getattr(technique, "name", technique), KEY_SWITCHING),
        ("digit size", cc.GetDigitSize(), DIGIT_SIZE),
        ("multiplication technique", multiplication, MULTIPLICATION),
        ("modulus Q", modulus, math.prod(TOWERS)),  # the towers: scaling mod size and depth
    ):
        if have != want:
            shown = f"{have} (log2 Q = {math.log2(modulus):.1f})" if what == "modulus Q" else have
            raise _mismatch(what, shown, want)
    if classic_bits(level) < classic_bits(SECURITY):
        raise KernelContextError(
            f"the context's security level is {level}, below the {SECURITY} this kernel "
            f"was emitted for: build the context with make_context() (or "
            f"SetSecurityLevel(openfhe.{SECURITY}))"
        )
    if ADVANCED_SHE:
        check_advanced_she(cc)
    if key_tag is None:
        return
    if CT_CT_MULT and key_tag not in cc.GetAllEvalMultKeys():
        raise KernelContextError(
            "no relinearization key for the inputs' secret key: generate it with "
            "cc.EvalMultKeyGen(keys.secretKey)"
        )
    missing = missing_rotation_keys(cc, key_tag)
    if missing:
        raise KernelContextError(
            f"no rotation key for index {missing[0]} (missing: {missing}): generate it with "
            f"cc.EvalRotateKeyGen(keys.secretKey, {missing}), or use make_context()"
        )


def check_inputs(cc: openfhe.CryptoContext, /, **inputs: object) -> None:
    """Raise unless ``inputs`` are what ``kernel`` takes and ``cc`` fits them.

    TypeError for a plaintext where INPUTS says ``ct`` or anything but a plaintext where it
    says ``pt``; KernelContextError when the ciphertexts come from different key pairs or
    ``cc`` does not fit (``check_context`` with their key tag).
    """
    tags: dict[str, str] = {}
    for name, kind in INPUTS.items():
        value = inputs[name]
        if kind == "ct":
            if not isinstance(value, openfhe.Ciphertext):
                raise TypeError(
                    f"input {name!r} must be a ciphertext, got {type(value).__name__}: "
                    f"pass encrypt(cc, keys, {name!r}, values)"
                )
            tags[name] = value.GetKeyTag()
        elif not isinstance(value, openfhe.Plaintext):
            raise TypeError(
                f"input {name!r} must be a plaintext, got {type(value).__name__}: "
                f"pass encode(cc, {name!r}, values)"
            )
    check_key_tags(cc, tags, "inputs", "encrypt every input with the same keys")


def check_key_tags(cc: openfhe.CryptoContext, tags: dict[str, str], what: str, fix: str) -> None:
    """The ciphertexts (``tags``: name -> key tag) are under one key pair, and ``cc`` is the
    kernel's context (``check_context``); ``what`` names them, ``fix`` says what to do."""
    if len(set(tags.values())) > 1:
        under = ", ".join(f"{name} under {tag[:8]}" for name, tag in tags.items())
        raise KernelContextError(
            f"the ciphertext {what} are encrypted under different key pairs ({under}): {fix}"
        )
    check_context(cc, next(iter(tags.values()), None))


def pack(cc: openfhe.CryptoContext, slots: Slots, second: Slots | None = None) -> openfhe.Plaintext:
    """A packed plaintext of a SLOTS-slot vector, tiled across the first BFV row of N/2
    slots, and of ``second``, if given, tiled across the second row.

    Tiling makes EvalRotate exactly a cyclic rotation mod SLOTS: BFV rotates cyclically
    within each row of N/2 slots, and every copy of the vector brings its neighbour's
    elements around. The rows never mix, so two vectors (two tiles of an application's
    data) share one ciphertext and one evaluation.
    """
    row = cc.GetRingDimension() // 2
    rows = [slots] if second is None else [slots, second]
    values = np.concatenate([np.tile(r % PLAINTEXT_MODULUS, row // SLOTS) for r in rows])
    return cc.MakePackedPlaintext(values.tolist())


@functools.lru_cache(maxsize=8)
def _constants(cc: openfhe.CryptoContext) -> dict[str, openfhe.Plaintext]:
    """The kernel's constants as packed plaintexts, made once per context, not per call.

    A constant of one value in every slot fills all N slots (both rows): its plaintext
    polynomial is then that value mod t itself, and multiplying a ciphertext by it grows
    the noise by only log2 of it (packed into one row, 16 grew it by 11 bits, a general
    plaintext by up to 28; measured). Rotations stay within a row, so the second row never
    reaches the first. Other constants (masks) are tiled across both rows (``pack``).
    """
    plaintexts = {}
    for name, values in _CONSTANT_VALUES.items():
        residues = {v % PLAINTEXT_MODULUS for v in values}
        if len(residues) == 1:
            value = residues.pop()
            plaintexts[name] = cc.MakePackedPlaintext([value] * cc.GetRingDimension())
        else:
            vector = np.resize(np.array(values, dtype=np.int64), SLOTS)
            plaintexts[name] = pack(cc, vector, vector)  # both rows: each may hold a tile
    return plaintexts


def _integers(name: str, values: object) -> npt.NDArray[Any]:
    """``values`` as exact integers: int64, or Python ints where they may be wider (so
    that ranges and residues mod t are right); ValueError for anything else."""
    array = np.asarray(values)
    kind = array.dtype.kind
    if kind in "bi" or (kind == "u" and array.dtype.itemsize < 8):
        return array.astype(np.int64)
    if kind in "uO" and all(isinstance(v, int | np.integer) for v in array.flat):
        return np.array([int(v) for v in array.flat], dtype=object).reshape(array.shape)
    raise ValueError(
        f"input {name!r} must hold integers, got {array.dtype} values: convert them first "
        "(floats are not rounded for you, e.g. np.rint(values).astype(np.int64))"
    )


def encode(cc: openfhe.CryptoContext, name: str, values: object) -> openfhe.Plaintext:
    """Input ``name``, given in its natural shape, as a packed plaintext.

    Element ``i`` goes to slot ``INPUT_LAYOUTS[name][i]``, every other slot is zero, and
    the vector is tiled across the row (see ``pack``). Values must be integers; they are
    taken mod PLAINTEXT_MODULUS. Inputs in INPUT_RANGES must lie in their declared range
    (the kernel is proven for those values only): bits for BIT_INPUTS.
    """
    if name not in INPUT_LAYOUTS:
        raise KeyError(f"no input {name!r}; the inputs are {sorted(INPUT_LAYOUTS)}")
    return pack(cc, input_slots(name, values, SLOTS))


def check_range(
    name: str, array: npt.NDArray[Any], element: Callable[[tuple[int, ...]], str]
) -> None:
    """Raise ValueError unless every value of input ``name`` lies in its declared range
    (INPUT_RANGES; bits for BIT_INPUTS): the kernel is proven for those values only.
    ``element`` names the first value outside by its index in ``array``."""
    if name not in INPUT_RANGES:
        return
    low, high = INPUT_RANGES[name]
    outside = (array < low) | (array > high)
    if outside.any():
        where = tuple(int(i) for i in np.argwhere(outside)[0])
        what = "bits (0 or 1)" if name in BIT_INPUTS else f"values in {low}..{high}"
        raise ValueError(
            f"input {name!r} must hold {what}, its declared range (the kernel relies on "
            f"it), but {element(where)} is {array[where]}"
        )


def input_slots(name: str, values: object, slots: int) -> Slots:
    """Input ``name``, given in its natural shape, checked (integers, shape, declared range)
    and laid out as INPUT_LAYOUTS says in a vector of ``slots`` slots, mod
    PLAINTEXT_MODULUS."""
    layout = INPUT_LAYOUTS[name]
    array = _integers(name, values)
    if array.shape != layout.shape:
        raise ValueError(f"input {name!r} has shape {array.shape}, expected {layout.shape}")
    check_range(name, array, lambda where: f"element {where}")
    out = np.zeros(slots, dtype=np.int64)
    out[layout] = array % PLAINTEXT_MODULUS
    return out


def encrypt(
    cc: openfhe.CryptoContext, keys: openfhe.KeyPair, name: str, values: object
) -> openfhe.Ciphertext:
    """Input ``name`` encoded (see ``encode``) and encrypted (``encrypt_plaintext``)."""
    if INPUTS.get(name) == "pt":
        raise ValueError(f"input {name!r} is a plaintext: pass encode(cc, {name!r}, values)")
    return encrypt_plaintext(cc, keys, encode(cc, name, values))


def encrypt_plaintext(
    cc: openfhe.CryptoContext, keys: openfhe.KeyPair, plaintext: openfhe.Plaintext
) -> openfhe.Ciphertext:
    """``plaintext`` encrypted by the party that holds ``keys.secretKey``.

    With the secret key, not the public one: the party that encrypts inputs owns it, and
    secret-key RLWE encryption is as secure, adds less noise (none of the public key's error
    terms: the noise model's fresh bound holds a fortiori) and is faster (3.7 against 4.4 ms
    per ciphertext at N = 8192, measured). Ciphertexts decrypt and evaluate alike.
    """
    return cc.Encrypt(keys.secretKey, plaintext)


def decode_slots(
    cc: openfhe.CryptoContext,
    keys: openfhe.KeyPair,
    ciphertext: openfhe.Ciphertext,
    slots: int = SLOTS,
) -> Slots:
    """Decrypt ``ciphertext`` and return its first ``slots`` slots (the kernel's SLOTS; a
    whole row or both, RING_DIM, for data in both rows), in [0, PLAINTEXT_MODULUS).

    Raises KernelContextError when ``keys`` did not encrypt it: OpenFHE would decrypt it
    to garbage without a word.
    """
    if not isinstance(ciphertext, openfhe.Ciphertext):
        raise TypeError(f"decode takes a ciphertext, got {type(ciphertext).__name__}")
    tag, secret = ciphertext.GetKeyTag(), keys.secretKey.GetKeyTag()
    if tag != secret:
        raise KernelContextError(
            f"the ciphertext is encrypted under key {tag[:8]}, not under this key pair's "
            f"{secret[:8]}: decrypt with the keys that encrypted the kernel's inputs"
        )
    plaintext = cc.Decrypt(keys.secretKey, ciphertext)
    plaintext.SetLength(slots)
    values = np.array(plaintext.GetPackedValue()[:slots], dtype=np.int64)
    decoded: Slots = values % PLAINTEXT_MODULUS  # OpenFHE returns centred values
    return decoded


def unpack_output(slots: Slots) -> Slots:
    """The kernel's output slots in the spec's output layout: the same slots here; a
    kernel under a client packing reads them from where the packing put them."""
    return slots


def decode(
    cc: openfhe.CryptoContext, keys: openfhe.KeyPair, ciphertext: openfhe.Ciphertext
) -> np.ma.MaskedArray[Any, np.dtype[np.int64]] | int:
    """The kernel's output, decrypted, in its natural shape (values in [0, t)).

    A scalar output is an int. A vector or image is a numpy masked array shaped like
    OUTPUT_LAYOUT whose masked elements are the don't-care slots (the spec does not
    constrain them, so they hold whatever the kernel left there): ``out.filled(0)`` gives
    a plain array with zeros there, ``~out.mask`` marks the elements that matter.
    """
    return output_of(unpack_output(decode_slots(cc, keys, ciphertext)))


def output_of(slots: Slots) -> np.ma.MaskedArray[Any, np.dtype[np.int64]] | int:
    """The output in its natural shape from the kernel's SLOTS output slots (``decode``)."""
    if OUTPUT_LAYOUT.ndim == 0:
        return int(slots[OUTPUT_LAYOUT])
    dont_care = ~np.isin(OUTPUT_LAYOUT, OUTPUT_SLOTS)
    # numpy's stubs leave the MaskedArray constructor untyped.
    return np.ma.masked_array(slots[OUTPUT_LAYOUT], mask=dont_care)  # type: ignore[no-untyped-call]


# --- kernel code: generated (porcupine.backend.openfhe_emit writes everything below) ---


def evaluate(cc: openfhe.CryptoContext, /, *, x: openfhe.Ciphertext) -> openfhe.Ciphertext:
    """The kernel's OpenFHE calls, one per Quill instruction, without kernel()'s checks."""
    y = cc.EvalAdd(x, x)
    return y


def kernel(cc: openfhe.CryptoContext, /, *, x: openfhe.Ciphertext) -> openfhe.Ciphertext:
    """The kernel on encrypted inputs: checks them (``check_inputs``), then ``evaluate``."""
    check_inputs(cc, x=x)
    return evaluate(cc, x=x)
