"""Parse ``.spec`` text into a :class:`~quill.spec_ast.SpecFile` (grammar: ``spec.lark``).

Every failure becomes a :class:`~quill.errors.QuillSyntaxError` with ``file:line:col``, the
offending source line, a caret, and an "expected ..." message in words, by the rules of
:mod:`quill.syntax_errors` (shared with Quill's own parser); no Lark exception escapes,
whatever the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from lark import Token, v_args
from lark.tree import Meta
from lark.visitors import Transformer_NonRecursive

from quill.errors import QuillSyntaxError, locate
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
from quill.syntax_errors import Grammar, Group, Hint, Noun, transform

MAX_DIGITS = 30  # longer literals are typos; also keeps int() away from huge strings

_DECLARATIONS = ("spec", "param", "slots", "input", "stage", "output", "hint")
GRAMMAR = Grammar(
    Path(__file__).with_name("spec.lark"),
    nouns={
        "INT": Noun("an integer", "integer {}"),
        "CMP": Noun("a comparison (<, <=, >, >=, ==, !=)", "'{}'"),
    },
    groups=[
        Group(frozenset({"NAME", "INT", "LPAR", "MINUS", "SUM"}), "an expression"),
        # "+" or "-" alone read better spelled out, hence at least three.
        Group(frozenset({"PLUS", "MINUS", "STAR", "MOD", "CIRCUMFLEX"}), "an operator", 3),
        Group(
            frozenset(d.upper() for d in _DECLARATIONS),
            f"a new declaration ({', '.join(_DECLARATIONS)})",
            last=True,
        ),
    ],
    hints=[Hint("the remainder is written `a mod m`", char="%")],
)
"""The spec grammar (``spec.lark``) and the words of its syntax errors."""


def keywords() -> frozenset[str]:
    """The reserved words of the spec language (they cannot name anything)."""
    return GRAMMAR.keywords


_RANGE = "the value range"
_PACKING = "the packing"


def _span(meta: Meta) -> Span | None:
    if getattr(meta, "empty", True):
        return None
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _token_span(token: Token) -> Span:
    line, column = token.line or 1, token.column or 1
    return Span(line, column, token.end_line or line, token.end_column or column + 1)


@dataclass(frozen=True)
class _Attr:
    """One attribute of an input declaration, as written."""

    what: str  # how a message names it
    span: Span | None
    bounds: tuple[Expr, Expr] | None = None  # of a value range
    packing: tuple[str, str | None] | None = None  # of a packing


class _Builder(Transformer_NonRecursive[Token, Any]):
    """Parse tree -> AST. No name is a keyword: the grammar's lexer retypes those."""

    def __init__(self, file: str, text: str) -> None:
        super().__init__()
        self.file, self.text = file, text

    def _name(self, token: Token) -> str:
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
        given: dict[str, _Attr] = {}
        for attr in attrs:
            if attr.what in given:
                s = attr.span or _token_span(name)
                width = s.end_column - s.column if s.end_line == s.line else 1
                raise QuillSyntaxError(
                    f"{attr.what} is given twice for input {name}",
                    locate(self.file, self.text, s.line, s.column, width),
                    "say it once",
                )
            given[attr.what] = attr
        value_range = given.get(_RANGE)
        packing = given.get(_PACKING)
        return InputAst(
            self._name(name),
            kind,
            layout,
            "'bits'" in given,
            "'pad zero'" in given,
            value_range.bounds if value_range else None,
            packing.packing if packing else None,
            span=_span(meta),
            range_span=value_range.span if value_range else None,
            packing_span=packing.span if packing else None,
        )

    def ct(self, _: list[Token]) -> str:
        return "ct"

    def pt(self, _: list[Token]) -> str:
        return "pt"

    @v_args(meta=True)
    def bits(self, meta: Meta, _: list[Token]) -> _Attr:
        return _Attr("'bits'", _span(meta))

    @v_args(meta=True)
    def pad(self, meta: Meta, _: list[Token]) -> _Attr:
        return _Attr("'pad zero'", _span(meta))

    @v_args(meta=True)
    def value_range(self, meta: Meta, ch: list[Expr]) -> _Attr:
        return _Attr(_RANGE, _span(meta), (ch[0], ch[1]))

    @v_args(meta=True)
    def packing(self, meta: Meta, ch: list[Token]) -> _Attr:
        return _Attr(_PACKING, _span(meta), packing=(str(ch[0]), None))

    @v_args(meta=True)
    def packing_with(self, meta: Meta, ch: list[Token]) -> _Attr:
        return _Attr(_PACKING, _span(meta), packing=("with", self._name(ch[0])))

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
    def mod(self, meta: Meta, ch: list[Expr]) -> BinOp:
        return self._binop("mod", meta, ch)

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
    tree = GRAMMAR.parse(text, file)
    # Non-recursive, so deeply nested input cannot overflow the Python stack here.
    decls: tuple[Decl, ...] = transform(_Builder(file, text), tree)
    return SpecFile(file, text, decls)
