"""The server's side of a worker, and the server as a program (``python KERNEL.py serve``).

A worker process (a pool's, or a Dask worker) runs ``_serve_start`` once with the public
bundle (:mod:`porcupine.backend.workers` bootstraps it) and then ``_serve_tile`` per tile.
:func:`main` is the server program: it loads the bundle, evaluates a request file on a pool
of worker processes or on a Dask cluster, and writes the response file whole or not at all.

The imports above the ``serve`` marker are there for ruff and mypy: the code below it is
copied into every emitted module, after the two parties.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import sys
import time
from typing import Any

import numpy as np

from porcupine.backend.parties import Server
from porcupine.backend.runtime import KERNEL
from porcupine.backend.wire import _serialize
from porcupine.backend.workers import Engine, WorkerError, set_threads, worker_count

# --- serve: copied into every emitted module (after the two parties) ---

# The servers of the bundles this worker has loaded, by bundle id.
_SERVERS: dict[str, Server] = {}


def _serve_start(bundle_id: str, bundle: bytes, pool: bool) -> None:
    """Load ``bundle`` in this worker, once (a pool's initializer; a Dask plugin's setup)."""
    if pool:  # Ctrl-C reaches the whole process group: the parent ends the pool itself
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_threads(1)
    _SERVERS[bundle_id] = Server(bundle, workers=1)


def _serve_tile(bundle_id: str, task: tuple[int, dict[str, bytes], dict[str, Any], bool]) -> bytes:
    """One task: the serialized result of one tile or row of a request."""
    set_threads(1)  # OpenMP's setting is per thread, and Dask runs tasks on its own threads
    server = _SERVERS.get(bundle_id)
    if server is None:
        raise WorkerError(f"this worker has not loaded bundle {bundle_id}")
    return _serialize(server._evaluate_one(task))


def _serve_stop(bundle_id: str) -> None:
    """Forget a bundle (a Dask plugin's teardown)."""
    _SERVERS.pop(bundle_id, None)


def _request(path: str) -> Any:
    """The bundle or request file, or standard input for ``-`` (a client streaming its bundle
    and its request as it makes them: the server starts, and evaluates, while the client is
    still encrypting; with both ``-``, the bundle comes first)."""
    return contextlib.nullcontext(sys.stdin.buffer) if path == "-" else open(path, "rb")


def main(argv: list[str] | None = None) -> int:
    """The server as a program: ``python KERNEL.py serve BUNDLE REQUEST RESPONSE [NAME=FILE.npy
    ...] [--workers N | --dask tcp://HOST:PORT] [--processes [--pool-min K]] [--quiet]`` loads
    the public bundle, evaluates the request file (``-``: standard input, read as it
    arrives, after the bundle if it is ``-`` too; plaintext inputs from .npy files) on up
    to N threads (default: the machine's cores), N worker processes (``--processes``; they
    start at once and serve the request when it pays for them) or a Dask cluster, and
    writes the response
    file, whole or not at all; it shows progress on stderr unless --quiet and prints its
    seconds as one JSON line. Exit status 2, with the reason and no traceback, for a
    bundle, request or input that does not fit this kernel, or a scheduler that does not
    answer; 1 when a worker dies; 130 on Ctrl-C."""
    parser = argparse.ArgumentParser(prog=f"python {KERNEL}.py", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="evaluate a request with a public bundle")
    for name in ("bundle", "request", "response"):
        serve.add_argument(name)
    serve.add_argument("plaintexts", nargs="*", metavar="NAME=FILE.npy")
    where = serve.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="threads or processes (default: every core)")
    where.add_argument("--dask", metavar="tcp://HOST:PORT", help="a Dask scheduler's address")
    serve.add_argument(
        "--pool-min",
        type=int,
        metavar="K",
        help="start worker processes (implies --processes) for requests of at least K "
        "ciphertexts (default: when the first ciphertexts' measured time says the pool pays "
        "for its start-up)",
    )
    serve.add_argument(
        "--processes",
        action="store_true",
        help="evaluate on worker processes instead of threads of this process (a worker that "
        "crashes leaves the server standing; slower on 2 cores, see eval/throughput.md)",
    )
    serve.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    partial = f"{args.response}.part"  # renamed once whole: nothing half-written
    early: Engine | None = None
    try:
        plaintexts = {}
        for item in args.plaintexts:
            name, _, path = item.partition("=")
            plaintexts[name] = np.load(path, allow_pickle=False)
        start = time.perf_counter()
        processes = args.processes or args.pool_min is not None
        if processes and args.dask is None and worker_count(args.workers) > 1:
            # Workers start now, importing OpenFHE while this process reads the bundle (a
            # streaming client: while it makes its keys and encrypts); each request decides
            # whether to use them.
            # Forked: this process has no Python thread and no OpenFHE object yet (numpy's
            # OpenBLAS threads handle a fork), and a fork skips a spawn's imports.
            early = Engine.pool(worker_count(args.workers), fork=True)
        elif args.dask is not None:  # its import is most of joining a cluster: start it now
            with contextlib.suppress(ImportError):  # Engine.dask says what to install
                importlib.import_module("distributed")
        with _request(args.bundle) as bundle:
            server = Server(
                bundle,
                workers=args.workers,
                dask=args.dask,
                progress=not args.quiet,
                pool_min=args.pool_min,
                processes=processes,
            )
        loaded = time.perf_counter()
        if early is not None:
            server.adopt(early)
        with server, _request(args.request) as request, open(partial, "wb") as response:
            early = None  # the server closes it now
            server.evaluate_stream(request, response, **plaintexts)
            used = server.engine is not None and server.engine.submitted > 0
            engine = server.engine.kind if used and server.engine else "process"
            slots = server.engine.slots if used and server.engine else 1
        os.replace(partial, args.response)
        done = time.perf_counter()
    except (OSError, ValueError, TypeError, WorkerError, KeyboardInterrupt) as e:
        if early is not None:  # the bundle was refused: the workers waited for it
            early.close(abort=True)
        with contextlib.suppress(OSError):
            os.remove(partial)
        if isinstance(e, KeyboardInterrupt):
            return 130
        print(f"{KERNEL} serve: {e}", file=sys.stderr)
        return 1 if isinstance(e, WorkerError) else 2
    timing = {"load_s": loaded - start, "evaluate_s": done - loaded}
    print(json.dumps({**timing, "engine": engine, "workers": slots}))
    return 0
