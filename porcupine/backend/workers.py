"""A server's ciphertexts evaluated on every core, or on a Dask cluster.

A request of many ciphertexts (tiles of a big image, chunks of a long vector, rows of
instances) is a batch of independent evaluations, and one Python process runs one OpenFHE
call at a time. The server's :class:`Engine` sends them to worker processes instead:

* a **pool** (:class:`concurrent.futures.ProcessPoolExecutor`, ``spawn`` context: OpenFHE's
  state must not be forked mid-use, nor a process that may hold threads), one process per
  core by default; each worker imports this very module from its source text, loads the
  public bundle once (its initializer) and runs OpenFHE on one thread. The server program
  forks its workers instead, at its start, before it has a Python thread or an OpenFHE
  object (numpy's OpenBLAS thread handles a fork); they skip the imports;
* a **Dask cluster** (the ``distributed`` scheduler, imported only when asked for): the same
  tasks through ``Client.get_executor()``, also a ``concurrent.futures.Executor``; a worker
  plugin installs the module and the bundle on each worker once (and on workers that join
  later), not per task.

Tasks carry the serialized ciphertexts of one tile and return the serialized result;
:func:`ordered` keeps a few tasks per worker in flight (the request is read as they are
sent, so memory is bounded by the tiles in flight, not by the data) and yields results in
order. A worker that dies raises :class:`WorkerError`; Ctrl-C stops the pool at once.

A pool costs its start-up (each worker imports OpenFHE and loads the bundle) and the
server's own work per task (pickling, pipes): :func:`staged` evaluates a request's first
ciphertexts in the server's process, timed, starts a pool only when :func:`pool_pays`
says the rest repays it, and goes on in process until the workers are ready, so that no
tile waits for them. A long-lived server keeps its pool for the next requests. The server
program (``python KERNEL.py serve``) starts its pool before it has read the bundle
(:meth:`Engine.provide` hands it over): the workers import OpenFHE while the client makes
its keys and encrypts, and a request then weighs what is left of their start-up and the
dispatch (a pool still starting that does not pay is stopped). While a pool works, the
server's own process evaluates a tile whenever the result it waits for is not ready.

The imports above the ``workers`` marker are there for ruff and mypy: the code below it is
copied into every emitted module, before the two parties (which define the worker's side:
``_serve_start``, ``_serve_tile``, ``_serve_stop``).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import ctypes
import hashlib
import importlib
import itertools
import linecache
import multiprocessing
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
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


def _identity() -> tuple[str, str, str] | None:
    """This module's name for workers, its file and its source text, or None when it has
    no source to send (then everything runs in this process). The name is registered here
    too, so that exceptions a worker raises unpickle as this module's own classes."""
    path = str(globals().get("__file__") or "")
    source = "".join(linecache.getlines(path)) if path else ""
    this = sys.modules.get(__name__)
    # A module bound to the cleartext backend (porcupine.backend.cleartext) stays here: its
    # workers would run OpenFHE.
    if not source or this is None or globals().get("openfhe") is not sys.modules.get("openfhe"):
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
        self.kind = kind  # "pool" or "dask"
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


def ordered(
    engine: Engine,
    function: str,
    tasks: Iterable[tuple[Any, ...]],
    what: Callable[[int], str],
    first: int = 0,
    local: Callable[[Any], Any] | None = None,
    batch: int = 1,
) -> Iterator[Any]:
    """This module's ``function(*task)`` for each task, on the engine's workers, yielded in
    order; ``batch`` tasks to one call of a worker, at most three calls per worker in flight
    (the tasks are made as they are sent: memory stays bounded however long the request).
    With ``local``, this process takes the next task itself (``local(task)``) whenever the
    result it waits for is not ready: it would idle otherwise. A worker that dies raises
    WorkerError naming ``what(index)``; any exception (Ctrl-C too) cancels the rest and
    stops the engine.

    A call is the builtin eval of calls of the worker's copy of this module, found by name:
    a Dask scheduler unpickles tasks, and it has no copy of this module to find a function
    pickled by reference in (nor has a pool worker this process's name for it)."""
    call = f"[__import__('sys').modules[{engine.module!r}].{function}(*t) for t in batch]"
    flight: collections.deque[concurrent.futures.Future[list[Any]]] = collections.deque()
    source = iter(tasks)
    index, exhausted = first, False  # the request's index of the task whose result is next
    try:
        while True:
            try:
                pending = sum(not f.done() for f in flight)
                while not exhausted and pending < 3 * engine.slots:
                    group = list(itertools.islice(source, batch))
                    exhausted = len(group) < batch
                    if group:
                        flight.append(engine.executor.submit(eval, call, {"batch": group}))
                        pending += 1
                        engine.submitted += len(group)
                        engine.calls += 1
                if not flight:
                    return
                while (
                    local
                    and not exhausted
                    and not flight[0].done()
                    and len(flight) < 5 * engine.slots
                ):
                    task = next(source, None)
                    if task is None:
                        exhausted = True
                    else:  # its result joins the queue in order, done
                        flight.append(concurrent.futures.Future())
                        flight[-1].set_result([local(task)])
                results = _result(engine, flight.popleft())
            except concurrent.futures.process.BrokenProcessPool as e:
                raise WorkerError(
                    f"a worker died while evaluating {what(index)}: {e}; no response was made"
                ) from None
            except Exception as e:
                if type(e).__name__ != "KilledWorker":  # distributed's: retries ran out
                    raise
                raise WorkerError(
                    f"Dask workers died evaluating {what(index)}: {e}; no response was made"
                ) from None
            for result in results:
                index += 1
                yield result
    except BaseException:
        engine.close(abort=True)  # cancels what is in flight (not here: a pool's thread
        raise  # fails on a future cancelled behind its back, gh-94777's neighbour)


