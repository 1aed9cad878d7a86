"""The exit-status contract of every ``porcupine`` command (:data:`EPILOG`, which ``--help``
prints and the README repeats), and the errors that map to it. No traceback reaches a user.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quill.ir import Program

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

EPILOG = """\
exit status:
  0    success
  1    the kernel is wrong or nothing was found (also a kernel over the noise budget,
       values that may wrap with --strict-ranges, out of time or memory with no kernel)
  2    bad input or usage (checked before any work; nothing is written)
  130  interrupted (Ctrl-C): the best verified kernel so far is printed, as interrupted
"""


class UsageError(Exception):
    """Bad input or usage: one message, exit status 2."""


class Failure(Exception):
    """The input was fine, but the kernel is wrong or unusable, or none was found: exit
    status 1. ``program``, if given, is printed with the message."""

    def __init__(self, message: str, program: Program | None = None) -> None:
        super().__init__(message)
        self.program = program


def shown(value: Any, width: int = 60) -> str:
    """``repr(value)``, shortened: a message quotes bad input, it does not reprint it."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def say(message: str) -> None:
    """Print ``porcupine: message`` on stderr. Characters a file name may hold but the
    stream cannot encode (lone surrogates from undecodable bytes) are escaped, not fatal."""
    text = f"porcupine: {message}".encode("utf-8", "backslashreplace").decode("utf-8")
    print(text, file=sys.stderr)
