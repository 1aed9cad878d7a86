"""Where a server's ciphertexts are evaluated: threads, worker processes, a Dask cluster.

A request of many ciphertexts (tiles of a big image, chunks of a long vector, rows of
instances) is a batch of independent evaluations. The server's :class:`Engine` runs them:

* **threads** of the server's process (the default; ``concurrent.futures.ThreadPoolExecutor``),
  one per core: OpenFHE's calls release the GIL, so threads evaluate ciphertexts side by
  side with no start-up, no copy of the keys and no pickling. Measured on 2 cores
  (512x512 photo, 2 threads against 1, in one process): Sobel 1.68-1.84x, Harris 1.86-1.97x
  once glibc keeps freed memory for reuse (:func:`_reuse_freed_memory`; 0.97x in 2 of 4
  runs without). eval/throughput.md, a long-lived server on a noisy machine: threads
  1.68x (Sobel) and 1.85x (Harris), processes 1.54x and 1.85x; the server program from
  start to exit, threads 1.36x and 1.32x, processes 1.17x and 1.18x;
* a **pool** of worker processes (:class:`concurrent.futures.ProcessPoolExecutor`,
  ``spawn`` context: OpenFHE's state must not be forked mid-use, nor a process that may
  hold threads), one per core; each worker imports this very module from its source text,
  loads the public bundle once (its initializer) and runs OpenFHE on one thread. The server
  program forks its workers instead, at its start, before it has a Python thread or an
  OpenFHE object (numpy's OpenBLAS thread handles a fork); they skip the imports. A worker
  that crashes leaves the server standing (:class:`WorkerError`);
* a **Dask cluster** (the ``distributed`` scheduler, imported only when asked for): the same
  tasks through ``Client.get_executor()``, also a ``concurrent.futures.Executor``; a worker
  plugin installs the module and the bundle on each worker once (and on workers that join
  later), not per task.

Tasks carry the serialized ciphertexts of one tile (a thread's, the task itself) and return
the result; :mod:`~porcupine.backend.dispatch` sends a request's tasks to an engine.

The imports above the ``workers`` marker are there for ruff and mypy: the code below it is
copied into every emitted module, before the two parties (which define the worker's side:
``_serve_start``, ``_serve_tile``, ``_serve_stop``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import hashlib
import importlib
import linecache
import multiprocessing
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

# --- workers: copied into every emitted module (before the two parties) ---


def set_threads(threads: int) -> None:
    """Run OpenFHE's calls in this thread on ``threads`` OpenMP threads.

    The module sets one thread when it is imported, unless OMP_NUM_THREADS says otherwise:
    OpenMP's default (every core) made a 64x64 box blur 136x slower (172 ms instead of
    1.26 ms) when another process was busy on one of two cores, and processes serving
    ciphertexts side by side (:class:`Engine`) are the faster way to use several cores.
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


