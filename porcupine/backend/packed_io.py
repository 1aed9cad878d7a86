"""The application's side of a kernel synthesized under a client packing.

A packed kernel (:mod:`porcupine.layouts.packing`) takes ciphertexts whose slots the client
gathered from the spec's inputs (``A__0``, ``a__b``, ``h__1``), and leaves each output
element in a slot of the packing's choosing. Its emitted module is the runtime
(:mod:`porcupine.backend.runtime`) with the functions below in place of the runtime's
``check_inputs``, ``encode``, ``encrypt`` and ``unpack_output``, so an application never
sees slots: ``encrypt`` takes the spec's inputs by their names and natural shapes, gathers
every ciphertext's slots (GATHER) and encrypts them; the runtime's ``decode`` returns the
spec's output in its natural shape, each element read (``unpack_output``) from the slot the
packing put it in (OUTPUT_GATHER). The
gather tables are data in the module's kernel constants
(:mod:`porcupine.backend.packed_emit` writes them), so it still imports only ``openfhe`` and
``numpy``.

:mod:`porcupine.backend.packed_emit` copies everything below the ``packed I/O`` marker; the
imports and the placeholder packing constants above it are there for ruff and mypy, and
make the runtime's placeholder kernel (``y = x + x``) a packed kernel of its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import openfhe

from porcupine.backend.runtime import (
    INPUTS,
    SLOTS,
    Slots,
    check_key_tags,
    input_slots,
    pack,
)

# --- packing constants: generated (porcupine.backend.packed_emit writes them) ---
PACKING = "natural"
SPEC_SLOTS = 8
CIPHERTEXTS: dict[str, str] = {"x": "ct"}
GATHER: tuple[tuple[str, str, tuple[int, ...], tuple[int, ...]], ...] = (
    ("x", "x", (0, 1, 2, 3, 4, 5, 6, 7), (0, 1, 2, 3, 4, 5, 6, 7)),
)
OUTPUT_GATHER: tuple[tuple[int, ...], tuple[int, ...]] = (
    (0, 1, 2, 3, 4, 5, 6, 7),
    (0, 1, 2, 3, 4, 5, 6, 7),
)
# --- packed I/O: copied into the module of every packed kernel ---


def check_inputs(cc: openfhe.CryptoContext, /, **inputs: object) -> None:
    """Raise unless ``inputs`` are the CIPHERTEXTS ``kernel`` takes and ``cc`` fits them.

    TypeError for a wrong kind (make the arguments with ``encrypt``); KernelContextError when
    the ciphertexts come from different key pairs or ``cc`` does not fit
    (``check_context`` with their key tag).
    """
    tags: dict[str, str] = {}
    for name, kind in CIPHERTEXTS.items():
        value = inputs[name]
        want, what = (
            (openfhe.Ciphertext, "ciphertext") if kind == "ct" else (openfhe.Plaintext, "plaintext")
        )
        if not isinstance(value, want):
            raise TypeError(
                f"kernel argument {name!r} must be a {what}, got {type(value).__name__}: "
                "pass kernel(cc, **encrypt(cc, keys, **inputs))"
            )
        if kind == "ct":
            tags[name] = value.GetKeyTag()
    check_key_tags(cc, tags, "arguments", "make them all with one encrypt(cc, keys, ...)")


def gather(**inputs: object) -> dict[str, Slots]:
    """The SLOTS slots of every argument ``kernel`` takes (CIPHERTEXTS), gathered from the
    spec's inputs, each given by its name in its natural shape (as ``encode`` checks them):
    slot ``s`` of ciphertext ``c`` holds the element GATHER names for it, or 0."""
    unknown = sorted(set(inputs) - set(INPUTS))
    if unknown:
        raise KeyError(f"no input {unknown[0]!r}; the inputs are {sorted(INPUTS)}")
    missing = sorted(set(INPUTS) - set(inputs))
    if missing:
        raise TypeError(f"missing input {missing[0]!r}: give every input, {sorted(INPUTS)}")
    spec = {name: input_slots(name, values, SPEC_SLOTS) for name, values in inputs.items()}
    out: dict[str, Slots] = {name: np.zeros(SLOTS, dtype=np.int64) for name in CIPHERTEXTS}
    for target, source, slots, elements in GATHER:
        out[target][np.asarray(slots, dtype=np.int64)] = spec[source][
            np.asarray(elements, dtype=np.int64)
        ]
    return out


def encode(cc: openfhe.CryptoContext, /, **inputs: object) -> dict[str, openfhe.Plaintext]:
    """Every argument ``kernel`` takes as a packed plaintext (see ``gather`` and ``pack``):
    ``encrypt`` encrypts the ciphertexts among them. Values must be integers in each
    input's declared range (INPUT_RANGES; bits for BIT_INPUTS), taken mod
    PLAINTEXT_MODULUS."""
    return {name: pack(cc, slots) for name, slots in gather(**inputs).items()}


def encrypt(
    cc: openfhe.CryptoContext, keys: openfhe.KeyPair, /, **inputs: object
) -> dict[str, Any]:
    """The arguments of ``kernel`` made from the spec's inputs (by name, natural shapes):
    ``kernel(cc, **encrypt(cc, keys, a=a_values, b=b_values))``. The ciphertexts are
    gathered (``encode``) and encrypted under ``keys.publicKey``; plaintext operands are
    only encoded."""
    plain = encode(cc, **inputs)
    return {
        name: cc.Encrypt(keys.publicKey, p) if CIPHERTEXTS[name] == "ct" else p
        for name, p in plain.items()
    }


def unpack_output(slots: Slots) -> Slots:
    """The kernel's SLOTS output slots as the spec's output layout (SPEC_SLOTS slots): the
    element of every output slot that matters taken from where the packing put it
    (OUTPUT_GATHER), zeros elsewhere."""
    out = np.zeros(SPEC_SLOTS, dtype=np.int64)
    spec_slots, kernel_slots = OUTPUT_GATHER
    out[np.asarray(spec_slots, dtype=np.int64)] = slots[np.asarray(kernel_slots, dtype=np.int64)]
    return out
