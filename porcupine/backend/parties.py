"""The two parties of an HE application, as every emitted kernel module offers them.

A **client** owns the secret key: it builds the kernel's context, generates exactly the keys
the kernel needs, exports a *public bundle* (the serialized context, the relinearization key
if the kernel multiplies ciphertexts, and the kernel's rotation keys, never the secret key),
encrypts inputs of any size into a *request* and decrypts the *response*. A **server** loads
a bundle, checks it is this kernel's (parameter set, security level, keys), evaluates
requests and returns responses; it never holds a secret key and cannot decrypt::

    client = Client()                          # in the process that owns the data
    bundle = client.public_bundle()            # bytes: send once
    request = client.encrypt(x=image)          # bytes: any size, cut into tiles
    server = Server(bundle)                    # in another process, another machine
    response = server.evaluate(request)        # bytes
    blurred = client.decrypt(response)         # the whole output, masked where don't-care

Data larger than one ciphertext is cut as the compiler derived for this kernel
(:mod:`porcupine.backend.tiles`: stencil tiles with halos, reductions in chunks summed on the
server); many small independent instances share ciphertexts with ``encrypt_instances``
(:mod:`porcupine.backend.instances`). Bundles, requests and responses are one format: a magic
line, then length-prefixed records, the first a JSON header, the others OpenFHE's own binary
serializations; every method has a stream variant (``*_into``/``*_stream``) so that files
of any size pass without being held in memory.

:mod:`porcupine.backend.openfhe_emit` copies everything below the ``two parties`` marker;
the imports above it are there for ruff and mypy.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import io
import itertools
import json
import math
import os
import struct
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import numpy as np
import openfhe

from porcupine.backend.instances import (
    INSTANCES_PER_CIPHERTEXT,
    decrypt_row,
    encode_row,
    instance_outputs,
    instance_rows,
)
from porcupine.backend.runtime import (
    CT_CT_MULT,
    INPUTS,
    KERNEL,
    KERNEL_ID,
    NOISE_MARGIN_BITS,
    PARAMETER_SET,
    PLAINTEXT_MODULUS,
    RING_DIM,
    ROTATION_INDICES,
    SLOTS,
    KernelContextError,
    Slots,
    check_context,
    evaluate,
    fixed_settings,
    generate_keys,
    input_slots,
    new_context,
    output_of,
    pack,
    unpack_output,
)
from porcupine.backend.tiles import (
    TILE_KIND,
    TilePlan,
    plan_inputs,
    stitch,
    tile_inputs,
    tile_shape,
)

# --- two parties: copied into every emitted module (porcupine.backend.openfhe_emit) ---


def set_threads(threads: int) -> None:
    """Run OpenFHE's calls in this process on ``threads`` OpenMP threads.

    The module sets one thread when it is imported, unless OMP_NUM_THREADS says otherwise:
    OpenMP's default (every core) made a 64x64 box blur 136x slower (172 ms instead of
    1.26 ms) when another process was busy on one of two cores, and processes serving
    ciphertexts side by side are the faster way to use several cores.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    with contextlib.suppress(OSError):  # an OpenFHE without OpenMP runs one thread anyway
        ctypes.CDLL("libgomp.so.1").omp_set_num_threads(threads)


def _threads_wanted() -> int:
    """OMP_NUM_THREADS's first number (it may list one per nesting level), else 1."""
    first = os.environ.get("OMP_NUM_THREADS", "1").split(",")[0].strip()
    return int(first) if first.isdigit() and int(first) > 0 else 1


set_threads(_threads_wanted())

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


def _ciphertext(data: bytes, key_tag: str, what: str) -> Any:
    """A serialized ciphertext, checked to be under the bundle's keys."""
    try:
        ct = openfhe.DeserializeCiphertextString(data, openfhe.BINARY)
    except Exception as e:  # OpenFHE raises RuntimeError with its own text
        raise KernelDataError(f"{what} is not an OpenFHE ciphertext: {e}") from None
    if ct.GetKeyTag() != key_tag:
        raise KernelContextError(
            f"{what} is encrypted under key {ct.GetKeyTag()[:8]}, not under the bundle's key "
            f"{key_tag[:8]}: encrypt with the client that exported this server's bundle"
        )
    return ct


def _plan_of(header: Mapping[str, Any], what: str) -> TilePlan | int:
    """The tile plan (``tiles``) or the instance count (``instances``) of a header."""
    if header.get("mode") == "tiles":
        return TilePlan.from_json(header["plan"])
    if header.get("mode") == "instances":
        return int(header["instances"])
    raise KernelDataError(f"the {what} has an unknown mode {header.get('mode')!r}")


