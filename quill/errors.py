"""User-facing errors. Each carries what is wrong, where, and how to fix it; the CLI prints
``str(error)`` and exits with status 2, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A 1-based line and column in a source file, with the text to show a caret under."""

    file: str
    line: int
    column: int
    source_line: str = ""
    width: int = 1


class QuillError(Exception):
    """Base of every error a user can cause with bad input."""

    kind = "error"

    def __init__(self, message: str, location: Location | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def __str__(self) -> str:
        where = (
            f"{self.location.file}:{self.location.line}:{self.location.column}: "
            if (self.location)
            else ""
        )
        text = f"{where}{self.kind}: {self.message}"
        if self.location and self.location.source_line:
            loc = self.location
            caret = " " * (loc.column - 1) + "^" * max(1, loc.width)
            text += f"\n    {loc.source_line}\n    {caret}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class QuillSyntaxError(QuillError):
    kind = "syntax error"


class QuillSemanticError(QuillError):
    kind = "error"


def locate(file: str, text: str, line: int, column: int, width: int = 1) -> Location:
    """A :class:`Location` in ``text`` (1-based line and column), carrying its source line."""
    # Split on "\n" only, as parsers count lines; splitlines() also breaks at \f, \u2028 etc.
    lines = text.split("\n")
    src = lines[line - 1].removesuffix("\r") if 0 < line <= len(lines) else ""
    return Location(file, line, column, src.expandtabs(1), width)
