"""How a command is bounded: its deadline, Ctrl-C and its memory.

* ``--timeout`` bounds the whole command, as a user times it: from the process's start
  (interpreter and imports included) to its exit. The last :data:`REPORT_S` of it are kept
  for reporting; work still running then is stopped by raising :class:`Stopped` in the
  main thread (``SIGALRM``). The search and the passes stop themselves
  :data:`DEADLINE_GRACE_S` earlier, at the budget's deadline
  (:class:`~porcupine.budget.Budget`), and keep their best kernel; a search busy in code
  that does not look at the budget (a proof, a step of pure Python) is the one stopped by
  force, and ``synth`` then reports the verified kernel the budget kept
  (:mod:`porcupine.cli.kept`), so a kernel found is never lost.
* Ctrl-C: Z3 would catch SIGINT itself and answer "unknown", so its handler is switched
  off (``ctrl_c``) and a thread woken by the signal (``signal.set_wakeup_fd``) cancels the
  budget and interrupts Z3 until the work ends; the Python handler then lets the search
  return its best kernel, raising :class:`Stopped` if it has not within
  :data:`INTERRUPT_GRACE_S`.
  A second Ctrl-C, or one outside the search, stops at once.
* ``--max-memory`` is the address-space limit (``RLIMIT_AS``): past it allocations fail
  and the command ends with :class:`MemoryError`, which the CLI reports.

Everything is restored on exit, so :func:`porcupine.cli.main` can run many times in one
process.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

import z3

from porcupine.budget import Budget

REPORT_S = 0.3
"""The end of a bounded command kept for reporting what it found: pricing the kept kernel,
checking its ranges, printing it, writing ``-o`` and exiting (about 0.1 s measured)."""

DEADLINE_GRACE_S = 0.5
"""How long a search may go on past its budget's deadline to return its best kernel before
it is stopped by force. Short: a forced stop loses nothing verified (the budget keeps it)."""

INTERRUPT_GRACE_S = 0.5
"""The same after a Ctrl-C: the command still ends within a second."""

REINTERRUPT_S = 0.1
"""After a Ctrl-C, running solvers are interrupted again this often: one that starts just
as the first interrupt is sent would otherwise run on."""
REPEAT_S = 0.5
"""After a forced stop, how often it is raised again until the command has stopped."""


class Stopped(BaseException):
    """The command must end now: ``reason`` is ``"interrupted"`` or ``"timeout"``. A
    ``BaseException``, so that library code catching ``Exception`` cannot swallow it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def process_started() -> float:
    """When this process started, on the :func:`time.monotonic` clock: Linux tells in
    ``/proc/self/stat`` (to a clock tick); elsewhere, now."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = (
                f.read().rpartition(")")[2].split()
            )  # the name, in parentheses, may hold spaces
        ticks = int(fields[19])  # field 22 of proc(5): start time in ticks since boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.monotonic()
    return time.monotonic() - min(max(age, 0.0), 60.0)  # sane even if the clocks disagree


def _proc_bytes(path: str, field: str) -> int | None:
    """A ``Field: N kB`` line of a Linux ``/proc`` file, in bytes; ``None`` elsewhere."""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_memory() -> int:
    """Bytes of memory this machine has (RAM and swap)."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(ram + (_proc_bytes("/proc/meminfo", "SwapTotal") or 0))


def peak_memory() -> int | None:
    """The most address space this process has used, in bytes (what ``RLIMIT_AS`` bounds),
    where the system tells (Linux)."""
    return _proc_bytes("/proc/self/status", "VmPeak")


