"""How a server's request is sent to its engine (:mod:`porcupine.backend.workers`).

:func:`ordered` keeps a few tasks per worker in flight (the request is read as they are
sent, so memory is bounded by the tiles in flight, not by the data) and yields results in
order; :func:`staged` decides where a request runs. A worker process that dies raises
:class:`~porcupine.backend.workers.WorkerError`; Ctrl-C stops the engine at once.

A pool of processes costs its start-up (each worker imports OpenFHE and loads the bundle)
and the server's own work per task (pickling, pipes): :func:`staged` evaluates a request's
first ciphertexts in the server's process, timed, starts a pool only when :func:`pool_pays`
says the rest repays it, and goes on in process until the workers are ready, so that no
tile waits for them. Threads (the default engine) cost neither: an engine's first
ciphertext is evaluated in the calling thread (it fills OpenFHE's lazily made tables before
two threads could race to make them), the rest on the threads.

The imports above the ``dispatch`` marker are there for ruff and mypy: the code below it is
copied into every emitted module, after the workers' section.
"""

from __future__ import annotations

import collections
import concurrent.futures
import concurrent.futures.process  # not imported by the package until a pool is made
import contextlib
import importlib
import itertools
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from porcupine.backend.workers import DISPATCH_S, POOL_START_S, PROBES, Engine, WorkerError

# --- dispatch: copied into every emitted module (after the workers) ---


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

    def submit(group: list[Any]) -> concurrent.futures.Future[list[Any]]:
        if engine.local is not None:  # a thread of this process: the task itself
            return engine.executor.submit(list, map(engine.local, group))
        return engine.executor.submit(eval, call, {"batch": group})

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
                        flight.append(submit(group))
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
    """The results of the ``count`` ``tasks`` in order. On a threads ``engine``, its first
    task ever here and the rest on its threads. On another ``engine`` when it is running
    and ready (a cluster's in batches: :func:`batch_size`).
    Otherwise, with ``probe``, the first PROBES in this process (``local``), timed, then
    ``start(seconds per task)`` decides whether a pool pays off (and starts it, or keeps the
    one still starting: None, the rest here too), and until its workers are ready the tasks
    go on here, so that nothing waits for their start-up; without ``probe``, ``start(None)``
    and every task on its workers. They run ``function(*task)``; this process helps them
    (see :func:`ordered`)."""
    index = 0
    if engine is not None and engine.kind == "threads":
        # An engine's first task in this thread: it makes what OpenFHE makes lazily, once
        # per process (encodings' tables, the kernel's constants, the zero a ciphertext is
        # read into), before two threads could race to make them.
        first = 0
        for task in itertools.islice(tasks, 0 if engine.submitted else 1):
            yield local(task)
            first = 1
        yield from ordered(engine, function, tasks, what, first, None, 1)
        return
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
