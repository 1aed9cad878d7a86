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

import hashlib
import io
import itertools
import math
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import numpy as np
import openfhe

from porcupine.backend.dispatch import Progress, pool_pays, staged
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
    NOISE_MARGIN_BITS,
    PARAMETER_SET,
    PLAINTEXT_MODULUS,
    RING_DIM,
    ROTATION_INDICES,
    SLOTS,
    Slots,
    check_context,
    decode_slots,
    encrypt_plaintext,
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
from porcupine.backend.wire import (
    _BUNDLE,
    _REQUEST,
    _RESPONSE,
    KernelDataError,
    _ciphertext,
    _loaded,
    _read_bundle,
    _read_header,
    _read_record,
    _serialize,
    _write_header,
    _write_record,
)
from porcupine.backend.workers import POOL_START_S, PROBES, Engine, real_openfhe, worker_count

# --- two parties: copied into every emitted module (porcupine.backend.openfhe_emit) ---


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
                _write_record(out, _serialize(encrypt_plaintext(self.cc, self.keys, plaintext)))

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
                _write_record(out, _serialize(encrypt_plaintext(self.cc, self.keys, plaintext)))

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
        """A ciphertext's SLOTS output slots in each row (one tile each), in [0, t)."""
        values = decode_slots(self.cc, self.keys, ciphertext, RING_DIM)
        width = RING_DIM // ROWS
        return tuple(values[r * width : r * width + SLOTS] for r in range(ROWS))