# A Dask task costs about 6 ms of scheduling and transfer on top of its work (77 tasks
# echoing 0.4 MB each: 6.0-6.4 ms a task on a LocalCluster of 2; in batches of 8: 1.4 ms a
# ciphertext, as much as a pool's task), more than a Sobel tile's evaluation at N = 4096.
# So a cluster's tasks carry several ciphertexts: enough that each worker still gets
# about four calls of a request (balance), at most BATCH_MOST (memory in flight).
BATCH_MOST = 8


def batch_size(engine: Engine, count: int) -> int:
    """Ciphertexts per task for a request of ``count`` on ``engine``: one on a pool (its
    task costs about as much as a batched one), up to BATCH_MOST on a cluster."""
    if engine.kind != "dask":
        return 1
    return max(1, min(BATCH_MOST, count // (4 * engine.slots)))


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


def pool_pays(
    remaining: int, per_ciphertext_s: float, workers: int, start_s: float = POOL_START_S
) -> bool:
    """Whether ``workers`` processes evaluate ``remaining`` ciphertexts of ``per_ciphertext_s``
    seconds each sooner than this process alone: on the pool each costs its evaluation plus
    the dispatch, shared by the workers' cores, after the pool's start-up ``start_s`` (0 for
    a pool already starting: its cost is spent)."""
    alone = remaining * per_ciphertext_s
    pooled = start_s + remaining * (per_ciphertext_s + DISPATCH_S) / workers
    return workers > 1 and pooled < alone


def staged(
    tasks: Iterator[Any],
    local: Callable[[Any], Any],
    engine: Engine | None,
    start: Callable[[float | None], Engine | None],
    function: str,
    what: Callable[[int], str],
    count: int,
    probe: bool = True,
) -> Iterator[Any]:
    """The results of the ``count`` ``tasks`` in order. On ``engine`` when it is running and
    ready (a cluster's in batches: :func:`batch_size`).
    Otherwise, with ``probe``, the first PROBES in this process (``local``), timed, then
    ``start(seconds per task)`` decides whether a pool pays off (and starts it, or keeps the
    one still starting: None, the rest here too), and until its workers are ready the tasks
    go on here, so that nothing waits for their start-up; without ``probe``, ``start(None)``
    and every task on its workers. They run ``function(*task)``; this process helps them
    (see :func:`ordered`)."""
    index = 0
    if probe and (engine is None or not engine.ready()):
        seconds = []  # the least of a few: a first call pays one-time costs, and others'
        for task in itertools.islice(tasks, PROBES):  # processes preempt some
            begin = time.perf_counter()
            result = local(task)
            seconds.append(time.perf_counter() - begin)
            yield result
        index = len(seconds)
        engine = start(min(seconds)) if len(seconds) == PROBES else None
        try:
            while engine is not None and not engine.ready():
                task = next(tasks, None)
                if task is None:
                    return
                yield local(task)
                index += 1
        except BaseException:  # Ctrl-C, or the caller gave up: workers still starting too
            if engine is not None:
                engine.close(abort=True)
            raise
    elif engine is None or not engine.ready():
        engine = start(None)
    if engine is None:
        yield from map(local, tasks)
    else:  # a pool's server process is one more worker. Not a cluster's: a LocalCluster
        # of 2 on Harris 512x512 was slower with this process helping in 3 of 3 interleaved
        # runs (OpenFHE's calls release the GIL, measured, so not for want of it; its
        # client's event loop and this process's evaluation share the cores)
        helper = local if engine.kind == "pool" else None
        batch = batch_size(engine, count - index)
        yield from ordered(engine, function, tasks, what, index, helper, batch)


def _result(engine: Engine, future: concurrent.futures.Future[Any]) -> Any:
    """The future's result, or BrokenProcessPool as soon as a worker has ended: Python
    3.10's pool waits forever for a result that a worker ended half written."""
    while True:
        try:
            return future.result(timeout=0.25)
        except concurrent.futures.TimeoutError:
            if not engine.alive():
                raise concurrent.futures.process.BrokenProcessPool("a worker ended") from None


class Progress:
    """Tiles done, throughput and time left on stderr (tqdm's bar), when asked for and
    tqdm is installed; otherwise nothing."""

    def __init__(self, total: int, enabled: bool, unit: str = "tile") -> None:
        self.bar: Any = None
        self.start = time.perf_counter()
        if enabled:
            with contextlib.suppress(ImportError):  # tqdm is optional: no bar then
                tqdm = importlib.import_module("tqdm").tqdm
                self.bar = tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def update(self) -> None:
        """One more done."""
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        """Finish the bar."""
        if self.bar is not None:
            self.bar.close()