def _reuse_freed_memory() -> None:
    """Make glibc keep freed memory for reuse (a heap's top up to 1 GB, allocations up to
    32 MB from the heap) instead of returning it to the system at once and faulting it in
    again: with two threads evaluating side by side, each return costs both cores (the
    other core's TLB is flushed) and each fault takes the process's memory lock. Measured,
    Harris 512x512, 2 threads against 1: 0.97x and 0.98x in 2 of 4 runs with glibc's
    defaults (the other two 1.82x, 1.89x), 1.86x and 1.97x with these. The process's peak
    memory is unchanged; what it freed stays mapped for its next request."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to tune
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD (its largest value on 64-bit)
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD


# What a pool costs on the 2-core machine (`python -m eval.throughput` measures both again,
# section "Threads or processes"): starting two workers until both have imported OpenFHE
# and loaded the bundle took 0.3-0.5 s on a lightly loaded machine (the 2026-12-07 01:29
# run; 1.4-1.9 s at a load average of 15-18), and the server process's own CPU per
# ciphertext it hands to a worker and back (pickling and pipes of about 0.5 MB) 1.0 ms for
# box blur's ciphertexts to 2.5 ms for Harris' (under that load). The workers' cores also
# serve that dispatch. Under load both grow; so does the time of the ciphertexts probed.
POOL_START_S = 0.5
DISPATCH_S = 0.0013
PROBES = 3  # ciphertexts evaluated in the server's process before a pool is considered


class WorkerError(RuntimeError):
    """A worker process died, or a cluster lost its workers, while evaluating a request:
    nothing of the response is valid."""


# Run in each worker (a pool's initializer, a Dask worker plugin's setup) with ``name``,
# ``path``, ``pool``, ``parent`` and ``source`` (or ``code``, a file holding it) and
# ``bundle_id`` and ``bundle`` (or ``blob``, a file holding both) bound: it installs this
# module under ``name`` (once per process) and loads the bundle. It is text run by the builtin
# exec: nothing of the module can be unpickled before it is installed. A pool's workers read
# files: a spawned process that dies before reading its arguments leaves the parent blocked
# writing them, when they exceed a pipe's buffer. A pool may start before the server has read
# the bundle: its workers import OpenFHE and this module, then wait for the bundle's file
# (written whole, by a rename), and leave if the server that started them has gone.
_BOOTSTRAP = """
import os, pickle, signal, sys, time, types
os.environ["OMP_NUM_THREADS"] = "1"  # before openfhe loads, if it has not yet
if pool:  # Ctrl-C reaches the whole process group: the parent ends the pool itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
if code is not None:
    with open(code, "rb") as f:
        source = pickle.load(f)
module = sys.modules.get(name)
if module is None:
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module  # before it runs: dataclasses look their module up
    exec(compile(source, path, "exec"), vars(module))
if blob is not None:
    while not os.path.exists(blob):
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.002)
    with open(blob, "rb") as f:
        bundle_id, bundle = pickle.load(f)
module._serve_start(bundle_id, bundle, pool)
"""


def worker_count(workers: int | None) -> int:
    """``workers``, or the machine's cores when None; at least 1."""
    count = (os.cpu_count() or 1) if workers is None else workers
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"workers must be a whole number of at least 1, got {workers!r}")
    return count


def real_openfhe() -> bool:
    """Whether this module runs OpenFHE, not the cleartext backend's stand-in
    (porcupine.backend.cleartext): its calls release the GIL, so threads evaluate side by
    side, and workers can load it."""
    return globals().get("openfhe") is sys.modules.get("openfhe")


def _identity() -> tuple[str, str, str] | None:
    """This module's name for workers, its file and its source text, or None when it has
    no source to send (then everything runs in this process). The name is registered here
    too, so that exceptions a worker raises unpickle as this module's own classes."""
    path = str(globals().get("__file__") or "")
    source = "".join(linecache.getlines(path)) if path else ""
    this = sys.modules.get(__name__)
    # A module bound to the cleartext backend (porcupine.backend.cleartext) stays here: its
    # workers would run OpenFHE.
    if not source or this is None or not real_openfhe():
        return None
    name = "porcupine_worker_" + hashlib.sha256(source.encode()).hexdigest()[:16]
    sys.modules.setdefault(name, this)
    return name, path, source


