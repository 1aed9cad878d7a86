"""The emitted module's side of batching: many independent instances in one ciphertext.

:mod:`porcupine.backend.batching` decides where instances sit (the INSTANCE_* constants,
written into the module's kernel constants); the functions below the ``instances`` marker
are copied into the emitted module. An application packs a batch of instances, input by
input, into rows (one full plaintext vector per ciphertext), encrypts them, runs the
kernel unchanged on each ciphertext, and reads every instance's output back::

    outputs = [kernel(cc, **args) for args in encrypt_instances(cc, keys, a=A, b=B)]
    result = decrypt_instances(cc, keys, outputs, len(A))   # shape (len(A), *output)

The imports and the placeholder constants above the marker are there for ruff and mypy, and
fit the runtime's placeholder kernel (``y = x + x`` on 8 slots, N = 4096): 256 instances of
8 slots in each of the two rows.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt
import openfhe

from porcupine.backend.runtime import (
    INPUT_LAYOUTS,
    INPUTS,
    OUTPUT_LAYOUT,
    OUTPUT_SLOTS,
    PLAINTEXT_MODULUS,
    RING_DIM,
    SLOTS,
    Slots,
    _integers,
    check_range,
    decode_slots,
)

# --- instance constants: generated (porcupine.backend.batching.instance_constants) ---
INSTANCE_STRIDE = 8
INSTANCE_WINDOW = (0, 8)
INSTANCE_BASE = 0
INSTANCE_ROWS = 2
INSTANCES_PER_ROW = 256
INSTANCES_PER_CIPHERTEXT = 512
# --- instances: copied into every emitted module ---


def _require_batching() -> None:
    if INSTANCES_PER_CIPHERTEXT == 0:
        raise ValueError(
            "this kernel was emitted without instance batching (it runs under a client "
            "packing, or one instance does not fit a row): encrypt one instance per "
            "ciphertext with encrypt()"
        )


def instance_row_slots() -> int:
    """The length of an instance row: RING_DIM // 2 slots when only the first BFV row holds
    instances, RING_DIM when both do (INSTANCE_ROWS)."""
    return RING_DIM // 2 * INSTANCE_ROWS


def instance_bases() -> Slots:
    """The base slot of every instance of a ciphertext, in its row vector: instance i sits
    in row i // INSTANCES_PER_ROW at INSTANCE_BASE + (i % INSTANCES_PER_ROW) *
    INSTANCE_STRIDE."""
    index = np.arange(INSTANCES_PER_CIPHERTEXT, dtype=np.int64)
    row, b = np.divmod(index, INSTANCES_PER_ROW)
    bases: Slots = row * (RING_DIM // 2) + INSTANCE_BASE + b * INSTANCE_STRIDE
    return bases


def _instance_array(name: str, values: npt.ArrayLike) -> Slots:
    """Input ``name``'s instances (shape (B, *INPUT_LAYOUTS[name].shape)), checked as
    ``input_slots`` checks one instance, as a (B, SLOTS) array of slot vectors mod t."""
    if name not in INPUT_LAYOUTS:
        raise KeyError(f"no input {name!r}; the inputs are {sorted(INPUT_LAYOUTS)}")
    layout = INPUT_LAYOUTS[name]
    array = _integers(name, values)
    if array.ndim != layout.ndim + 1 or array.shape[1:] != layout.shape:
        raise ValueError(
            f"input {name!r} has shape {array.shape}; a batch of instances has shape "
            f"({', '.join(['instances', *map(str, layout.shape)])}): one instance per "
            "index of the first axis"
        )
    check_range(
        name,
        array,
        lambda where: f"instance {where[0]}" + (f"'s element {where[1:]}" if layout.ndim else ""),
    )
    count = array.shape[0]
    residues = (array % PLAINTEXT_MODULUS).astype(np.int64).reshape(count, layout.size)
    out: Slots = np.zeros((count, SLOTS), dtype=np.int64)
    out[:, layout.ravel()] = residues
    return out


def _row(vectors: Slots, start: int) -> Slots:
    """The row of the instances ``start``, ``start + 1``, ... of ``vectors`` (one slot vector
    each) that one ciphertext holds: each slot vector tiled over its instance's window."""
    lo, hi = INSTANCE_WINDOW
    window = np.arange(lo, hi, dtype=np.int64)
    chunk = vectors[start : start + INSTANCES_PER_CIPHERTEXT]
    positions = instance_bases()[: len(chunk), None] + window[None, :]
    row: Slots = np.zeros(instance_row_slots(), dtype=np.int64)
    row[positions] = chunk[:, window % SLOTS]
    return row


def instance_rows(name: str, values: npt.ArrayLike) -> map[Slots]:
    """Input ``name`` of a batch of instances, ``values`` shaped (B, *INPUT_LAYOUTS[name]
    .shape), as one row vector (``instance_row_slots()`` residues mod t) per ciphertext:
    an iterator of ceil(B / INSTANCES_PER_CIPHERTEXT) rows, each made when it is reached.

    Every value is checked first, as ``encode`` checks one instance (integers, shape,
    declared range; bits for BIT_INPUTS). Encode a row with ``encode_row``.
    """
    _require_batching()
    vectors = _instance_array(name, values)
    starts = range(0, len(vectors), INSTANCES_PER_CIPHERTEXT)
    return map(functools.partial(_row, vectors), starts)


