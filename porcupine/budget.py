"""How long work may go on: a deadline and a cancellation flag, checked between steps.

Z3 catches SIGINT itself and answers "unknown", so Ctrl-C cannot reach the search as a
``KeyboardInterrupt``. The command line therefore installs a handler that calls
:meth:`Budget.cancel`, which sets the flag and interrupts the solver; the search sees
:attr:`Budget.cancelled` and stops with what it has.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import z3


class OutOfBudget(Exception):
    """Raised by long pure-Python work (building a solver query) when the budget is over,
    so that it stops as promptly as the solver does."""


@dataclass
class Budget:
    """A deadline (``None``: none) on the monotonic clock, and a cancellation flag."""

    deadline: float | None = None
    _cancelled: threading.Event = field(default_factory=threading.Event)
    _running: set[z3.Context] = field(default_factory=set)  # solvers cancel() interrupts

    @classmethod
    def seconds(cls, timeout: float | None) -> Budget:
        """A budget of ``timeout`` seconds from now (``None``: unbounded)."""
        return cls(None if timeout is None else time.monotonic() + timeout)

    def within(self, seconds: float) -> Budget:
        """A budget ending ``seconds`` from now or with this one, whichever is first, and
        cancelled with it."""
        end = time.monotonic() + seconds
        deadline = end if self.deadline is None else min(end, self.deadline)
        return Budget(deadline, self._cancelled, self._running)

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
        return self.deadline is not None and time.monotonic() >= self.deadline

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def over(self) -> bool:
        """Out of time or cancelled: stop and keep what has been found."""
        return self.cancelled or self.expired

    def check(self) -> None:
        """Raise :class:`OutOfBudget` if the budget is over."""
        if self.over:
            raise OutOfBudget

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