def default_memory() -> int:
    """The default ``--max-memory``: half the machine's RAM, at least 1 GiB, and no more
    than the limit already in force (``ulimit -v``)."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    half = int(max(ram // 2, 1 << 30))
    return half if soft == resource.RLIM_INFINITY else min(half, soft)


def hard_memory_limit() -> int | None:
    """The address-space limit no process here may raise (``ulimit -Hv``), if any."""
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    return None if hard == resource.RLIM_INFINITY else hard


class Guard:
    """The deadline, Ctrl-C handling and memory limit of one command (a context manager)."""

    def __init__(
        self, timeout: float | None, max_memory: int | None, *, started: float | None = None
    ) -> None:
        """``started``: when the command started on the monotonic clock (default: now);
        ``timeout`` counts from then."""
        self.start = time.monotonic() if started is None else started
        self.timeout = timeout
        self.end = None if timeout is None else self.start + timeout - REPORT_S
        """When work still running is stopped by force (``None``: never)."""
        self.budget = Budget(None if self.end is None else self.end - DEADLINE_GRACE_S)
        self.max_memory = max_memory
        self.phase = "starting"
        self._graceful = False
        self._presses = 0
        self.forced: str | None = None  # why a Stopped was raised, if one was
        self.forced_search = False  # ... and whether it stopped a search by force
        self._done = threading.Event()
        self._saved: dict[str, Any] = {}
        self._held: list[BaseException] = []

    # -- the work --------------------------------------------------------------------------

    @contextmanager
    def work(self, phase: str, *, graceful: bool = False) -> Iterator[None]:
        """Run the block as ``phase``, stopped by force at the command's end. ``graceful``:
        the block is a search that stops itself when the budget is over, :data:`DEADLINE_GRACE_S`
        earlier (a Ctrl-C in it is given :data:`INTERRUPT_GRACE_S`)."""
        self.phase = phase
        if self.budget.cancelled:
            self._stop("interrupted")
        self._graceful = graceful
        try:
            self._arm(self._until_deadline())
            yield
        finally:
            self._graceful = False
            self._arm(None)

    def hold(self, stopped: BaseException) -> None:
        """Keep the frames of the work ``stopped`` ended (its solvers' Z3 objects) alive for
        as long as the guard: freeing 166,000 of them one by one took 1.4 s of a stopped
        search's time under load, past its deadline; the quick exit
        (:func:`porcupine.cli.entry`) never frees them."""
        self._held.append(stopped)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def _until_deadline(self) -> float | None:
        """Seconds until the block must be stopped by force (``None``: never)."""
        if self.end is None:
            return None
        left = self.end - time.monotonic()
        if left <= 0:
            self._stop("timeout")
        return left

    def _arm(self, seconds: float | None) -> None:
        if "sigalrm" in self._saved:  # only where the handler is ours: SIGALRM kills otherwise
            # Repeating: a Stopped raised inside a Z3 finalizer is swallowed by Python, and
            # the next alarm raises it again where it can reach the command.
            again = 0.0 if seconds is None else REPEAT_S
            signal.setitimer(signal.ITIMER_REAL, 0.0 if seconds is None else seconds, again)

    # -- signal handlers (main thread) ------------------------------------------------------

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self._presses += 1
        self.budget.cancel()
        if self._graceful and self._presses == 1:
            left = signal.getitimer(signal.ITIMER_REAL)[0]
            self._arm(INTERRUPT_GRACE_S if left == 0.0 else min(left, INTERRUPT_GRACE_S))
            return
        self._stop("interrupted")

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        self._stop("interrupted" if self.budget.cancelled else "timeout")

    def _on_unraisable(self, unraisable: Any) -> None:
        """A :class:`Stopped` raised inside a finalizer (Z3's ``AstRef.__del__``) is lost by
        design (the repeating alarm raises it again where it reaches the command): not a
        traceback on the user's terminal. Anything else goes to the hook as before."""
        if isinstance(unraisable.exc_value, Stopped):
            return
        self._saved["unraisable"](unraisable)

    def _stop(self, reason: str) -> None:
        # Remembered: code between here and the CLI may turn the exception into another
        # (ctypes does, when it lands while Z3's arguments are converted).
        self.forced = reason
        self.forced_search = self._graceful
        raise Stopped(reason)

    # -- the thread that reaches Z3 while the main thread is inside it ---------------------

    def _watch(self, wake: socket.socket) -> None:
        while True:
            try:
                data = wake.recv(64)
            except OSError:
                return
            if not data:
                return
            if signal.SIGINT in data:
                self.budget.cancel()
                while not self._done.wait(REINTERRUPT_S):
                    self.budget.cancel()  # interrupts the solvers running now
                return

    # -- install and restore ----------------------------------------------------------------

    def __enter__(self) -> Guard:
        if self.max_memory is not None:
            self._saved["rlimit"] = resource.getrlimit(resource.RLIMIT_AS)
            resource.setrlimit(resource.RLIMIT_AS, (self.max_memory, self._saved["rlimit"][1]))
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach only the main thread; nothing to install
        z3.set_param("ctrl_c", False)
        wake, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self._saved["wakeup"] = signal.set_wakeup_fd(
            self._wake_w.fileno(), warn_on_full_buffer=False
        )
        self._saved["sigint"] = signal.signal(signal.SIGINT, self._on_sigint)
        self._saved["sigalrm"] = signal.signal(signal.SIGALRM, self._on_alarm)
        self._saved["unraisable"] = sys.unraisablehook
        sys.unraisablehook = self._on_unraisable
        self._watcher = threading.Thread(target=self._watch, args=(wake,), daemon=True)
        self._watcher.start()
        self._wake_r = wake
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        if "sigint" in self._saved:
            signal.setitimer(signal.ITIMER_REAL, 0.0)
            signal.signal(signal.SIGALRM, self._saved["sigalrm"])
            signal.signal(signal.SIGINT, self._saved["sigint"])
            sys.unraisablehook = self._saved["unraisable"]
            signal.set_wakeup_fd(self._saved["wakeup"])
            self._wake_w.close()
            self._watcher.join()
            self._wake_r.close()
        if "rlimit" in self._saved:
            resource.setrlimit(resource.RLIMIT_AS, self._saved["rlimit"])
        self._saved.clear()
