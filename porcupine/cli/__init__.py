"""``porcupine``: the command line.

Every command keeps one exit-status contract (:data:`~porcupine.cli.errors.EPILOG`): 0
success, 1 the kernel is wrong or nothing was found, 2 bad input or usage, 130 interrupted.
Options and files are checked before any work starts; each problem is one message on
stderr, never a traceback. Outputs are written atomically (:mod:`porcupine.files`). The
modules: :mod:`~porcupine.cli.parser` (options), :mod:`~porcupine.cli.values` (their
values), :mod:`~porcupine.cli.inputs` and :mod:`~porcupine.cli.kernel_file` (input files),
:mod:`~porcupine.cli.guard` (deadline, Ctrl-C, memory), :mod:`~porcupine.cli.synth` and
:mod:`~porcupine.cli.commands` (the commands), :mod:`~porcupine.cli.report` (what they say).
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import time
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from porcupine.cli.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Failure,
    UsageError,
    say,
)
from porcupine.cli.parser import build_parser

if TYPE_CHECKING:
    from porcupine.cli.guard import Guard

# The arguments are parsed before the synthesizer, Z3 or OpenFHE is imported (see
# porcupine.cli.parser): what a command needs is imported when it runs.

__all__ = ["build_parser", "main", "summary"]


def __getattr__(name: str) -> Any:
    """``summary`` (:func:`porcupine.cli.report.summary`), imported on first use."""
    if name == "summary":
        from porcupine.cli.report import summary

        return summary
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DEBUG_ENV = "PORCUPINE_DEBUG"
"""Set to 1 to see the traceback of an internal error (for developers)."""


def _quiet_forced_stops(unraisable: sys.UnraisableHookArgs) -> None:
    """Drop the errors of Z3 objects freed after their context was torn down, and forced
    stops that landed where Python swallows exceptions.

    When the deadline or Ctrl-C stops a search inside Z3, the solver's terms are freed
    afterwards, and each ``__del__`` then fails against the dead context. A stop raised
    inside a finalizer or a garbage-collector callback is swallowed (the guard raises it
    again, where it reaches the command). Python prints both as tracebacks on stderr; they
    say nothing the user needs (the command says why it stopped). Anything else goes to
    the default hook."""
    where = getattr(unraisable.object, "__module__", "") or ""
    guard = sys.modules.get("porcupine.cli.guard")  # not imported: nothing was stopped
    stopped = None if guard is None else guard.Stopped
    stop = (
        stopped is not None
        and unraisable.exc_type is not None
        and issubclass(unraisable.exc_type, stopped)
    )
    if (where.startswith("z3") or stop) and os.environ.get(DEBUG_ENV) != "1":
        return
    sys.__unraisablehook__(unraisable)


def entry() -> NoReturn:
    """The ``porcupine`` console script (and ``python -m porcupine.cli``): :func:`main`, then
    a quick exit. Tearing the interpreter down (Z3's objects freed one by one) took 0.15 to
    0.5 s after the work was done, time a user counts in ``--timeout``; the exit handlers
    (process pools, temporary files, logging) still run."""
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: nothing more can be said
        pass
    atexit._run_exitfuncs()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``porcupine`` console script; returns the exit status. On the
    command line (``argv`` not given), ``--timeout`` counts from the process's start, as a
    user times the command; called with ``argv``, from this call."""
    called = None if argv is None else time.monotonic()
    sys.unraisablehook = _quiet_forced_stops
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse has printed usage or help
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        return _say("interrupted", EXIT_INTERRUPTED)
    from porcupine.cli.guard import Stopped  # parsed: the work begins

    try:
        return _run(args, called)
    except (Stopped, KeyboardInterrupt):  # a Ctrl-C while the last one is reported
        return _say("interrupted", EXIT_INTERRUPTED)
    except BaseException as e:  # the last line of defence: still one line, no traceback
        return _say(f"internal error: {type(e).__name__}: {e}", EXIT_FAILED, e)


def _run(args: argparse.Namespace, called: float | None) -> int:
    """Run the command under its guard; ``called``: when :func:`main` was called with its
    arguments (``None``: on the command line, where the process's start counts)."""
    from porcupine.cli.guard import Guard, default_memory, process_started

    started = process_started() if called is None else called
    guard = Guard(args.timeout, args.max_memory or default_memory(), started=started)
    with guard:
        try:
            code: int = args.func(args, guard)
            return code
        except BaseException as e:
            return _failed(e, guard)


def _failed(e: BaseException, guard: Guard) -> int:
    """The message and exit status for what ended a command early."""
    if guard.forced is not None:  # whatever the Stopped was turned into on its way here
        return _stopped(guard.forced, guard, e)
    from quill.errors import QuillError

    if isinstance(e, (QuillError, UsageError)):
        return _say(str(e), EXIT_USAGE)
    if isinstance(e, Failure):
        if e.program is not None:
            from quill.printer import format_program

            print(format_program(e.program), end="")
        return _say(str(e), EXIT_FAILED)
    if isinstance(e, KeyboardInterrupt):
        return _say("interrupted", EXIT_INTERRUPTED)
    # Z3 says it ran out of memory only in its exception's text (no type or code of its own):
    # the one decision on a message in the command line, on a library's message, not ours.
    z3 = sys.modules.get("z3")  # not loaded: the error is not Z3's
    z3_error = z3 is not None and isinstance(e, z3.Z3Exception)
    if isinstance(e, MemoryError) or (z3_error and "memory" in str(e).lower()):
        limit = guard.max_memory or 0
        return _say(
            f"out of memory while {guard.phase}: the limit is --max-memory {limit >> 20}M; "
            "allow more, or try a smaller size (--param)",
            EXIT_FAILED,
        )
    if isinstance(e, RecursionError):
        return _say(f"the input is nested too deeply to handle ({guard.phase})", EXIT_USAGE)
    if isinstance(e, BrokenPipeError):
        # stdout was closed (e.g. `| head`): nothing more can be said there
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _say("output closed before it was all written", EXIT_USAGE)
    raise e


def _stopped(reason: str, guard: Guard, error: BaseException | None = None) -> int:
    # A search stopped by force reports the kernel its budget kept (porcupine.cli.kept):
    # here, none had been found.
    none = "; no verified kernel had been found to report" if guard.forced_search else ""
    if reason == "interrupted":
        return _say(f"interrupted while {guard.phase}{none}", EXIT_INTERRUPTED, error)
    return _say(
        f"--timeout {guard.timeout:g} s reached while {guard.phase} (stopped after "
        f"{guard.elapsed:.1f} s){none or '; no result to report'}",
        EXIT_FAILED,
        error,
    )


def _say(message: str, code: int, error: BaseException | None = None) -> int:
    """Print ``porcupine: message`` on stderr and return ``code``."""
    if error is not None and os.environ.get(DEBUG_ENV) == "1":
        traceback.print_exception(type(error), error, error.__traceback__)
    say(message)
    return code
