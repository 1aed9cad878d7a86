"""The bytes two parties exchange: bundles, requests and responses.

One format for all three: a magic line naming what it is, then length-prefixed records, the
first a JSON header (the format version and the kernel id, a digest of the emitted module's
text, so that data of another kernel is refused with both kernels named), the others
OpenFHE's own BINARY serializations (the context, keys, ciphertexts). Readers check
everything they read and say what is wrong (:class:`KernelDataError`); nothing is trusted
from the header that the deserialized objects can be checked for instead.

:mod:`porcupine.backend.openfhe_emit` copies everything below the ``wire`` marker; the
imports above it are there for ruff and mypy.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Mapping
from typing import Any, BinaryIO

import openfhe

from porcupine.backend.runtime import KERNEL, KERNEL_ID, PARAMETER_SET, KernelContextError

# --- wire: copied into every emitted module (before the two parties) ---

FORMAT = 1
"""The version of the bundle, request and response formats."""

_BUNDLE, _REQUEST, _RESPONSE = (
    b"porcupine-bundle\n",
    b"porcupine-request\n",
    b"porcupine-response\n",
)
_LENGTH = struct.Struct(">Q")
_MAX_HEADER = 1 << 20


class KernelDataError(ValueError):
    """A bundle, request or response that is malformed, truncated, or made for another
    kernel."""


def _write_record(out: BinaryIO, data: bytes) -> int:
    out.write(_LENGTH.pack(len(data)))
    out.write(data)
    return _LENGTH.size + len(data)


def _read_record(stream: BinaryIO, what: str, limit: int | None = None) -> bytes:
    head = stream.read(_LENGTH.size)
    if len(head) != _LENGTH.size:
        raise KernelDataError(f"the {what} ends early: a record is missing (truncated data?)")
    (length,) = _LENGTH.unpack(head)
    if limit is not None and length > limit:
        raise KernelDataError(f"the {what} is malformed: a header of {length} bytes")
    data = stream.read(length)
    if len(data) != length:
        raise KernelDataError(f"the {what} ends early: {len(data)} of {length} bytes")
    return data


def _write_header(out: BinaryIO, magic: bytes, header: Mapping[str, Any]) -> None:
    out.write(magic)
    _write_record(out, json.dumps({"format": FORMAT, "kernel": KERNEL_ID, **header}).encode())


def _read_header(stream: BinaryIO, magic: bytes, what: str) -> dict[str, Any]:
    """The JSON header of a bundle, request or response made for this kernel."""
    start = stream.read(len(magic))
    if start != magic:
        raise KernelDataError(
            f"this is not a Porcupine {what} (it starts with {start[:24]!r}, not {magic!r})"
        )
    try:
        header = json.loads(_read_record(stream, what, _MAX_HEADER))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise KernelDataError(f"the {what}'s header is not JSON: the data is corrupt") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise KernelDataError(f"the {what} has format {header.get('format')}, not {FORMAT}")
    if header.get("kernel") != KERNEL_ID:
        raise KernelDataError(
            f"the {what} was made for kernel {header.get('name', '?')} (id "
            f"{header.get('kernel')}, parameter set {header.get('parameter_set', '?')}); this "
            f"module is kernel {KERNEL} (id {KERNEL_ID}, parameter set {PARAMETER_SET}): use "
            "the client and server of the same emitted module"
        )
    return header


def _serialize(obj: Any) -> bytes:
    data = openfhe.Serialize(obj, openfhe.BINARY)
    return data if isinstance(data, bytes) else data.encode()


# A serialized ciphertext carries its crypto context, and OpenFHE rebuilds that context's CRT
# tables on every deserialization (3.4 of 3.7 ms per ciphertext at N = 8192, measured), then
# finds the equal context this process already holds and drops the rebuilt one. The bytes
# before a ciphertext's key tag are its context's serialization: when they are the very bytes
# of a ciphertext already read (with the tables built), the context found is that one, and
# the rebuild is skipped (0.26 ms). Anything else takes OpenFHE's full path, so that no
# context without tables is ever registered. (The prefixes hold until openfhe's
# ReleaseAllContexts, which nothing here calls.)
_KNOWN_CONTEXTS: set[bytes] = set()
# The setting is process-wide and OpenFHE's calls release the GIL: a thread reading a
# ciphertext of an unknown context while another has the rebuild off would register that
# context without tables (a Dask worker may run tasks on several threads).
_READING = threading.Lock()
_CONTEXT_END = 8192  # the key tag sits about 650 bytes in; look no further than this


def _ciphertext(data: bytes, key_tag: str, what: str, cc: Any = None) -> Any:
    """A serialized ciphertext, checked to be under the bundle's keys; to be evaluated in
    the context ``cc``, if given (see :func:`_local`)."""
    cut = data.find(key_tag.encode(), 0, _CONTEXT_END)
    known = cut > 0 and data[:cut] in _KNOWN_CONTEXTS
    try:
        with _READING:
            if known:
                openfhe.DisablePrecomputeCRTTablesAfterDeserializaton()
            try:
                ct = openfhe.DeserializeCiphertextString(data, openfhe.BINARY)
            finally:
                if known:
                    openfhe.EnablePrecomputeCRTTablesAfterDeserializaton()
    except Exception as e:  # OpenFHE raises RuntimeError with its own text
        raise KernelDataError(f"{what} is not an OpenFHE ciphertext: {e}") from None
    if ct.GetKeyTag() != key_tag:
        raise KernelContextError(
            f"{what} is encrypted under key {ct.GetKeyTag()[:8]}, not under the bundle's key "
            f"{key_tag[:8]}: encrypt with the client that exported this server's bundle"
        )
    if cut > 0 and not known:
        _KNOWN_CONTEXTS.add(data[:cut])
    return ct if cc is None else _local(cc, ct)


_ZEROS: dict[tuple[int, str], tuple[Any, Any]] = {}  # (context, key tag): (context, zero)


def _local(cc: Any, ciphertext: Any) -> Any:
    """A deserialized ``ciphertext`` as a ciphertext of the context ``cc``: the same
    polynomials, so the same value and noise, and its evaluation 1.2-1.4x faster.

    OpenFHE gives a deserialized ciphertext its own copy of the ring's parameters, and every
    operation on it, or on anything computed from it, then costs about 0.4 ms more at
    N = 8192 (an addition 0.47 instead of 0.04 ms, a rotation 1.69 instead of 1.27;
    measured: Harris 83 against 69 ms a ciphertext, a Sobel request 1.37x and a box blur
    one 1.22x slower). A sum takes its first operand's parameters, so the ciphertext is
    added to an exact zero made in ``cc``: a throwaway key pair's encryption of 0 minus
    itself (both polynomials 0 mod Q), carrying the ciphertext's key tag. The throwaway
    keys decrypt nothing of the client's."""
    tag = ciphertext.GetKeyTag()
    held = _ZEROS.get((id(cc), tag))  # the context is kept with its zero: its id stays its own
    if held is None:
        own = cc.KeyGen()
        zero = cc.Encrypt(own.publicKey, cc.MakePackedPlaintext([0] * cc.GetRingDimension()))
        zero = cc.EvalSub(zero, zero)
        zero.SetKeyTag(tag)
        held = _ZEROS[(id(cc), tag)] = (cc, zero)
    return cc.EvalAdd(held[1], ciphertext)


class _Kept:
    """A stream's reader that keeps what it has read."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.seen = stream, bytearray()

    def read(self, size: int) -> bytes:
        data = self.stream.read(size)
        self.seen += data
        return data


def _read_bundle(stream: BinaryIO) -> tuple[dict[str, Any], list[bytes], bytes]:
    """A bundle's header, its records (context, rotation keys, relinearization key) and
    its bytes, read from ``stream`` up to the bundle's end only: a request may follow it
    on the same stream."""
    kept = _Kept(stream)
    header = _read_header(kept, _BUNDLE, "bundle")  # type: ignore[arg-type]
    records = [_read_record(kept, "bundle") for _ in range(3)]  # type: ignore[arg-type]
    return header, records, bytes(kept.seen)


def _loaded(mult_key: bytes, tag: str) -> bool:
    """Whether this process holds ``mult_key`` for ``tag`` already (its client, or another
    server of the bundle): OpenFHE keeps one per tag process-wide and refuses a second."""
    try:
        return bool(openfhe.SerializeEvalMultKeyString(openfhe.BINARY, tag) == mult_key)
    except RuntimeError:  # none for this tag
        return False
