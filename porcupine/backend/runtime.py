"""The runtime of every emitted kernel module, kept as a module that ruff and mypy check.

:mod:`porcupine.backend.openfhe_emit` copies this file's source text into each emitted
module: the kernel's docstring replaces this one, the kernel's constants replace the block
between the ``kernel constants`` markers, and the kernel's code replaces everything after the
``kernel code`` marker; the rest is copied verbatim. So this module stays standalone (the
standard library, numpy and openfhe only), and its placeholder constants and code form a
working kernel of their own: ``y = x + x`` on 8 slots.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import numpy.typing as npt
import openfhe

Slots = npt.NDArray[np.int64]


def _slot_grid(base: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> Slots:
    """Slot indices of an element grid of ``shape`` laid out from ``base`` with ``strides``."""
    index = np.indices(shape, dtype=np.int64)
    grid: Slots = base + np.tensordot(np.array(strides, dtype=np.int64), index, axes=1)
    return grid


# --- kernel constants: generated (porcupine.backend.openfhe_emit writes this block) ---
PLAINTEXT_MODULUS = 65537
SLOTS = 8
RING_DIM = 8192
MULT_DEPTH = 1
SECURITY = "HEStd_128_classic"
CT_CT_MULT = False
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
    security: openfhe.SecurityLevel | None = None, mult_depth: int = MULT_DEPTH
) -> openfhe.CCParamsBFVRNS:
    """The BFV parameters ``new_context`` builds: t = PLAINTEXT_MODULUS, ``mult_depth``,
    and ``security`` (by default the SECURITY this kernel was emitted for).

    One setter per parameter the kernel fixes; OpenFHE chooses the rest (the ring
    dimension and the modulus chain) from these.
    """
    params = openfhe.CCParamsBFVRNS()
    params.SetPlaintextModulus(PLAINTEXT_MODULUS)
    params.SetMultiplicativeDepth(mult_depth)
    params.SetSecurityLevel(getattr(openfhe, SECURITY) if security is None else security)
    return params


def new_context(
    security: openfhe.SecurityLevel | None = None, mult_depth: int = MULT_DEPTH
) -> openfhe.CryptoContext:
    """A BFV context of ``context_parameters(security, mult_depth)`` with PKE, KEYSWITCH
    and LEVELEDSHE enabled.

    The ring dimension OpenFHE picks is raised only when a row of N/2 slots could not hold
    the kernel's SLOTS slots.
    """
    params = context_parameters(security, mult_depth)
    cc = openfhe.GenCryptoContext(params)
    if cc.GetRingDimension() < 2 * SLOTS:
        params.SetRingDim(2 * SLOTS)
        cc = openfhe.GenCryptoContext(params)
    for feature in (openfhe.PKE, openfhe.KEYSWITCH, openfhe.LEVELEDSHE):
        cc.Enable(feature)
    return cc


def generate_keys(
    cc: openfhe.CryptoContext,
    rotation_indices: tuple[int, ...] = ROTATION_INDICES,
    ct_ct_mult: bool = CT_CT_MULT,
) -> openfhe.KeyPair:
    """A key pair, the relinearization key only if the kernel multiplies two ciphertexts,
    and rotation keys only for ``rotation_indices``."""
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


# OpenFHE's SecurityLevel names by value, the value its serialization stores.
_LEVELS: dict[int, str] = {
    int(level): name for name, level in openfhe.SecurityLevel.__members__.items()
}


def classic_bits(level: str) -> int:
    """The classic security of a SecurityLevel name, in bits: none for HEStd_NotSet, and a
    quantum level's classic security is at least its number."""
    return 0 if level == "HEStd_NotSet" else int(level.split("_")[1])


