"""An emitted kernel run as an application runs it: a client and a server in two processes.

This process is the client: it imports the emitted module, makes the keys, writes the
public bundle and the request (the inputs at any size, cut into the kernel's tiles). The
server is a second Python process started on the module itself (``python KERNEL.py serve
BUNDLE REQUEST RESPONSE``), which receives only those and the plaintext inputs, never the
secret key. Then the client decrypts the response. Every stage is timed and every file
measured: :class:`AppRun`.

With worker processes (``workers`` other than 1) the two sides overlap: the server starts
first and the client streams the bundle and then the request into it as it makes them
(``serve - - RESPONSE``), so the server imports OpenFHE and starts its workers while the
client makes its keys and starts encrypting (a thread writes to the server, a few dozen
ciphertexts ahead), and loads the bundle and evaluates tiles while the client is still
encrypting; the client decrypts the response as the server writes it. With one worker they
run one after the other, as one-core figures (eval/apps) are measured.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import numpy as np
import numpy.typing as npt

from porcupine.backend.kernel_module import load_module


class ServerFailed(RuntimeError):
    """The server process refused the bundle or the request (its message says why)."""


@dataclass(frozen=True, kw_only=True)
class AppRun:
    """One two-party run: what went where, how big, how long."""

    kernel: str
    parameter_set: str
    ring_dim: int
    mode: str  # "tiles", "instances" (batched), or "per instance" (eval/apps_instances)
    ciphertexts: int  # per ciphertext input
    bundle_bytes: int
    upload_bytes: int  # the request
    download_bytes: int  # the response
    keygen_s: float  # context and keys (client)
    encrypt_s: float  # the request, serialized (client; overlapped: sent to the server)
    server_load_s: float  # the bundle, deserialized and checked (server)
    evaluate_s: float  # the kernel on every ciphertext (server; overlapped: from the load)
    server_wall_s: float  # the server process, start to exit (overlapped: after the request)
    decrypt_s: float  # the response, decrypted and stitched (client; overlapped: after the server)
    output: Any  # the decrypted output (masked array, int, or instances)
    engine: str = "process"  # where the server evaluated: "process", "pool" or "dask"
    workers: int = 1  # worker processes (or Dask worker threads) it used
    overlapped: bool = False  # the request streamed into the server as it was encrypted

    @property
    def total_s(self) -> float:
        """Client and server time end to end (without the files' transfer); the stages do
        not overlap in time, so this is the wall time."""
        return self.keygen_s + self.encrypt_s + self.server_wall_s + self.decrypt_s

    def stages(self) -> str:
        """The per-stage seconds and bytes, one line each."""
        mib = 1 << 20
        rows = [
            ("keys", self.keygen_s, f"bundle   {self.bundle_bytes / mib:9.2f} MiB"),
            ("encrypt", self.encrypt_s, f"upload   {self.upload_bytes / mib:9.2f} MiB"),
            (
                "server",
                self.server_wall_s,
                f"(load {self.server_load_s:.3f} s, evaluate "
                f"{self.evaluate_s:.3f} s, {self.ciphertexts} ciphertexts per input)",
            ),
            ("decrypt", self.decrypt_s, f"download {self.download_bytes / mib:9.2f} MiB"),
            ("total", self.total_s, ""),
        ]
        return "\n".join(f"  {name:<8} {s:8.3f} s   {what}".rstrip() for name, s, what in rows)


def _server_env() -> dict[str, str]:
    """The server's environment: one OpenMP thread (unless set), nothing of ours to import."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_two_party(
    module_path: str | Path,
    inputs: Mapping[str, npt.ArrayLike],
    plaintexts: Mapping[str, npt.ArrayLike] | None = None,
    *,
    instances: bool = False,
    workdir: str | Path | None = None,
    workers: int | None = None,
    dask: str | None = None,
    overlap: bool | None = None,
    pool_min: int | None = None,
    processes: bool = False,
) -> AppRun:
    """Run the emitted module at ``module_path`` on ``inputs`` (its ciphertext inputs, any
    size; with ``instances``, each shaped ``(count, *its shape)``) with a server process
    given the ``plaintexts`` (its plaintext inputs). Files go to ``workdir`` (default: a
    temporary folder, removed after). The server evaluates on ``workers`` threads, or
    worker processes with ``processes`` (default: the machine's cores; ``pool_min``: see
    the module's ``Server``) or on the Dask
    cluster at the scheduler address ``dask``. ``overlap``: stream the request into the
    server as it is encrypted (default: unless ``workers`` is 1). Raises ValueError/TypeError
    for inputs that do not fit the kernel and :class:`ServerFailed` when the server refuses
    or fails."""
    module = load_module(module_path)
    where = ["--quiet"]  # no progress bar in the captured stderr
    where += [] if workers is None else ["--workers", str(workers)]
    where += [] if dask is None else ["--dask", dask]
    where += [] if pool_min is None else ["--pool-min", str(pool_min)]
    where += ["--processes"] if processes else []
    stream = workers != 1 if overlap is None else overlap
    run = (module, Path(module_path), inputs, plaintexts or {}, instances, stream)
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="porcupine-run-") as tmp:
            return _run(*run, Path(tmp), where)
    return _run(*run, Path(workdir), where)


