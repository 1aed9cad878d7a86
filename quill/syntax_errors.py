"""Lark parse failures as located, worded syntax errors: one layer for both of Quill's
grammars (kernels, ``quill.lark``, and specs, ``spec.lark``).

The rules are the same whatever the grammar:

* The caret sits under the offending token, as wide as it, or under the one offending
  character.
* At the end of the file, and before a significant line break, the caret goes just past the
  last code character: trailing blanks and comments are skipped, since that is where the
  user stopped typing.
* "expected ..." lists what the parser would really accept next (asked of Lark's
  interactive parser; Lark's own ``expected`` set comes from merged LALR states and names
  tokens that would fail a step later), in a fixed order: phrases (a name, an expression,
  ...), keywords, punctuation, then line breaks and the end of the file. A :class:`Group` of
  terminals that together mean one thing reads as one phrase.
* Keywords are whole words: ``inp`` is a name, never the keyword ``in`` and a ``p``, even
  where no name may follow. A keyword where a name belongs is "a reserved word, not a name"
  (the lexer retypes every keyword it sees as a name into its keyword terminal, so the
  parser rejects it there); where a name would only start something larger (an
  expression), it is "unexpected keyword" with what was expected.

What is particular to a grammar is data: the words for its pattern terminals
(:class:`Noun`), its groups, its line-break terminal, and hints for known failures
(:class:`Hint`, matched on the token found and the terminals accepted, the way Lark's
``match_examples`` maps error states to messages, but stable under grammar edits).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.lexer import PatternRE, PatternStr, TerminalDef
from lark.visitors import Transformer, Transformer_NonRecursive

from quill.errors import QuillError, QuillSyntaxError, locate

END = "$END"
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*\Z")
_WHOLE_WORD = r"(?![A-Za-z0-9_])"
CACHE_ENV = "XDG_CACHE_HOME"


def _whole_word(t: TerminalDef) -> None:
    """Make a keyword terminal match whole words only: Lark's contextual lexer would
    otherwise take "in" out of "inp" where no name can follow. Where a name can, NAME
    matches the keyword and :meth:`Grammar._reserve` retypes it."""
    if isinstance(t.pattern, PatternStr) and _IDENTIFIER.match(t.pattern.value):
        t.pattern = PatternRE(re.escape(t.pattern.value) + _WHOLE_WORD)


def _cache_file(name: str, text: str) -> str | bool:
    """Where Lark caches the parser of grammar ``name`` (``$XDG_CACHE_HOME/porcupine``, by
    default ``~/.cache/porcupine``), one file per grammar text; ``False`` (no cache) when
    that directory cannot be made. Lark checks the file against the grammar, its options and
    its own version, and rebuilds on any mismatch or unreadable file."""
    base = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "porcupine"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return str(folder / f"{name}-{digest}.lark")


# Closing marks first: a missing ')' is the likeliest thing a user forgot.
_PUNCTUATION_ORDER = ")]},=:([{"


@dataclass(frozen=True)
class Noun:
    """How messages name a pattern terminal: ``expected`` in "expected a name", ``found``
    in "unexpected name 'x'" (``{}`` stands for the token's text)."""

    expected: str
    found: str


@dataclass(frozen=True)
class Group:
    """Terminals that together read as one phrase in "expected ...": all of them (or at
    least ``at_least``) accepted means ``phrase``. ``last``: listed after the punctuation."""

    terminals: frozenset[str]
    phrase: str
    at_least: int | None = None
    last: bool = False


@dataclass(frozen=True)
class Hint:
    """A hint for one known kind of failure: the unexpected token has type ``token`` (or the
    unexpected character is ``char``) where the parser accepts every terminal of
    ``accepts`` (``exactly``: and nothing else)."""

    text: str
    token: str | None = None
    char: str | None = None
    accepts: frozenset[str] = frozenset()
    exactly: bool = False

    def matches(self, token: str | None, char: str | None, accepted: frozenset[str]) -> bool:
        """Whether this hint applies to a failure at ``token`` or ``char``."""
        if self.token is not None and self.token != token:
            return False
        if self.char is not None and self.char != char:
            return False
        return accepted == self.accepts if self.exactly else self.accepts <= accepted


_GENERIC_NOUNS = {
    "NAME": Noun("a name", "name '{}'"),
    END: Noun("the end of the file", "end of file"),
}


class Grammar:
    """A Lark LALR grammar and the words its syntax errors use.

    The parser is built on first use. ``nouns`` name the grammar's pattern terminals (a
    name and the end of the file have defaults); ``newline`` is the terminal of a
    significant line break, if the grammar has one; ``comment`` starts a comment.
    """

    def __init__(
        self,
        path: Path,
        *,
        nouns: Mapping[str, Noun] | None = None,
        groups: Iterable[Group] = (),
        hints: Iterable[Hint] = (),
        newline: str | None = None,
        comment: str = "#",
    ) -> None:
        self.path = path
        self.nouns = {**_GENERIC_NOUNS, **(nouns or {})}
        self.groups = tuple(groups)
        self.hints = tuple(hints)
        self.newline, self.comment = newline, comment
        self._lark: Lark | None = None
        self._literals: dict[str, str] = {}
        self._keyword_types: dict[str, str] = {}

    @property
    def parser(self) -> Lark:
        """The Lark parser (built once, and its LALR tables cached on disk: building them
        takes a tenth of a second, a quarter of a command's start-up)."""
        if self._lark is None:
            text = self.path.read_text(encoding="utf-8")
            self._lark = Lark(
                text,
                parser="lalr",
                propagate_positions=True,
                lexer_callbacks={"NAME": self._reserve},
                edit_terminals=_whole_word,
                cache=_cache_file(self.path.stem, text),
            )
            self._record(self._lark.terminals)
        return self._lark

    def _record(self, terminals: Iterable[TerminalDef]) -> None:
        """Record the literal terminals and the keywords among them. From the terminals as
        built, not as :func:`_whole_word` edits them: a parser loaded from the cache was
        never edited in this process."""
        for t in terminals:
            if isinstance(t.pattern, PatternStr):
                self._literals[t.name] = t.pattern.value
            elif t.pattern.value.endswith(_WHOLE_WORD) and _IDENTIFIER.match(
                word := t.pattern.value.removesuffix(_WHOLE_WORD)
            ):
                self._literals[t.name] = word  # re.escape leaves an identifier as it is
                self._keyword_types[word] = t.name

    @property
    def keywords(self) -> frozenset[str]:
        """The grammar's reserved words: its literal terminals spelled like names."""
        _ = self.parser
        return frozenset(self._keyword_types)

    def _reserve(self, token: Token) -> Token:
        # Lark's contextual lexer lexes a keyword as NAME where only a name fits; retyped,
        # the parser rejects it there and the message can say the word is reserved.
        keyword = self._keyword_types.get(token.value)
        return token.update(type=keyword) if keyword else token

    def parse(self, text: str, file: str) -> Tree[Token]:
        """Parse ``text`` (the contents of ``file``); every failure is a
        :class:`~quill.errors.QuillSyntaxError`."""
        try:
            return self.parser.parse(text)
        except UnexpectedInput as e:
            raise self.syntax_error(e, text, file) from None
        except LarkError as e:  # anything else Lark may raise is still the input's fault
            raise QuillSyntaxError(
                f"cannot parse this text: {e}", locate(file, text, 1, 1)
            ) from None

    # -- describing tokens ---------------------------------------------------------------

    def describe_expected(self, terminals: Iterable[str]) -> str:
        """What the parser would accept, in words (``""`` if nothing can be said)."""
        _ = self.parser
        left = set(terminals)
        first: list[str] = []
        last: list[str] = []
        for g in self._groups_in(left):
            (last if g.last else first).append(g.phrase)
            left -= g.terminals
        first += [n.expected for t, n in self.nouns.items() if t in left and t not in self._ends]
        literals = sorted(self._literals[t] for t in left if t in self._literals)
        words = [w for w in literals if _IDENTIFIER.match(w)]
        marks = sorted((m for m in literals if not _IDENTIFIER.match(m)), key=_mark_order)
        last += [self.nouns[t].expected for t in self._ends if t in left]
        phrases = first + [f"'{w}'" for w in words + marks] + last
        if len(phrases) <= 1:
            return "".join(phrases)
        return ", ".join(phrases[:-1]) + " or " + phrases[-1]

    def _groups_in(self, terminals: Iterable[str]) -> list[Group]:
        """The groups ``terminals`` read as, in order; a terminal counts for one group only."""
        left = set(terminals)
        found = []
        for g in self.groups:
            present = left & g.terminals
            if len(present) >= (len(g.terminals) if g.at_least is None else g.at_least):
                found.append(g)
                left -= present
        return found

    def _grouped(self, terminals: Iterable[str]) -> set[str]:
        """The terminals of ``terminals`` that a group's phrase stands for."""
        left = set(terminals)
        return {t for g in self._groups_in(left) for t in g.terminals} & left

    @property
    def _ends(self) -> tuple[str, ...]:
        """Terminals listed last: a line break, then the end of the file."""
        return (*([self.newline] if self.newline else []), END)

    def describe_token(self, token: Token) -> str:
        """``token`` as found: "name 'x'", "keyword 'image'", "'('", "end of file"."""
        noun = self.nouns.get(token.type)
        if noun is not None:
            return noun.found.format(shorten(str(token.value)))
        if token.value in self.keywords:
            return f"keyword '{token.value}'"
        return f"'{shorten(str(token.value))}'"

    # -- the error -----------------------------------------------------------------------

    def syntax_error(self, e: UnexpectedInput, text: str, file: str) -> QuillSyntaxError:
        """Lark's parse failure ``e`` on ``text`` as a located, worded syntax error."""
        accepted = frozenset(_accepted(e))
        expected = self.describe_expected(accepted)
        tail = f"; expected {expected}" if expected else ""
        if isinstance(e, UnexpectedCharacters):
            pos = e.pos_in_stream
            char = text[pos] if pos is not None and 0 <= pos < len(text) else ""
            message = f"unexpected character {char!r}{tail}"
            where = locate(file, text, max(e.line, 1), max(e.column, 1))
            return QuillSyntaxError(message, where, self._hint(None, char, accepted))
        # LALR reports the end of the input as a $END token; Lark's other parsers raise
        # UnexpectedEOF. Either way it is the end of the file.
        token = e.token if isinstance(e, UnexpectedToken) else Token(END, "")
        if token.type == END:
            line, column = _end_of_code(text, self.comment)
            width = 1
        else:
            line, column = token.line or 1, token.column or 1
            width = max(1, len(token.value))
        if token.type == self.newline:
            # The line break may start after blanks or a comment: point where the code stops.
            source = text.split("\n")[line - 1]
            column, width = len(_code(source[: column - 1], self.comment)) + 1, 1
        message = f"unexpected {self.describe_token(token)}{tail}"
        hint = self._hint(token.type, None, accepted)
        # Where a name would only start something larger (an expression), a keyword more
        # likely means that something is missing: "unexpected keyword" says enough there.
        if token.value in self.keywords and "NAME" in accepted - self._grouped(accepted):
            message = f"'{token.value}' is a reserved word, not a name"
            hint = "rename it; the reserved words are " + ", ".join(sorted(self.keywords))
        return QuillSyntaxError(message, locate(file, text, line, column, width), hint)

    def _hint(self, token: str | None, char: str | None, accepted: frozenset[str]) -> str:
        return next((h.text for h in self.hints if h.matches(token, char, accepted)), "")


def transform(
    transformer: Transformer[Token, Any] | Transformer_NonRecursive[Token, Any], tree: Tree[Token]
) -> Any:
    """``transformer.transform(tree)``, re-raising the :class:`QuillError` a callback raised
    (Lark wraps it in a ``VisitError``)."""
    try:
        return transformer.transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, QuillError):
            raise e.orig_exc from None
        raise