def _find(tree: object, key: str) -> object:
    """The first value stored under ``key`` anywhere in a JSON tree."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if key in node:
                return node[key]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    raise KeyError(key)


@functools.lru_cache(maxsize=8)
def security_level(cc: openfhe.CryptoContext) -> str:
    """The SecurityLevel name ``cc`` was built with.

    OpenFHE has no getter for it; its serialization stores it as ``slv``. Cached per
    context: the level never changes, and serializing takes about a millisecond.
    """
    tree = json.loads(openfhe.Serialize(cc, openfhe.JSON))
    return _LEVELS[int(str(_find(tree, "slv")))]


def missing_rotation_keys(cc: openfhe.CryptoContext, key_tag: str) -> list[int]:
    """The indices in ROTATION_INDICES with no rotation key under ``key_tag``."""
    have = set(cc.GetExistingEvalAutomorphismKeyIndices(key_tag))
    return [k for k in ROTATION_INDICES if cc.FindAutomorphismIndex(k) not in have]


def check_context(cc: openfhe.CryptoContext, key_tag: str | None = None) -> None:
    """Raise KernelContextError unless ``cc`` fits this kernel.

    Checks the plaintext modulus, the ring dimension, the multiplicative depth and the
    security level (at least SECURITY), and, given the inputs' key tag, the
    relinearization key and the rotation keys (without them OpenFHE fails with an
    unhelpful ``IndexError: map::at``).
    """
    t = cc.GetPlaintextModulus()
    if t != PLAINTEXT_MODULUS:
        raise KernelContextError(
            f"plaintext modulus is {t}, this kernel needs {PLAINTEXT_MODULUS}: "
            "build the context with make_context()"
        )
    ring_dim = cc.GetRingDimension()
    if ring_dim < 2 * SLOTS:
        raise KernelContextError(
            f"ring dimension {ring_dim} is too small: a row of N/2 slots must hold the "
            f"kernel's {SLOTS} slots, so N >= {2 * SLOTS} (SetRingDim)"
        )
    depth = cc.GetMultiplicativeDepth()
    if depth < MULT_DEPTH:
        raise KernelContextError(
            f"multiplicative depth {depth} is too small: this kernel needs {MULT_DEPTH} "
            f"(SetMultiplicativeDepth({MULT_DEPTH}), as make_context() does)"
        )
    level = security_level(cc)
    if classic_bits(level) < classic_bits(SECURITY):
        raise KernelContextError(
            f"the context's security level is {level}, below the {SECURITY} this kernel "
            f"was emitted for: build the context with make_context() (or "
            f"SetSecurityLevel(openfhe.{SECURITY}))"
        )
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
    if len(set(tags.values())) > 1:
        under = ", ".join(f"{name} under {tag[:8]}" for name, tag in tags.items())
        raise KernelContextError(
            f"the ciphertext inputs are encrypted under different key pairs ({under}): "
            "encrypt every input with the same keys"
        )
    check_context(cc, next(iter(tags.values()), None))


def pack(cc: openfhe.CryptoContext, slots: Slots) -> openfhe.Plaintext:
    """A packed plaintext of a SLOTS-slot vector, tiled across the BFV row of N/2 slots.

    Tiling makes EvalRotate exactly a cyclic rotation mod SLOTS: BFV rotates cyclically
    within each row of N/2 slots, and every copy of the vector brings its neighbour's
    elements around.
    """
    row = cc.GetRingDimension() // 2
    return cc.MakePackedPlaintext(np.tile(slots % PLAINTEXT_MODULUS, row // SLOTS).tolist())


@functools.lru_cache(maxsize=8)
def _constants(cc: openfhe.CryptoContext) -> dict[str, openfhe.Plaintext]:
    """The kernel's constants as packed plaintexts, made once per context, not per call."""
    return {
        name: pack(cc, np.resize(np.array(values, dtype=np.int64), SLOTS))
        for name, values in _CONSTANT_VALUES.items()
    }


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
    layout = INPUT_LAYOUTS[name]
    array = _integers(name, values)
    if array.shape != layout.shape:
        raise ValueError(f"input {name!r} has shape {array.shape}, expected {layout.shape}")
    if name in INPUT_RANGES:
        low, high = INPUT_RANGES[name]
        outside = (array < low) | (array > high)
        if outside.any():
            where = tuple(int(i) for i in np.argwhere(outside)[0])
            what = "bits (0 or 1)" if name in BIT_INPUTS else f"values in {low}..{high}"
            raise ValueError(
                f"input {name!r} must hold {what}, its declared range (the kernel relies on "
                f"it), but element {where} is {array[where]}"
            )
    slots = np.zeros(SLOTS, dtype=np.int64)
    slots[layout] = array % PLAINTEXT_MODULUS
    return pack(cc, slots)


def encrypt(
    cc: openfhe.CryptoContext, keys: openfhe.KeyPair, name: str, values: object
) -> openfhe.Ciphertext:
    """Input ``name`` encoded (see ``encode``) and encrypted under ``keys.publicKey``."""
    if INPUTS.get(name) == "pt":
        raise ValueError(f"input {name!r} is a plaintext: pass encode(cc, {name!r}, values)")
    return cc.Encrypt(keys.publicKey, encode(cc, name, values))


def decode_slots(
    cc: openfhe.CryptoContext, keys: openfhe.KeyPair, ciphertext: openfhe.Ciphertext
) -> Slots:
    """Decrypt ``ciphertext`` and return its first SLOTS slots, in [0, PLAINTEXT_MODULUS).

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
    plaintext.SetLength(SLOTS)
    values = np.array(plaintext.GetPackedValue()[:SLOTS], dtype=np.int64)
    decoded: Slots = values % PLAINTEXT_MODULUS  # OpenFHE returns centred values
    return decoded


def decode(
    cc: openfhe.CryptoContext, keys: openfhe.KeyPair, ciphertext: openfhe.Ciphertext
) -> np.ma.MaskedArray[Any, np.dtype[np.int64]] | int:
    """The kernel's output, decrypted, in its natural shape (values in [0, t)).

    A scalar output is an int. A vector or image is a numpy masked array shaped like
    OUTPUT_LAYOUT whose masked elements are the don't-care slots (the spec does not
    constrain them, so they hold whatever the kernel left there): ``out.filled(0)`` gives
    a plain array with zeros there, ``~out.mask`` marks the elements that matter.
    """
    slots = decode_slots(cc, keys, ciphertext)
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