def _run(
    module: Any,
    path: Path,
    inputs: Mapping[str, npt.ArrayLike],
    plaintexts: Mapping[str, npt.ArrayLike],
    instances: bool,
    overlap: bool,
    folder: Path,
    where: list[str],
) -> AppRun:
    bundle, request, response = (
        folder / "bundle.bin",
        folder / "request.bin",
        folder / "response.bin",
    )
    arguments = []
    for name, values in plaintexts.items():
        np.save(folder / f"{name}.npy", np.asarray(values))
        arguments.append(f"{name}={folder / f'{name}.npy'}")
    head: BinaryIO
    client: Any = None

    def keys(out: BinaryIO) -> float:
        nonlocal client
        client = module.Client()
        client.public_bundle_into(out)
        return time.perf_counter()

    def encrypt(out: BinaryIO) -> None:
        if instances:
            client.encrypt_instances_into(out, **inputs)
        else:
            client.encrypt_into(out, **inputs)

    files = ["-", "-"] if overlap else [str(bundle), str(request)]
    command = [sys.executable, str(path), "serve", *files, str(response), *arguments, *where]
    start = time.perf_counter()
    output: Any = None
    if overlap:  # the server starts first: it imports OpenFHE, starts workers meanwhile
        sent = _Sent()

        def decrypt(stream: BinaryIO) -> None:
            nonlocal output
            output = client.decrypt_stream(stream)

        returncode, stdout, stderr, keyed, served = _overlapped(
            command, folder, response, (keys, encrypt, decrypt), sent
        )
        encrypted, bundle_bytes = sent.done, sent.bundle
        upload, head = sent.bytes, io.BytesIO(bytes(sent.head))
    else:
        with bundle.open("wb") as out:
            keyed = keys(out)
        with request.open("wb") as out:
            encrypt(out)
        encrypted = time.perf_counter()
        server = subprocess.run(
            command, capture_output=True, text=True, env=_server_env(), check=False
        )
        returncode, stdout, stderr = server.returncode, server.stdout, server.stderr
        upload, head = request.stat().st_size, request.open("rb")
        bundle_bytes = bundle.stat().st_size
        served = time.perf_counter()
    if returncode != 0:
        raise ServerFailed(stderr.strip() or f"the server exited with {returncode}")
    timing = json.loads(stdout.strip().splitlines()[-1])
    if not overlap:
        with response.open("rb") as stream:
            output = client.decrypt_stream(stream)
    done = time.perf_counter()
    with head:
        header = module.request_info(head)
    return AppRun(
        kernel=module.KERNEL,
        parameter_set=module.PARAMETER_SET,
        ring_dim=module.RING_DIM,
        mode=header["mode"],
        ciphertexts=header["ciphertexts"],
        bundle_bytes=bundle_bytes,
        upload_bytes=upload,
        download_bytes=response.stat().st_size,
        keygen_s=keyed - start,
        encrypt_s=encrypted - keyed,
        server_load_s=float(timing["load_s"]),
        evaluate_s=float(timing["evaluate_s"]),
        server_wall_s=served - encrypted,
        decrypt_s=done - served,
        output=output,
        engine=str(timing.get("engine", "process")),
        workers=int(timing.get("workers", 1)),
        overlapped=overlap,
    )


class _Sent(io.RawIOBase):
    """Counts the request's bytes as they go to the server, keeps its start (the header),
    and notes when the last was written; :meth:`restart` after the bundle."""

    def __init__(self) -> None:
        self.bytes, self.head, self.done, self.bundle = 0, bytearray(), 0.0, 0
        self.out: _Pipe | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        if len(self.head) < _HEAD:
            self.head += view[: _HEAD - len(self.head)]
        assert self.out is not None
        self.out.write(bytes(view))  # a copy: the caller may reuse its buffer
        self.bytes += len(view)
        return len(view)

    def restart(self) -> None:
        """The bundle has been sent: count the request from here."""
        self.bundle, self.bytes, self.head = self.bytes, 0, bytearray()


