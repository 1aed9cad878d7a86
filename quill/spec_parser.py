"""Parse ``.spec`` text into a :class:`~quill.spec_ast.SpecFile` (grammar: ``spec.lark``).

Every failure becomes a :class:`~quill.errors.QuillSyntaxError` with ``file:line:col``, the
offending source line, a caret, and an "expected ..." message in words; no Lark exception
escapes, whatever the input.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, cast

from lark import Lark, Token, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.lexer import PatternStr
from lark.tree import Meta
from lark.visitors import Transformer_NonRecursive

from quill.errors import QuillError, QuillSyntaxError, locate
from quill.spec_ast import (
    BinOp,
    BinOpSymbol,
    CompareSymbol,
    Comparison,
    Decl,
    DefinitionAst,
    Expr,
    HintDecl,
    InputAst,
    LayoutAst,
    Name,
    Neg,
    Num,
    ParamDecl,
    Pow,
    Read,
    SlotsDecl,
    Span,
    SpecFile,
    SpecNameDecl,
    Sum,
)

GRAMMAR = Path(__file__).with_name("spec.lark")
MAX_DIGITS = 30  # longer literals are typos; also keeps int() away from huge strings

# Words for terminals in "expected ..." messages. Keywords and punctuation are quoted as
# written; these are the pattern terminals and groups that read better as a phrase.
_EXPRESSION_START = {"NAME", "INT", "LPAR", "MINUS", "SUM"}
_OPERATORS = {"PLUS", "MINUS", "STAR", "CIRCUMFLEX"}
_DECLARATION_START = {"SPEC", "PARAM", "SLOTS", "INPUT", "STAGE", "OUTPUT", "HINT"}
_PHRASES = {
    "NAME": "a name",
    "INT": "an integer",
    "CMP": "a comparison (<, <=, >, >=, ==, !=)",
    "$END": "the end of the file",
}


@functools.cache
def _parser() -> Lark:
    return Lark(GRAMMAR.read_text(), parser="lalr", propagate_positions=True)


@functools.cache
def keywords() -> frozenset[str]:
    """The reserved words of the spec language (they cannot name anything)."""
    name = re.compile(r"[A-Za-z_]\w*\Z")
    return frozenset(
        t.pattern.value
        for t in _parser().terminals
        if isinstance(t.pattern, PatternStr) and name.match(t.pattern.value)
    )


def _literal(terminal: str) -> str | None:
    for t in _parser().terminals:
        if t.name == terminal and isinstance(t.pattern, PatternStr):
            return t.pattern.value
    return None


def describe_expected(expected: Iterable[str]) -> str:
    """An English list of what the parser would have accepted."""
    left = set(expected)
    phrases: list[str] = []
    if left >= _EXPRESSION_START:
        phrases.append("an expression")
        left -= _EXPRESSION_START
    if len(left & _OPERATORS) >= 3:  # "+", "-" alone read better spelled out
        phrases.append("an operator")
        left -= _OPERATORS
    declaration = left >= _DECLARATION_START
    left -= _DECLARATION_START if declaration else set()
    end = "$END" in left
    left.discard("$END")
    words = [_PHRASES.get(t) or f"'{_literal(t) or t}'" for t in sorted(left)]
    phrases += sorted(words, key=lambda w: (not w[0].isalpha(), w))
    if declaration:
        phrases.append("a new declaration (spec, param, slots, input, stage, output, hint)")
    if end:
        phrases.append(_PHRASES["$END"])
    if not phrases:
        return "something else"
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " or " + phrases[-1]


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type == "NAME":
        return f"name '{token.value}'"
    if token.type == "INT":
        return f"integer {token.value}"
    if token.value in keywords():
        return f"keyword '{token.value}'"
    return f"'{token.value}'"


def _acceptable(e: UnexpectedInput, fallback: Iterable[str]) -> set[str]:
    """The terminals the parser would really take next. Lark's own ``expected`` set comes
    from merged LALR states and lists tokens that would fail a step later; asking the
    interactive parser gives the exact set."""
    parser = getattr(e, "interactive_parser", None)
    if parser is not None:
        try:
            accepted = set(parser.accepts())
        except Exception:  # a best-effort refinement: fall back to Lark's own set
            accepted = set()
        if accepted:
            return accepted
    return set(fallback)


def _syntax_error(e: UnexpectedInput, file: str, text: str) -> QuillSyntaxError:
    line, column = max(e.line, 1), max(e.column, 1)
    if isinstance(e, UnexpectedToken):
        token = e.token
        if token.type == "$END":
            # Point just past the last character, where the missing text would go.
            lines = text.splitlines() or [""]
            line, column = len(lines), len(lines[-1]) + 1
        expected = _acceptable(e, e.expected)
        message = f"unexpected {_describe_token(token)}; expected {describe_expected(expected)}"
        width = len(token.value) if token.type != "$END" else 1
        hint = ""
        if "NAME" in expected and token.value in keywords():
            hint = f"'{token.value}' is a keyword; pick another name"
        return QuillSyntaxError(message, locate(file, text, line, column, width), hint)
    if isinstance(e, UnexpectedCharacters):
        pos = e.pos_in_stream if e.pos_in_stream is not None else -1
        char = text[pos] if 0 <= pos < len(text) else "?"
        allowed = describe_expected(_acceptable(e, e.allowed or ()))
        message = f"unexpected character {char!r}; expected {allowed}"
        return QuillSyntaxError(message, locate(file, text, line, column))
    return QuillSyntaxError("malformed spec", locate(file, text, line, column))


def _span(meta: Meta) -> Span | None:
    if getattr(meta, "empty", True):
        return None
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _token_span(token: Token) -> Span:
    line, column = token.line or 1, token.column or 1
    return Span(line, column, token.end_line or line, token.end_column or column + 1)


class _Builder(Transformer_NonRecursive[Token, Any]):
    """Parse tree -> AST. Names are checked against the keywords here because Lark's
    contextual lexer lets a keyword through as a NAME where no keyword is expected."""

    def __init__(self, file: str, text: str) -> None:
        super().__init__()
        self.file, self.text = file, text

    def _name(self, token: Token) -> str:
        if token.value in keywords():
            s = _token_span(token)
            raise QuillSyntaxError(
                f"'{token.value}' is a keyword and cannot be used as a name",
                locate(self.file, self.text, s.line, s.column, len(token.value)),
                "pick another name",
            )
        return str(token.value)

    def _int(self, token: Token) -> int:
        if len(token.value) > MAX_DIGITS:
            s = _token_span(token)
            raise QuillSyntaxError(
                f"integer literal has {len(token.value)} digits (at most {MAX_DIGITS})",
                locate(self.file, self.text, s.line, s.column, len(token.value)),
            )
        return int(token.value)

    # declarations

    def start(self, children: list[Decl]) -> tuple[Decl, ...]:
        return tuple(children)

    @v_args(meta=True)
    def spec_decl(self, meta: Meta, ch: list[Token]) -> SpecNameDecl:
        return SpecNameDecl(self._name(ch[0]), span=_span(meta))

    @v_args(meta=True)
    def param_decl(self, meta: Meta, ch: list[Any]) -> ParamDecl:
        return ParamDecl(self._name(ch[0]), ch[1], span=_span(meta))

    def pos_int(self, ch: list[Token]) -> int:
        return self._int(ch[0])

    def neg_int(self, ch: list[Token]) -> int:
        return -self._int(ch[0])

    @v_args(meta=True)
    def slots_decl(self, meta: Meta, ch: list[Expr]) -> SlotsDecl:
        return SlotsDecl(ch[0], span=_span(meta))

    @v_args(meta=True)
    def input_decl(self, meta: Meta, ch: list[Any]) -> InputAst:
        name, kind, layout, *attrs = ch
        seen: set[str] = set()
        for attr, span in attrs:
            if attr in seen:
                raise QuillSyntaxError(
                    f"'{attr}' is given twice for input {name}",
                    locate(self.file, self.text, span.line, span.column, len(attr)),
                    "say it once",
                )
            seen.add(attr)
        return InputAst(
            self._name(name), kind, layout, "bits" in seen, "pad zero" in seen, span=_span(meta)
        )

    def ct(self, _: list[Token]) -> str:
        return "ct"

    def pt(self, _: list[Token]) -> str:
        return "pt"

    @v_args(meta=True)
    def bits(self, meta: Meta, _: list[Token]) -> tuple[str, Span | None]:
        return "bits", _span(meta)

    @v_args(meta=True)
    def pad(self, meta: Meta, _: list[Token]) -> tuple[str, Span | None]:
        return "pad zero", _span(meta)

    def _definition(
        self, role: Literal["stage", "output"], meta: Meta, ch: list[Any]
    ) -> DefinitionAst:
        name, *rest = ch
        heads = [c for c in rest if isinstance(c, Token)]
        layout, expr, *where = [c for c in rest if not isinstance(c, Token)]
        return DefinitionAst(
            role,
            self._name(name),
            tuple(self._name(h) for h in heads),
            layout,
            expr,
            tuple(where[0]) if where else (),
            span=_span(meta),
            index_spans=tuple(_token_span(h) for h in heads),
        )

    @v_args(meta=True)
    def stage_decl(self, meta: Meta, ch: list[Any]) -> DefinitionAst:
        return self._definition("stage", meta, ch)

    @v_args(meta=True)
    def output_decl(self, meta: Meta, ch: list[Any]) -> DefinitionAst:
        return self._definition("output", meta, ch)

    def head_index(self, ch: list[Token]) -> Token:
        return ch[0]

    def where_clause(self, ch: list[Comparison]) -> list[Comparison]:
        return ch

    @v_args(meta=True)
    def cond(self, meta: Meta, ch: list[Any]) -> Comparison:
        operands = tuple(c for c in ch if not isinstance(c, Token))
        ops = tuple(cast(CompareSymbol, str(c)) for c in ch if isinstance(c, Token))
        return Comparison(operands, ops, span=_span(meta))

    @v_args(meta=True)
    def vector_layout(self, meta: Meta, ch: list[Expr]) -> LayoutAst:
        return LayoutAst("vector", tuple(ch), span=_span(meta))

    @v_args(meta=True)
    def image_layout(self, meta: Meta, ch: list[Expr]) -> LayoutAst:
        return LayoutAst("image", tuple(ch), span=_span(meta))

    @v_args(meta=True)
    def scalar_layout(self, meta: Meta, ch: list[Expr]) -> LayoutAst:
        return LayoutAst("scalar", (), span=_span(meta))

    @v_args(meta=True)
    def hint_ops(self, meta: Meta, ch: list[Token]) -> HintDecl:
        return HintDecl(
            "ops",
            tuple(str(t.value) for t in ch),
            span=_span(meta),
            item_spans=tuple(_token_span(t) for t in ch),
        )

    @v_args(meta=True)
    def hint_rotations(self, meta: Meta, ch: list[Expr]) -> HintDecl:
        return HintDecl("rotations", tuple(ch), span=_span(meta))

    @v_args(meta=True)
    def hint_components(self, meta: Meta, ch: list[Token]) -> HintDecl:
        return HintDecl("components", (self._int(ch[0]),), span=_span(meta))

    @v_args(meta=True)
    def hint_constants(self, meta: Meta, ch: list[int]) -> HintDecl:
        return HintDecl("constants", tuple(ch), span=_span(meta))

    # expressions

    @v_args(meta=True)
    def num(self, meta: Meta, ch: list[Token]) -> Num:
        return Num(self._int(ch[0]), span=_span(meta))

    @v_args(meta=True)
    def name(self, meta: Meta, ch: list[Token]) -> Name:
        return Name(self._name(ch[0]), span=_span(meta))

    @v_args(meta=True)
    def read(self, meta: Meta, ch: list[Any]) -> Read:
        return Read(self._name(ch[0]), tuple(ch[1:]), span=_span(meta))

    def _binop(self, op: BinOpSymbol, meta: Meta, ch: list[Expr]) -> BinOp:
        return BinOp(op, ch[0], ch[1], span=_span(meta))

    @v_args(meta=True)
    def add(self, meta: Meta, ch: list[Expr]) -> BinOp:
        return self._binop("+", meta, ch)

    @v_args(meta=True)
    def sub(self, meta: Meta, ch: list[Expr]) -> BinOp:
        return self._binop("-", meta, ch)

    @v_args(meta=True)
    def mul(self, meta: Meta, ch: list[Expr]) -> BinOp:
        return self._binop("*", meta, ch)

    @v_args(meta=True)
    def neg(self, meta: Meta, ch: list[Expr]) -> Neg:
        return Neg(ch[0], span=_span(meta))

    @v_args(meta=True)
    def pow(self, meta: Meta, ch: list[Any]) -> Pow:
        return Pow(ch[0], self._int(ch[1]), span=_span(meta))

    @v_args(meta=True)
    def sum(self, meta: Meta, ch: list[Any]) -> Sum:
        var, lo, hi, body = ch
        return Sum(self._name(var), lo, hi, body, span=_span(meta))


def parse_spec_file(text: str, file: str = "<spec>") -> SpecFile:
    """Parse ``text`` (the contents of ``file``) into its declarations; syntax only."""
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(e, file, text) from None
    try:
        # Non-recursive, so deeply nested input cannot overflow the Python stack here.
        decls: tuple[Decl, ...] = _Builder(file, text).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, QuillError):
            raise e.orig_exc from None
        raise
    return SpecFile(file, text, decls)