def _accepted(e: UnexpectedInput) -> set[str]:
    """The terminals the parser would really take next (see the module docstring)."""
    parser = getattr(e, "interactive_parser", None)
    if parser is not None:
        try:
            accepted = set(parser.accepts())
        except Exception:  # a best-effort refinement: fall back to Lark's own set
            accepted = set()
        if accepted:
            return accepted
    if isinstance(e, UnexpectedCharacters):
        return set(e.allowed or ())
    return set(getattr(e, "expected", ()) or ())


def _mark_order(mark: str) -> tuple[int, str]:
    index = _PUNCTUATION_ORDER.find(mark) if len(mark) == 1 else -1
    return (index if index >= 0 else len(_PUNCTUATION_ORDER), mark)


def _code(line: str, comment: str) -> str:
    """``line`` without its comment and trailing blanks."""
    return line.split(comment, 1)[0].rstrip()


def _end_of_code(text: str, comment: str) -> tuple[int, int]:
    """Line and column just past the last code character (comments and blanks ignored)."""
    lines = text.split("\n")
    for index in range(len(lines) - 1, -1, -1):
        code = _code(lines[index], comment)
        if code:
            return index + 1, len(code) + 1
    return 1, 1


def shorten(text: str, limit: int = 24) -> str:
    """``text`` cut to ``limit`` characters, so a runaway token cannot flood a message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