def encode_row(cc: openfhe.CryptoContext, row: Slots) -> openfhe.Plaintext:
    """A row vector of ``instance_rows`` as a packed plaintext, as it is (not tiled)."""
    if len(row) != instance_row_slots():
        raise ValueError(
            f"an instance row has {instance_row_slots()} slots, got {len(row)}: make it "
            "with instance_rows()"
        )
    return cc.MakePackedPlaintext((np.asarray(row) % PLAINTEXT_MODULUS).tolist())


def encrypt_instances(
    cc: openfhe.CryptoContext, keys: openfhe.KeyPair, /, **inputs: npt.ArrayLike
) -> map[dict[str, Any]]:
    """The arguments of ``kernel`` for a batch of instances, one dict per ciphertext (an
    iterator; each encrypted when it is reached): every input by name, shaped
    (B, *its shape), B the same for all; ciphertexts encrypted under ``keys.publicKey``,
    plaintext inputs only encoded. All values are checked first."""
    _require_batching()
    missing = sorted(set(INPUTS) - set(inputs))
    unknown = sorted(set(inputs) - set(INPUTS))
    if missing or unknown:
        raise TypeError(
            f"give every input of the kernel, {sorted(INPUTS)}, by name"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {unknown}" if unknown else "")
        )
    vectors = {name: _instance_array(name, values) for name, values in inputs.items()}
    counts = {name: len(v) for name, v in vectors.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"every input needs the same number of instances, got {counts}")
    starts = range(0, max(counts.values(), default=0), INSTANCES_PER_CIPHERTEXT)
    return map(functools.partial(_arguments, cc, keys, vectors), starts)


def _arguments(
    cc: openfhe.CryptoContext, keys: openfhe.KeyPair, vectors: dict[str, Slots], start: int
) -> dict[str, Any]:
    """The kernel's arguments for the ciphertext whose first instance is ``start``."""
    args: dict[str, Any] = {}
    for name, instances in vectors.items():
        plaintext = encode_row(cc, _row(instances, start))
        args[name] = cc.Encrypt(keys.publicKey, plaintext) if INPUTS[name] == "ct" else plaintext
    return args


def decrypt_row(
    cc: openfhe.CryptoContext, keys: openfhe.KeyPair, ciphertext: openfhe.Ciphertext
) -> Slots:
    """Decrypt ``ciphertext`` and return its row vector (``instance_row_slots()`` slots),
    in [0, PLAINTEXT_MODULUS); KernelContextError when ``keys`` did not encrypt it."""
    return decode_slots(cc, keys, ciphertext, instance_row_slots())


def instance_outputs(rows: Any, count: int) -> np.ma.MaskedArray[Any, Any]:
    """The outputs of ``count`` instances from the kernel's decrypted output rows (any
    iterable of them in order, or a 2-D array; each ``instance_row_slots()`` or RING_DIM
    slots, see ``decrypt_row``), shaped (count,
    *OUTPUT_LAYOUT.shape), values in [0, t): a masked array whose masked elements are the
    don't-care slots (shown as 0). Exactly ceil(count / INSTANCES_PER_CIPHERTEXT) rows."""
    _require_batching()
    if count < 0:
        raise ValueError(f"count must be a number of instances, got {count}")
    flat = OUTPUT_LAYOUT.ravel()
    cares = np.isin(flat, OUTPUT_SLOTS)
    positions = instance_bases()[:, None] + np.where(cares, flat, 0)[None, :]
    out = np.zeros((count, flat.size), dtype=np.int64)
    want = -(-count // INSTANCES_PER_CIPHERTEXT)
    seen = 0
    try:
        table = iter(rows)  # Any: the runtime imports no Iterable to annotate it with
    except TypeError:
        raise ValueError(
            f"rows must be the decrypted output rows in order (decrypt_row), got "
            f"{type(rows).__name__}"
        ) from None
    for n, row in enumerate(table):
        if n >= want:
            raise ValueError(f"{count} instances fill {want} rows, got more")
        vector = np.asarray(row, dtype=np.int64)
        if vector.shape not in {(instance_row_slots(),), (RING_DIM,)}:
            raise ValueError(
                f"row {n} has shape {vector.shape}: an output row is a decrypted ciphertext "
                f"of {instance_row_slots()} slots (decrypt_row)"
            )
        start = n * INSTANCES_PER_CIPHERTEXT
        k = min(INSTANCES_PER_CIPHERTEXT, count - start)
        out[start : start + k] = vector[positions[:k]] % PLAINTEXT_MODULUS
        seen = n + 1
    if seen < want:
        raise ValueError(f"{count} instances fill {want} rows, got {seen}")
    out[:, ~cares] = 0
    mask = np.broadcast_to(~cares, out.shape)
    shape = (count, *OUTPUT_LAYOUT.shape)
    # numpy's stubs leave the MaskedArray constructor untyped.
    return np.ma.masked_array(out.reshape(shape), mask=mask.reshape(shape))  # type: ignore[no-untyped-call]


def decrypt_instances(
    cc: openfhe.CryptoContext,
    keys: openfhe.KeyPair,
    outputs: list[openfhe.Ciphertext],
    count: int,
) -> np.ma.MaskedArray[Any, Any]:
    """The outputs of ``count`` instances from the kernel's output ciphertexts (one per
    dict of ``encrypt_instances``, in order): see ``instance_outputs``."""
    return instance_outputs([decrypt_row(cc, keys, ct) for ct in outputs], count)
