"""Python source text in ``ruff format`` style, for the emitter.

Emitted modules must pass ``ruff format --check`` (line length 100), but ruff is a
development tool, not a dependency of the compiler, so the few constructs the emitter
writes are laid out here the way ruff lays them out: a bracketed list on one line when it
fits, else one item per line with a magic trailing comma.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

LINE = 100
"""The project's ruff line length; emitted lines never exceed it."""

INDENT = "    "


def fits(line: str) -> bool:
    """Whether ``line`` is within the line length."""
    return len(line) <= LINE


def bracketed(
    head: str, items: Sequence[str], close: str, *, explode: bool = False, indent: str = ""
) -> list[str]:
    """``head item, item close`` on one line if it fits (at ``indent``, and not
    ``explode``), else one item per line with a magic trailing comma (the form ``ruff
    format`` keeps)."""
    one = f"{head}{', '.join(items)}{close}"
    if (fits(indent + one) and not explode) or not items:
        return [one]
    return [head, *(f"{INDENT}{it}," for it in items), close]


def call(head: str, args: Sequence[str]) -> list[str]:
    """A call statement one indent deep (in a function body), split if it is too long."""
    return bracketed(head, args, ")", indent=INDENT)


def int_tuple(values: Sequence[int]) -> str:
    """A tuple literal of ints (``(3,)`` for one)."""
    inner = ", ".join(str(v) for v in values)
    return f"({inner},)" if len(values) == 1 else f"({inner})"


def int_literal(target: str, values: Sequence[int], comment: str = "") -> list[str]:
    """``target = (v, ...)``; packed several per line under ``# fmt: off`` when long, since
    ``ruff format`` would put each of thousands of values on its own line."""
    prefix = [f"# {comment}"] if comment else []
    one = f"{target} = {int_tuple(values)}"
    if fits(one):
        return [*prefix, one]
    body = textwrap.wrap(
        ", ".join(str(v) for v in values) + ",",
        width=LINE - len(INDENT),
        break_on_hyphens=False,
    )
    return [*prefix, "# fmt: off", f"{target} = (", *(INDENT + b for b in body), ")", "# fmt: on"]


def wrap_prose(text: str, indent: str = INDENT) -> list[str]:
    """``text`` wrapped to the line length, continuation lines indented by ``indent``."""
    return textwrap.wrap(text, LINE, subsequent_indent=indent, break_on_hyphens=False)


def wrap_comment(text: str) -> list[str]:
    """``text`` as ``#`` comment lines within the line length."""
    return ["# " + line for line in textwrap.wrap(text, LINE - 2, break_on_hyphens=False)]


def literal_block(text: str) -> list[str]:
    """``text`` indented as a docstring literal block; overlong lines wrapped."""
    out: list[str] = []
    for line in text.splitlines():
        indent = INDENT + " " * (len(line) - len(line.lstrip()))
        out += textwrap.wrap(
            line.strip(),
            LINE,
            initial_indent=indent,
            subsequent_indent=indent + 2 * INDENT,
            break_on_hyphens=False,
        ) or [""]
    return out
