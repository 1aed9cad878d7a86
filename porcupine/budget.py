"""How long work may go on: a deadline and a cancellation flag, checked between steps.

Z3 catches SIGINT itself and answers "unknown", so Ctrl-C cannot reach the search as a
``KeyboardInterrupt``. The command line therefore installs a handler that calls
:meth:`Budget.cancel`, which sets the flag and interrupts the solver; the search and the
passes see :attr:`Budget.over` and stop with what they have.

Work that does not look at the budget (a proof, a step of pure Python) is stopped by force
a grace period later (:mod:`porcupine.cli.guard`), and what it held is gone. So a budget also
carries a :class:`Keeper`: the cheapest verified kernel of the command's spec found so far,
which synthesis hands over as it finds kernels and the command line reports however the work
ended.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import z3

from quill.ir import Program
from quill.spec import Spec

if TYPE_CHECKING:
    from porcupine.layouts.packing import Packing

STOP_AT_ENV = "PORCUPINE_STOP_AT"
"""For tests of what a stop keeps: ``interrupt@PLACE`` (or ``timeout@PLACE``) makes the first
:meth:`Budget.check` at ``PLACE`` act as a Ctrl-C (a real SIGINT to this thread, through the
command's handlers) or as the deadline passing there; ``interrupt@PLACE:N``, the Nth.
``hang@PLACE`` is a Ctrl-C caught in work that never looks at the budget (a long proof): the
signal, then a minute's sleep, which the command line stops by force. The places are the
passes' checks: ``fewer_products``, ``rotation_forms``, ``slot_packing``, ``verify``
(before a pass's proof), the search's ``encode`` (building a query), and ``tile``
(``--for``: before the tile's kernel, porcupine.app_plan)."""

HANG_S = 60.0
"""How long ``hang@PLACE`` (:data:`STOP_AT_ENV`) sleeps, unless stopped by force first."""

_reached: collections.Counter[str] = collections.Counter()  # checks per place (STOP_AT_ENV)

Rank = Callable[[Program, int], tuple[int, ...] | None]
"""How kernels over ``n`` slots compare (lower is cheaper); ``None``: the kernel cannot run
(no parameter set holds it), so it is never kept."""


@dataclass(frozen=True, kw_only=True)
class Kept:
    """A verified kernel kept by a :class:`Keeper`: of the watched spec itself, or, with a
    ``packing``, of the spec over that client packing's ciphertexts."""

    program: Program
    source: str
    packing: Packing | None = None


class Keeper:
    """The cheapest verified kernel of one spec found so far, kept where a forced stop cannot
    lose it. The command line names the spec and how kernels rank (:meth:`watch`); synthesis
    offers every verified kernel it holds (:meth:`offer`), including those of the spec under
    a client packing once the pipeline has named it (:meth:`packed`). Kernels of any other
    spec (a step, a smaller instance) are ignored. Without :meth:`watch`, nothing is kept.
    A kernel without a rank (too noisy for every parameter set) is kept apart, the first one
    only: a correct kernel to show when there is no other."""

    def __init__(self) -> None:
        self._spec: Spec | None = None
        self._rank: Rank | None = None
        self._packings: dict[int, tuple[Spec, Packing]] = {}  # by id of the packed spec
        self._best: tuple[tuple[int, ...], Kept] | None = None
        self._unranked: Kept | None = None

    def watch(self, spec: Spec, rank: Rank) -> None:
        """Keep the cheapest kernel of ``spec`` (this very object) by ``rank``."""
        self._spec, self._rank, self._best, self._unranked = spec, rank, None, None
        self._packings = {}

    def packed(self, spec: Spec, packing: Packing) -> None:
        """Kernels of ``packing.spec`` are kernels of ``spec`` under ``packing``: kept too,
        when ``spec`` is the one watched."""
        if spec is self._spec:
            self._packings[id(packing.spec)] = (packing.spec, packing)  # the spec held: ids stay

    def offer(self, spec: Spec, program: Program, source: str) -> None:
        """``program``, a kernel verified equal to ``spec``, found as ``source`` says
        (``"initial"``, ``"direct"``, ``"synthesized"``, ...): kept if it is of the watched
        spec (or of a packing of it) and cheaper than the kernel kept."""
        if self._rank is None:
            return
        if spec is self._spec:
            kept = Kept(program=program, source=source)
        elif (named := self._packings.get(id(spec))) is not None and named[0] is spec:
            kept = Kept(program=program, source=source, packing=named[1])
        else:
            return
        rank = self._rank(program, spec.n)
        if rank is None:
            if self._unranked is None:
                self._unranked = kept
        elif self._best is None or rank < self._best[0]:
            self._best = (rank, kept)  # one assignment: a stop cannot tear it

    @property
    def best(self) -> Kept | None:
        """The cheapest kernel kept, if any."""
        return None if self._best is None else self._best[1]

    @property
    def unranked(self) -> Kept | None:
        """The first kernel offered that had no rank, if any."""
        return self._unranked


class OutOfBudget(Exception):
    """Raised by long pure-Python work (building a solver query) when the budget is over,
    so that it stops as promptly as the solver does."""


@dataclass
class Budget:
    """A deadline (``None``: none) on the monotonic clock, and a cancellation flag."""

    deadline: float | None = None
    _cancelled: threading.Event = field(default_factory=threading.Event)
    _running: set[z3.Context] = field(default_factory=set)  # solvers cancel() interrupts
    keeper: Keeper = field(default_factory=Keeper)  # shared by every budget cut from this
    _out_of_time: threading.Event = field(default_factory=threading.Event)  # STOP_AT_ENV

    @classmethod
    def seconds(cls, timeout: float | None) -> Budget:
        """A budget of ``timeout`` seconds from now (``None``: unbounded)."""
        return cls(None if timeout is None else time.monotonic() + timeout)

    def within(self, seconds: float) -> Budget:
        """A budget ending ``seconds`` from now or with this one, whichever is first, and
        cancelled with it."""
        end = time.monotonic() + seconds
        deadline = end if self.deadline is None else min(end, self.deadline)
        return Budget(deadline, self._cancelled, self._running, self.keeper, self._out_of_time)

    def share(self, fraction: float) -> Budget:
        """A budget for ``fraction`` of the time left (this one when it has no deadline)."""
        left = self.remaining_ms()
        return self if left is None else self.within(left / 1000 * fraction)

    @contextlib.contextmanager
    def watching(self, ctx: z3.Context) -> Iterator[None]:
        """While the body solves in ``ctx``: interrupt it at the deadline (from a timer, not
        a solver timeout: Z3 picks its strategy by the timeout value, so a shrinking one
        would change which kernel a search finds) or when the budget is cancelled."""
        remaining = self.remaining_ms()
        timer = None
        if remaining is not None:
            timer = threading.Timer(max(1, remaining) / 1000, ctx.interrupt)
            timer.start()
        self._running.add(ctx)
        try:
            if self.cancelled:
                ctx.interrupt()
            yield
        finally:
            self._running.discard(ctx)
            if timer is not None:
                timer.cancel()

    def remaining_ms(self) -> int | None:
        """Milliseconds left (at least 0), or ``None`` without a deadline."""
        if self.deadline is None:
            return None
        return max(0, int((self.deadline - time.monotonic()) * 1000))

    @property
    def expired(self) -> bool:
        if self._out_of_time.is_set():
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def over(self) -> bool:
        """Out of time or cancelled: stop and keep what has been found."""
        return self.cancelled or self.expired

    def check(self, place: str = "") -> None:
        """Raise :class:`OutOfBudget` if the budget is over. ``place`` names the check for
        tests (:data:`STOP_AT_ENV`)."""
        if place:
            self._test_stop(place)
        if self.over:
            raise OutOfBudget

    def keep(self, spec: Spec, program: Program, source: str) -> None:
        """Offer a verified kernel of ``spec`` to the :class:`Keeper`."""
        self.keeper.offer(spec, program, source)

    def _test_stop(self, place: str) -> None:
        """Stop here if :data:`STOP_AT_ENV` says so (tests only)."""
        wanted = os.environ.get(STOP_AT_ENV)
        if not wanted:
            return
        how, _, where = wanted.partition("@")
        where, _, nth = where.partition(":")
        if where != place:
            return
        _reached[place] += 1
        if _reached[place] != int(nth or 1):
            return
        if how in ("interrupt", "hang"):
            signal.raise_signal(signal.SIGINT)  # in this thread: its handler runs next
            if how == "hang":
                time.sleep(HANG_S)
        elif how == "timeout":
            self._out_of_time.set()

    def cancel(self) -> None:
        """Stop the work: set the flag and interrupt any solver running now."""
        self._cancelled.set()
        for ctx in list(self._running):
            ctx.interrupt()
        z3.main_ctx().interrupt()

    def stop_reason(self) -> str | None:
        """``"interrupted"``, ``"timeout"`` or ``None``."""
        if self.cancelled:
            return "interrupted"
        return "timeout" if self.expired else None