_HEAD = 1 << 16  # a request's magic line and JSON header fit


class _Pipe:
    """The server's standard input, written from a thread: the server reads nothing until
    it has imported OpenFHE, so this process makes its keys and encrypts meanwhile, up to
    ``depth`` writes ahead (a few dozen ciphertexts: memory stays bounded). A write after
    the server stopped reading raises BrokenPipeError, as writing to the pipe would."""

    def __init__(self, out: IO[bytes], depth: int = 64) -> None:
        self.out, self.error = out, cast("OSError | None", None)
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self.thread = threading.Thread(target=self._send, name="porcupine-send", daemon=True)
        self.thread.start()

    def _send(self) -> None:
        while (data := self.queue.get()) is not None:
            if self.error is None:  # after an error, only drain: the writer sees it
                try:
                    self.out.write(data)
                    if self.queue.empty():
                        self.out.flush()
                except OSError as e:  # BrokenPipeError: the server stopped reading
                    self.error = e

    def write(self, data: bytes) -> None:
        if self.error is not None:
            raise BrokenPipeError("the server stopped reading") from self.error
        self.queue.put(data)

    def close(self) -> None:
        """Wait until everything queued is written (or the server is gone), then close."""
        self.queue.put(None)
        self.thread.join()
        with contextlib.suppress(OSError):
            self.out.close()


def _overlapped(
    command: list[str],
    folder: Path,
    response: Path,
    calls: tuple[Any, Any, Any],
    sent: _Sent,
) -> tuple[int, str, str, float, float]:
    """Start the server reading the bundle and then the request from its standard input,
    make the keys and send the bundle (``keys``, which returns when it was done), encrypt
    into it, and ``decrypt`` its ``response`` as the server writes it (``calls``). Its
    status, standard output and error, when the keys were done and when the server was
    seen to exit (what the decryption took after that is its stage). When the client's
    encryption fails (inputs that do not fit the kernel), the server sees the request end,
    and the client's error is raised once it has exited; when the server fails, its status
    says so (what was decrypted is dropped)."""
    out_path, err_path = folder / "server.out", folder / "server.err"
    keys, encrypt, decrypt = calls
    keyed = 0.0
    for stale in (response, Path(f"{response}.part")):  # not to be read as this response
        stale.unlink(missing_ok=True)
    with out_path.open("w") as out, err_path.open("w") as err:
        server = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=out, stderr=err, env=_server_env()
        )
        assert server.stdin is not None
        sent.out = pipe = _Pipe(server.stdin)
        failed: BaseException | None = None
        try:
            keyed = keys(sent)  # the server loads the bundle while this process encrypts
            sent.restart()
            encrypt(sent)
        except BrokenPipeError:
            pass  # the server stopped reading: its status and message say why
        except BaseException as e:
            failed = e
        if isinstance(failed, KeyboardInterrupt | SystemExit):
            server.kill()  # it got the same Ctrl-C; do not wait on it
        pipe.close()  # the rest of the request sent: the server sees its end
        sent.done = time.perf_counter()
        tail = _Tail(response, server)
        if failed is None:
            try:
                decrypt(io.BufferedReader(tail))
            except (ValueError, RuntimeError):  # a response cut short: the server failed
                if server.wait() == 0:
                    raise
            except BaseException:
                server.kill()
                raise
            finally:
                tail.close()
        returncode = server.wait()
    if failed is not None:
        raise failed
    served = min(tail.exited or time.perf_counter(), time.perf_counter())
    return returncode, out_path.read_text(), err_path.read_text(), keyed, served


class _Tail(io.RawIOBase):
    """The server's response file read as the server writes it (``RESPONSE.part``, renamed
    to ``RESPONSE`` once whole): reads wait for more until the server has exited."""

    def __init__(self, response: Path, server: subprocess.Popen[bytes]) -> None:
        self.paths = (Path(f"{response}.part"), response)
        self.server, self.file = server, cast("io.BufferedReader | None", None)
        self.exited: float | None = None  # when this reader first saw the server gone

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            done = self.server.poll() is not None
            if done and self.exited is None:
                self.exited = time.perf_counter()
            for path in self.paths if self.file is None else ():
                with contextlib.suppress(FileNotFoundError):
                    self.file = path.open("rb")
                    break
            count = self.file.readinto(buffer) if self.file is not None else 0
            if count or done:  # after the exit, what the server wrote is all there is
                return count or 0
            time.sleep(0.002)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        super().close()