class Server:
    """The party without the secret key: loads a public bundle, evaluates requests."""

    def __init__(
        self,
        bundle: bytes | BinaryIO,
        *,
        workers: int | None = None,
        dask: Any = None,
        progress: bool = False,
        pool_min: int | None = None,
        processes: bool = False,
    ) -> None:
        """Load ``bundle`` (bytes, or a binary stream read to the bundle's end) and check it is
        this kernel's: the parameter set the noise analysis proved it safe for, at least its
        security level, its relinearization and rotation keys. Raises KernelDataError or
        KernelContextError (a ValueError) saying what is wrong.

        Requests of several ciphertexts are evaluated on up to ``workers`` threads of this
        process (default: the machine's cores; 1: this thread alone), with ``processes`` (or
        ``pool_min``) on worker processes, each loading the bundle once (one that crashes
        leaves this process standing), or on the Dask cluster ``dask`` (a scheduler address
        ``tcp://HOST:PORT`` or a ``distributed.Client``; ConnectionError when it does not
        answer). A pool starts only when a request pays for its start-up: the first
        ciphertexts are evaluated here and timed, and :func:`pool_pays` weighs the rest
        against the pool's measured start-up (``pool_min``: instead, a pool for every
        request of at least that many ciphertexts); the tiles go on here until its workers
        are ready. Threads or a pool are kept for the next requests. ``progress`` shows
        tiles done, throughput and time left on stderr (with tqdm, if installed).
        Call :meth:`close` (or use ``with``) to stop the workers."""
        _natural()
        stream = io.BytesIO(bundle) if isinstance(bundle, bytes | bytearray) else bundle
        header, (context, rotation_keys, mult_key), data = _read_bundle(stream)
        try:
            self.cc = openfhe.DeserializeCryptoContextString(context, openfhe.BINARY)
            if rotation_keys:
                openfhe.DeserializeEvalAutomorphismKeyString(rotation_keys, openfhe.BINARY)
            if mult_key and not _loaded(mult_key, str(header["key_tag"])):
                openfhe.DeserializeEvalMultKeyString(mult_key, openfhe.BINARY)
        except Exception as e:  # OpenFHE raises RuntimeError with its own text
            raise KernelDataError(f"the bundle does not deserialize: {e}") from None
        self.key_tag = str(header["key_tag"])
        check_context(self.cc, self.key_tag)  # parameter set, security level and keys
        self.bundle = data  # what workers load
        self._id = hashlib.sha256(self.bundle).hexdigest()[:16]  # once: bundles are MBs
        self.workers, self.dask, self.progress = worker_count(workers), dask, progress
        self.pool_min, self.processes = pool_min, processes or pool_min is not None
        self.engine: Engine | None = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes (or leave the Dask cluster); the next request starts
        them again."""
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def adopt(self, pool: Engine) -> None:
        """Use ``pool``, worker processes started before the bundle was read
        (``Engine.pool(size)``, no bundle): they load this bundle. A server program starts
        them first, so that their start-up overlaps its own and the client's work; each
        request still decides whether to use them (:meth:`_pool`)."""
        self.close()
        pool.provide(self._id, self.bundle)
        self.engine = pool

    def evaluate(self, request: bytes, **plaintexts: Any) -> bytes:
        """The response to ``request`` (see :meth:`evaluate_stream`)."""
        out = io.BytesIO()
        self.evaluate_stream(io.BytesIO(request), out, **plaintexts)
        return out.getvalue()

    def evaluate_stream(
        self,
        request: BinaryIO,
        out: BinaryIO,
        *,
        workers: int | None = None,
        progress: bool | None = None,
        **plaintexts: Any,
    ) -> None:
        """Evaluate the kernel on every tile or row of ``request`` and write the response,
        one ciphertext at a time, in order. ``plaintexts``: the kernel's plaintext inputs
        (the server's own data), at the shape of the client's inputs; a reduction's partial
        results are summed here, so one ciphertext goes back. ``workers`` and ``progress``
        override the server's for this request. Raises WorkerError when a worker dies:
        then what was written is no response."""
        _check_names(plaintexts, "pt", "evaluate")
        header = _read_header(request, _REQUEST, "request")
        plan = _plan_of(header, "request")
        names = list(header["inputs"])
        _check_names(dict.fromkeys(names), "ct", "the request")
        reduce = isinstance(plan, TilePlan) and TILE_KIND == "reduction"
        count = _ciphertexts(header)
        if isinstance(plan, TilePlan):
            _check_noise(plan)
        tasks = self._tasks(request, plan, names, plaintexts, count)
        _write_header(out, _RESPONSE, {**header, "ciphertexts": 1 if reduce else count})
        size = min(count, self.workers if workers is None else worker_count(workers))
        results = staged(
            ((self._id, t) for t in tasks),
            lambda task: self._evaluate_one(task[1]),
            self._running(size),
            lambda seconds: self._pool(count, size, seconds),
            "_serve_tile",
            lambda index: f"ciphertext {index} of the request",
            count,
            probe=self.pool_min is None,
        )
        bar = Progress(count, self.progress if progress is None else progress)
        total = None
        try:
            for index, result in enumerate(results):
                remote = isinstance(result, bytes)  # a worker's, serialized
                if remote and reduce:
                    result = _ciphertext(result, self.key_tag, f"result {index}")
                if not reduce:
                    _write_record(out, result if remote else _serialize(result))
                else:
                    total = result if total is None else self.cc.EvalAdd(total, result)
                bar.update()
        finally:
            bar.close()
        if reduce:
            _write_record(out, _serialize(total))

    def _running(self, size: int) -> Engine | None:
        """The engine to start this request on: the Dask cluster (joined once), a pool kept
        from an earlier request, or None (this process first, see :meth:`_pool`)."""
        if self.engine is not None and self.engine.closed:
            self.engine = None  # a worker died, or Ctrl-C: start afresh
        if self.dask is not None:
            if self.engine is None:
                self.engine = Engine.dask(self.dask, self._id, self.bundle)
            return self.engine
        if size > 1 and self.engine is not None and self.engine.slots >= size:
            return self.engine
        if size > 1 and not self.processes and real_openfhe():
            self.close()
            local = lambda task: self._evaluate_one(task[1])  # noqa: E731
            self.engine = Engine.threads(max(size, self.workers), local)
            return self.engine
        return None

    def _pool(self, count: int, size: int, seconds: float | None) -> Engine | None:
        """A pool of ``size`` workers for a request of ``count`` ciphertexts, when it pays
        for its start-up: ``pool_min`` ciphertexts, or by :func:`pool_pays` for the rest
        when one took ``seconds`` here (a pool already starting, adopted, costs what is left
        of its start-up); kept for the next requests. None: stay here."""
        adopted = self.engine if self.engine is not None and self.engine.slots >= size else None
        start = POOL_START_S if adopted is None else adopted.start_left()
        if (
            size <= 1
            or (seconds is not None and not pool_pays(count - PROBES, seconds, size, start))
            or (self.pool_min is not None and count < self.pool_min)
        ):
            if adopted is not None and not adopted.ready():
                self.close()  # its workers would spend the cores this process needs
            return None
        if adopted is None:
            self.close()
            self.engine = Engine.pool(size, self._id, self.bundle)
        return self.engine

    def _tasks(
        self,
        request: BinaryIO,
        plan: TilePlan | int,
        names: list[str],
        plaintexts: Mapping[str, Any],
        count: int,
    ) -> Iterator[tuple[int, dict[str, bytes], dict[str, Any], bool]]:
        """Per ciphertext of the request, read as it is reached: its index, its ciphertexts
        (serialized) and plaintext inputs (values, encoded where the tile is evaluated)."""
        values = self._plaintexts(plan, plaintexts)
        for index, plain in zip(range(count), values, strict=False):
            cts = {name: _read_record(request, "request") for name in names}
            yield index, cts, plain, not isinstance(plan, TilePlan)

    def _evaluate_one(self, task: tuple[int, dict[str, bytes], dict[str, Any], bool]) -> Any:
        """The kernel on one tile or row of a request (see :meth:`_tasks`)."""
        index, cts, plain, rows = task
        arguments = {
            n: encode_row(self.cc, v) if rows else _packed(self.cc, n, v) for n, v in plain.items()
        }
        for name, data in cts.items():
            what = f"ciphertext {index} ({name})"
            arguments[name] = _ciphertext(data, self.key_tag, what, self.cc)
        return evaluate(self.cc, **arguments)

    def _plaintexts(
        self, plan: TilePlan | int, values: Mapping[str, Any]
    ) -> Iterator[dict[str, Any]]:
        """Per ciphertext of the request, the plaintext inputs cut alike (not encoded)."""
        names = sorted(values)
        per_input: list[Iterator[Any]]  # per ciphertext: a group of tiles, or a row
        if isinstance(plan, TilePlan):
            if values and plan_inputs(values) != plan:
                raise ValueError(
                    f"the plaintext inputs have shape {np.shape(next(iter(values.values())))}, "
                    f"the request's data {plan.shape}: they must match"
                )
            per_input = [_in_rows(tile_inputs(plan, n, values[n])) for n in names]
        else:
            per_input = [instance_rows(n, values[n]) for n in names]
        for tile in zip(*per_input, strict=True) if names else itertools.repeat(()):
            yield dict(zip(names, tile, strict=True))