def _ciphertexts(header: Mapping[str, Any]) -> int:
    plan = _plan_of(header, "request")
    if isinstance(plan, TilePlan):
        return -(-plan.count // ROWS)
    return -(-plan // INSTANCES_PER_CIPHERTEXT)


def request_info(stream: BinaryIO) -> dict[str, Any]:
    """A request's header (mode, inputs, tile plan or instance count) and ``ciphertexts``,
    its number of ciphertexts per input; the stream is left after the header."""
    header = _read_header(stream, _REQUEST, "request")
    return {**header, "ciphertexts": _ciphertexts(header)}


ROWS = 2
"""Tiles per ciphertext: one in each BFV row of N/2 slots (``pack``); rotations and EvalSum
never mix the rows, so one evaluation serves both."""


def _in_rows(tiles: Iterator[Any]) -> Iterator[tuple[Any, ...]]:
    """``tiles`` in groups of ROWS (the last may hold fewer): one group per ciphertext."""
    while group := tuple(itertools.islice(tiles, ROWS)):
        yield group


def _packed(cc: Any, name: str, tiles: tuple[Any, ...]) -> Any:
    """Input ``name``'s tiles (kernel-shaped arrays), one per row of one plaintext."""
    return pack(cc, *(input_slots(name, tile, SLOTS) for tile in tiles))


def _natural() -> None:
    """Requests carry the spec's own layout: a kernel under a client packing gathers its
    ciphertexts from several inputs, which the two parties do not split."""
    if "PACKING" in globals():
        raise ValueError(
            "this kernel runs under a client packing: encrypt and run it in one process "
            "(encrypt() and kernel()), or synthesize it with --layout given for two parties"
        )


def _check_noise(plan: TilePlan) -> None:
    """A reduction's chunks are summed on the server: k ciphertexts add up to log2(k) bits
    of noise, which must stay within the margin the noise analysis left (it requires 5)."""
    summed = -(-plan.count // ROWS)
    if TILE_KIND != "reduction" or summed == 1:
        return
    grows = math.log2(summed)
    if NOISE_MARGIN_BITS - grows < 5:
        most = 2 ** int(NOISE_MARGIN_BITS - 5)
        raise ValueError(
            f"summing the {plan.count} chunks of this input adds {grows:.1f} bits of noise, "
            f"more than the kernel's margin ({NOISE_MARGIN_BITS:.1f} bits, 5 required) "
            f"allows: at most {most} chunks of {math.prod(tile_shape())}, i.e. "
            f"{most * math.prod(tile_shape())} elements; emit the kernel at a larger size"
        )


def _check_names(given: Mapping[str, Any], kind: str, who: str) -> None:
    want = sorted(name for name, k in INPUTS.items() if k == kind)
    if sorted(given) != want:
        what = "ciphertext" if kind == "ct" else "plaintext"
        raise TypeError(
            f"{who} takes the kernel's {what} inputs {want}, got {sorted(given)} (the client "
            "encrypts the ciphertext inputs; the server passes the plaintext ones)"
        )


class Client:
    """The party that owns the secret key: keys, the public bundle, encryption of inputs
    of any size, decryption of results."""

    def __init__(self, security: Any = None) -> None:
        """A fresh context of this kernel's parameter set (at ``security``, default
        SECURITY) and a key pair with exactly the kernel's evaluation keys."""
        self.cc = new_context(security)
        self.keys = generate_keys(self.cc)

    def public_bundle(self) -> bytes:
        """What a server needs and nothing secret (see :meth:`public_bundle_into`)."""
        out = io.BytesIO()
        self.public_bundle_into(out)
        return out.getvalue()

    def public_bundle_into(self, out: BinaryIO) -> None:
        """Write the bundle: the context, the relinearization key if the kernel multiplies
        ciphertexts, and the kernel's rotation keys (ROTATION_INDICES, no others)."""
        tag = self.keys.secretKey.GetKeyTag()
        level, _ = fixed_settings(self.cc)
        _write_header(
            out,
            _BUNDLE,
            {
                "name": KERNEL,
                "parameter_set": PARAMETER_SET,
                "security": level,
                "key_tag": tag,
                "rotation_indices": list(ROTATION_INDICES),
                "relinearization": CT_CT_MULT,
            },
        )
        _write_record(out, _serialize(self.cc))
        keys = openfhe.SerializeEvalAutomorphismKeyString(openfhe.BINARY, tag)
        _write_record(out, keys if ROTATION_INDICES else b"")
        mult = openfhe.SerializeEvalMultKeyString(openfhe.BINARY, tag) if CT_CT_MULT else b""
        _write_record(out, mult)

    def encrypt(self, **inputs: Any) -> bytes:
        """A request for the kernel's ciphertext inputs, given in their natural shape at any
        size (see :meth:`encrypt_into`)."""
        out = io.BytesIO()
        self.encrypt_into(out, **inputs)
        return out.getvalue()

    def encrypt_into(self, out: BinaryIO, **inputs: Any) -> None:
        """Write a request: the inputs cut into the kernel's tiles (:func:`plan_inputs`; one
        tile when they have the kernel's own shape), two tiles to a ciphertext (one per BFV
        row), encrypted one ciphertext at a time."""
        _check_names(inputs, "ct", "encrypt")
        _natural()
        plan = plan_inputs(inputs)
        _check_noise(plan)
        names = sorted(inputs)
        _write_header(out, _REQUEST, {"mode": "tiles", "plan": plan.to_json(), "inputs": names})
        groups = [_in_rows(tile_inputs(plan, name, inputs[name])) for name in names]
        for group in zip(*groups, strict=True):
            for name, tiles in zip(names, group, strict=True):
                plaintext = _packed(self.cc, name, tiles)
                _write_record(out, _serialize(self.cc.Encrypt(self.keys.publicKey, plaintext)))

    def encrypt_instances(self, **inputs: Any) -> bytes:
        """A request for many independent instances of the kernel's own size: each input
        shaped ``(count, *its shape)``; INSTANCES_PER_CIPHERTEXT share one ciphertext."""
        out = io.BytesIO()
        self.encrypt_instances_into(out, **inputs)
        return out.getvalue()

    def encrypt_instances_into(self, out: BinaryIO, **inputs: Any) -> None:
        """Write an instances request (see :meth:`encrypt_instances`)."""
        _check_names(inputs, "ct", "encrypt_instances")
        counts = {len(np.asarray(v)) for v in inputs.values()}
        if len(counts) != 1:
            raise ValueError("every input must hold the same number of instances")
        names = sorted(inputs)
        header = {"mode": "instances", "instances": counts.pop(), "inputs": names}
        _write_header(out, _REQUEST, header)
        rows = [instance_rows(name, inputs[name]) for name in names]
        for row in zip(*rows, strict=True):
            for values in row:
                plaintext = encode_row(self.cc, values)
                _write_record(out, _serialize(self.cc.Encrypt(self.keys.publicKey, plaintext)))

    def decrypt(self, response: bytes) -> Any:
        """The kernel's output for the whole request (see :meth:`decrypt_stream`)."""
        return self.decrypt_stream(io.BytesIO(response))

    def decrypt_stream(self, stream: BinaryIO) -> Any:
        """A response's output: for tiles, the whole output in its natural shape (a masked
        array, masked where the spec's output is don't-care; an int for a reduction); for
        instances, an array ``(count, *output shape)``."""
        header = _read_header(stream, _RESPONSE, "response")
        plan = _plan_of(header, "response")
        tag = self.keys.secretKey.GetKeyTag()
        cts = (
            _ciphertext(_read_record(stream, "response"), tag, f"result {i}")
            for i in range(int(header["ciphertexts"]))
        )
        if not isinstance(plan, TilePlan):
            return instance_outputs((decrypt_row(self.cc, self.keys, ct) for ct in cts), plan)
        rows = (row for ct in cts for row in self._rows(ct))
        outputs = (output_of(unpack_output(row)) for row in itertools.islice(rows, plan.count))
        if TILE_KIND == "reduction":  # the server summed the ciphertexts: add up the rows
            return stitch(plan, [sum(int(o) for o in outputs) % PLAINTEXT_MODULUS])
        return stitch(plan, outputs)

    def _rows(self, ciphertext: Any) -> tuple[Slots, ...]:
        """A ciphertext's SLOTS output slots in each row (one tile each), in [0, t); its key
        was checked when it was read (``_ciphertext``)."""
        plaintext = self.cc.Decrypt(self.keys.secretKey, ciphertext)
        plaintext.SetLength(RING_DIM)
        values = np.array(plaintext.GetPackedValue(), dtype=np.int64) % PLAINTEXT_MODULUS
        width = RING_DIM // ROWS
        return tuple(values[r * width : r * width + SLOTS] for r in range(ROWS))


class Server:
    """The party without the secret key: loads a public bundle, evaluates requests."""

    def __init__(self, bundle: bytes | BinaryIO) -> None:
        """Load ``bundle`` (bytes, or a binary stream such as an open file) and check it is
        this kernel's: the parameter set the noise analysis proved it safe for, at least its
        security level, its relinearization and rotation keys. Raises KernelDataError or
        KernelContextError (a ValueError) saying what is wrong."""
        _natural()
        stream = io.BytesIO(bundle) if isinstance(bundle, bytes | bytearray) else bundle
        header = _read_header(stream, _BUNDLE, "bundle")
        context = _read_record(stream, "bundle")
        rotation_keys, mult_key = _read_record(stream, "bundle"), _read_record(stream, "bundle")
        try:
            self.cc = openfhe.DeserializeCryptoContextString(context, openfhe.BINARY)
            if rotation_keys:
                openfhe.DeserializeEvalAutomorphismKeyString(rotation_keys, openfhe.BINARY)
            if mult_key:
                openfhe.DeserializeEvalMultKeyString(mult_key, openfhe.BINARY)
        except Exception as e:  # OpenFHE raises RuntimeError with its own text
            raise KernelDataError(f"the bundle does not deserialize: {e}") from None
        self.key_tag = str(header["key_tag"])
        check_context(self.cc, self.key_tag)  # parameter set, security level and keys

    def evaluate(self, request: bytes, **plaintexts: Any) -> bytes:
        """The response to ``request`` (see :meth:`evaluate_stream`)."""
        out = io.BytesIO()
        self.evaluate_stream(io.BytesIO(request), out, **plaintexts)
        return out.getvalue()

    def evaluate_stream(self, request: BinaryIO, out: BinaryIO, **plaintexts: Any) -> None:
        """Evaluate the kernel on every tile or row of ``request`` and write the response,
        one ciphertext at a time. ``plaintexts``: the kernel's plaintext inputs (the
        server's own data), at the shape of the client's inputs; a reduction's partial
        results are summed here, so one ciphertext goes back."""
        _check_names(plaintexts, "pt", "evaluate")
        header = _read_header(request, _REQUEST, "request")
        plan = _plan_of(header, "request")
        names = list(header["inputs"])
        _check_names(dict.fromkeys(names), "ct", "the request")
        reduce = isinstance(plan, TilePlan) and TILE_KIND == "reduction"
        count = _ciphertexts(header)
        _write_header(out, _RESPONSE, {**header, "ciphertexts": 1 if reduce else count})
        total = None
        if isinstance(plan, TilePlan):
            _check_noise(plan)
        for index, encoded in zip(range(count), self._plaintexts(plan, plaintexts), strict=False):
            arguments = dict(encoded)
            for name in names:
                data = _read_record(request, "request")
                arguments[name] = _ciphertext(data, self.key_tag, f"ciphertext {index} ({name})")
            result = evaluate(self.cc, **arguments)
            if not reduce:
                _write_record(out, _serialize(result))
            else:
                total = result if total is None else self.cc.EvalAdd(total, result)
        if reduce:
            _write_record(out, _serialize(total))

    def _plaintexts(
        self, plan: TilePlan | int, values: Mapping[str, Any]
    ) -> Iterator[dict[str, Any]]:
        """Per ciphertext of the request, the plaintext inputs encoded alike."""
        names = sorted(values)
        if isinstance(plan, TilePlan):
            if values and plan_inputs(values) != plan:
                raise ValueError(
                    f"the plaintext inputs have shape {np.shape(next(iter(values.values())))}, "
                    f"the request's data {plan.shape}: they must match"
                )
            per_input = [_in_rows(tile_inputs(plan, n, values[n])) for n in names]
            for group in zip(*per_input, strict=True) if names else itertools.repeat(()):
                yield {n: _packed(self.cc, n, t) for n, t in zip(names, group, strict=True)}
        else:
            rows = [instance_rows(n, values[n]) for n in names]
            for row in zip(*rows, strict=True) if names else itertools.repeat(()):
                yield {n: encode_row(self.cc, v) for n, v in zip(names, row, strict=True)}


def main(argv: list[str] | None = None) -> int:
    """The server as a program: ``python KERNEL.py serve BUNDLE REQUEST RESPONSE [NAME=FILE.npy
    ...]`` loads the public bundle, evaluates the request file (plaintext inputs from .npy
    files) and writes the response file; it prints its seconds as one JSON line. Exit
    status 2, with the reason and no traceback, for a bundle, request or input that does not
    fit this kernel."""
    parser = argparse.ArgumentParser(prog=f"python {KERNEL}.py", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="evaluate a request with a public bundle")
    for name in ("bundle", "request", "response"):
        serve.add_argument(name)
    serve.add_argument("plaintexts", nargs="*", metavar="NAME=FILE.npy")
    args = parser.parse_args(argv)
    try:
        plaintexts = {}
        for item in args.plaintexts:
            name, _, path = item.partition("=")
            plaintexts[name] = np.load(path, allow_pickle=False)
        start = time.perf_counter()
        with open(args.bundle, "rb") as bundle:
            server = Server(bundle)
        loaded = time.perf_counter()
        partial = f"{args.response}.part"  # renamed once whole: nothing half-written
        with open(args.request, "rb") as request, open(partial, "wb") as response:
            server.evaluate_stream(request, response, **plaintexts)
        os.replace(partial, args.response)
        done = time.perf_counter()
    except (OSError, ValueError, TypeError) as e:
        print(f"{KERNEL} serve: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"load_s": loaded - start, "evaluate_s": done - loaded}))
    return 0