class Engine:
    """Where a server's tasks run: a pool of worker processes, or a Dask cluster."""

    def __init__(
        self,
        executor: concurrent.futures.Executor,
        module: str,
        slots: int,
        kind: str,
        close: Callable[[bool], None],
        alive: Callable[[], bool] = lambda: True,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.executor = executor
        self.alive = alive  # False once a worker has ended: the engine cannot finish
        self.ready = ready  # True once the workers have started and loaded the bundle
        self.module = module  # the name workers know this module by
        self.slots = slots  # tasks that run at once
        self.kind = kind  # "threads", "pool" or "dask"
        self.local: Callable[[Any], Any] | None = None  # what a thread runs on a task
        self.submitted = 0  # tasks sent to the workers
        self.calls = 0  # calls of the workers that carried them (a cluster's carry several)
        self.started = time.perf_counter()  # when its workers began to start
        self._close = close
        self._provide: Callable[[str, bytes], None] = lambda bundle_id, bundle: None
        self.closed = False

    def close(self, abort: bool = False) -> None:
        """Stop the workers (a pool's processes end; a cluster forgets the bundle); with
        ``abort``, at once, whatever they are doing."""
        if not self.closed:
            self.closed = True
            self._close(abort)

    def start_left(self) -> float:
        """What is left of the workers' start-up: none once they are ready, else what
        POOL_START_S leaves of it after the time since they began."""
        if self.ready():
            return 0.0
        return max(0.0, POOL_START_S - (time.perf_counter() - self.started))

    def provide(self, bundle_id: str, bundle: bytes) -> None:
        """Give a pool started without a bundle (``Engine.pool(size)``) the bundle its
        workers wait for; they load it once."""
        self._provide(bundle_id, bundle)

    @staticmethod
    def threads(size: int, local: Callable[[Any], Any]) -> Engine:
        """``size`` threads of this process, each running ``local`` on a task with one
        OpenMP thread (OpenMP's setting is per thread: a new thread would take every core).
        The first task of a request should run in the calling thread (see
        :func:`~porcupine.backend.dispatch.staged`)."""
        _reuse_freed_memory()
        executor = concurrent.futures.ThreadPoolExecutor(
            size, thread_name_prefix="porcupine-server", initializer=set_threads, initargs=(1,)
        )

        def close(abort: bool) -> None:  # a running OpenFHE call ends on its own: one task
            executor.shutdown(wait=not abort, cancel_futures=True)

        engine = Engine(executor, "", size, "threads", close)
        engine.local = local
        return engine

    @staticmethod
    def pool(
        size: int, bundle_id: str | None = None, bundle: bytes | None = None, fork: bool = False
    ) -> Engine | None:
        """``size`` worker processes, each with the bundle loaded; None when this module
        cannot be sent to workers (it has no source text). Without a bundle the workers start
        at once (import OpenFHE and this module) and load the one :meth:`provide` gives them:
        a server starts its pool before it has read the bundle. ``fork``: the workers are
        forks of this process, which then must hold no Python thread and no OpenFHE object
        (the server program at its start); they skip the imports, about 0.3 s of CPU each."""
        identity = _identity()
        if identity is None:
            return None
        name, path, source = identity
        folder = tempfile.TemporaryDirectory(prefix="porcupine-pool-")
        code, blob = (os.path.join(folder.name, f) for f in ("module.pickle", "bundle.pickle"))
        with open(code, "wb") as out:
            pickle.dump(source, out)
        namespace = {"name": name, "path": path, "code": code, "blob": blob, "pool": True}
        if fork:  # what is buffered now would be written again by every worker
            sys.stdout.flush()
            sys.stderr.flush()
        executor = concurrent.futures.ProcessPoolExecutor(
            size,
            mp_context=multiprocessing.get_context("fork" if fork else "spawn"),
            initializer=exec,
            initargs=(_BOOTSTRAP, {**namespace, "parent": os.getpid()}),
        )
        # Start every worker now (one process per task submitted while none is idle), so
        # that they import OpenFHE and load the bundle while this process goes on working.
        warm = [executor.submit(eval, "0") for _ in range(size)]

        def provide(bundle_id: str, bundle: bytes) -> None:
            with open(f"{blob}.part", "wb") as out:
                pickle.dump((bundle_id, bundle), out)
            os.replace(f"{blob}.part", blob)  # the workers see it whole or not at all

        def close(abort: bool) -> None:
            processes = list((getattr(executor, "_processes", None) or {}).values())
            # shutdown forgets the queues: keep their pipes' ends in this process
            calls = getattr(getattr(executor, "_call_queue", None), "_reader", None)
            results = getattr(getattr(executor, "_result_queue", None), "_writer", None)
            executor.shutdown(wait=not abort and ready(), cancel_futures=True)
            for process in processes:  # workers ignore SIGINT: the parent ends them
                process.terminate()
                process.join(1)
            # Python 3.10's pool hangs (its threads, and so the exit) when its workers end
            # while a task is written to them or a result from them is half read (gh-94777,
            # fixed in 3.12): with the workers gone, closing this process's own ends of the
            # pipes turns the waits into errors, which the pool's thread handles.
            for end in [e for e in (calls, results) if e is not None and abort]:
                with contextlib.suppress(OSError):
                    end.close()
            folder.cleanup()

        def alive() -> bool:
            processes = (getattr(executor, "_processes", None) or {}).values()
            return all(process.exitcode is None for process in processes)

        def ready() -> bool:
            return all(w.done() for w in warm)

        engine = Engine(executor, name, size, "pool", close, alive, ready)
        engine._provide = provide
        if bundle_id is not None and bundle is not None:
            provide(bundle_id, bundle)
        return engine

    @staticmethod
    def dask(target: Any, bundle_id: str, bundle: bytes, timeout: float = 5.0) -> Engine:
        """The Dask cluster at ``target`` (a scheduler address such as ``tcp://host:8786``,
        or a ``distributed.Client``), with this module and the bundle installed on each
        worker by a worker plugin. Raises ConnectionError when the scheduler does not answer
        within ``timeout`` seconds, ValueError when distributed is not installed."""
        try:  # only here: a server on one machine needs no Dask (Any: it is loosely typed)
            distributed: Any = importlib.import_module("distributed")
        except ImportError:
            raise ValueError(
                "running on a Dask cluster needs the distributed package: pip install "
                "distributed (porcupine's `cluster` extra)"
            ) from None
        identity = _identity()
        if identity is None:
            raise ValueError("this module has no source text to send to Dask workers")
        name, path, source = identity
        owned = isinstance(target, str)
        if owned:
            try:
                client = distributed.Client(target, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError) as e:
                raise ConnectionError(
                    f"no Dask scheduler answers at {target} within {timeout:g} s ({e}); start "
                    f"one (`dask scheduler`) and workers (`dask worker {target}`), or check the "
                    "address"
                ) from None
        else:
            client = target
        plugin_name = f"porcupine-{name}-{bundle_id}"
        payload: dict[str, Any] = {"name": name, "path": path, "source": source}
        payload.update(bundle_id=bundle_id, bundle=bundle, blob=None, code=None)
        plugin = _dask_plugin(distributed, payload, _BOOTSTRAP)
        try:
            replies = client.register_plugin(plugin, name=plugin_name) or {}
            failed = [r for r in replies.values() if r.get("status") != "OK"]
            if failed:
                raise WorkerError(f"a Dask worker could not load the bundle: {failed[0]}")
            threads = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
            if threads == 0:
                raise WorkerError(f"the Dask cluster at {target} has no workers")
        except BaseException:
            client.close() if owned else None
            raise

        executor = client.get_executor(pure=False)

        def close(abort: bool) -> None:
            executor.shutdown(wait=False) if abort else None  # cancels the tasks in flight
            with contextlib.suppress(Exception):  # a cluster that went away has nothing left
                client.unregister_worker_plugin(plugin_name)
            if owned:
                client.close()

        return Engine(executor, name, threads, "dask", close)


def _dask_plugin(distributed: Any, payload: dict[str, Any], bootstrap: str) -> Any:
    """A worker plugin that runs the bootstrap on each worker (a class made here, so that
    Dask pickles it by value: the workers cannot import this module before it is installed)."""

    class PorcupineServer(distributed.WorkerPlugin):  # type: ignore[misc]
        def __init__(self, payload: dict[str, Any], bootstrap: str) -> None:
            self.payload, self.bootstrap = payload, bootstrap

        def setup(self, worker: Any) -> None:
            exec(self.bootstrap, {**self.payload, "pool": False})

        def teardown(self, worker: Any) -> None:
            import sys

            module = sys.modules.get(self.payload["name"])
            if module is not None:
                module._serve_stop(self.payload["bundle_id"])

    return PorcupineServer(payload, bootstrap)
