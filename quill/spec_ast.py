"""The syntax tree of kernel specs (``.spec`` files), before params are resolved.

Expression nodes are frozen dataclasses compared structurally; their source span is carried
along for error messages but takes no part in equality, so two specs that say the same thing
in different layouts of text compare equal. :func:`format_expr` prints an expression back in
spec syntax (with the parentheses precedence needs), which error messages use to name reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# --- source positions --------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A 1-based source range: from ``line:column`` up to (not including) ``end_column``."""

    line: int
    column: int
    end_line: int
    end_column: int


# --- expressions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    """Base of expression nodes. Index expressions and value expressions share one syntax;
    the semantic pass decides which nodes are allowed where."""

    span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Num(Expr):
    """An integer literal (non-negative; ``-3`` is ``Neg(Num(3))``)."""

    value: int


@dataclass(frozen=True)
class Name(Expr):
    """A bare name: a param, an index or sum variable, or a read of a scalar input/stage."""

    name: str


@dataclass(frozen=True)
class Read(Expr):
    """``name[e1][e2]...``: an element of an input or stage."""

    name: str
    indices: tuple[Expr, ...]


@dataclass(frozen=True)
class Neg(Expr):
    operand: Expr


BinOpSymbol = Literal["+", "-", "*", "mod"]


@dataclass(frozen=True)
class BinOp(Expr):
    """``left op right``; ``mod`` is the integer remainder (of index arithmetic), in
    ``0 .. m-1`` for a modulus ``m > 0``."""

    op: BinOpSymbol
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Pow(Expr):
    """``base ^ exponent`` with a literal exponent >= 0."""

    base: Expr
    exponent: int


@dataclass(frozen=True)
class Sum(Expr):
    """``sum(var in lo..hi) body``: ``var`` ranges over the half-open ``[lo, hi)``."""

    var: str
    lo: Expr
    hi: Expr
    body: Expr


CompareSymbol = Literal["<", "<=", ">", ">=", "==", "!="]


@dataclass(frozen=True)
class Comparison:
    """A chained comparison ``e0 op0 e1 op1 e2 ...`` over index expressions."""

    operands: tuple[Expr, ...]
    ops: tuple[CompareSymbol, ...]
    span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)


# --- declarations ------------------------------------------------------------------------


@dataclass(frozen=True)
class LayoutAst:
    """``vector(m)``, ``image(h, w)`` or ``scalar`` with unevaluated size expressions."""

    kind: Literal["vector", "image", "scalar"]
    args: tuple[Expr, ...]
    span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class SpecNameDecl:
    name: str
    span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class ParamDecl:
    name: str
    value: int
    span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class SlotsDecl:
    expr: Expr
    span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class InputAst:
    """``input NAME: KIND LAYOUT [bits] [pad zero] [in LO..HI] [packing P | packing with X]``;
    ``value_range`` holds the unevaluated bounds of ``in LO..HI`` (inclusive) and
    ``range_span`` where it is written; ``packing`` the packing named (``with X``: packed
    into input X's ciphertext, as ``("with", "X")``) and ``packing_span`` where."""

    name: str
    kind: Literal["ct", "pt"]
    layout: LayoutAst
    bits: bool
    pad: bool
    value_range: tuple[Expr, Expr] | None = None
    packing: tuple[str, str | None] | None = None
    span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)
    range_span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)
    packing_span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class DefinitionAst:
    """A ``stage`` or the ``output``: ``name[i][j]: layout = expr where conds``."""

    role: Literal["stage", "output"]
    name: str
    indices: tuple[str, ...]
    layout: LayoutAst
    expr: Expr
    where: tuple[Comparison, ...]
    span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)
    index_spans: tuple[Span | None, ...] = field(default=(), compare=False, repr=False)


HintKind = Literal["ops", "rotations", "components", "constants"]


@dataclass(frozen=True)
class HintDecl:
    """``hint KIND item, ...``; items are op names (ops), index expressions (rotations) or
    integer literals (components, constants)."""

    kind: HintKind
    items: tuple[str | Expr | int, ...]
    span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)
    item_spans: tuple[Span | None, ...] = field(default=(), compare=False, repr=False)


Decl = SpecNameDecl | ParamDecl | SlotsDecl | InputAst | DefinitionAst | HintDecl


@dataclass(frozen=True)
class SpecFile:
    """A parsed ``.spec`` file: its declarations in source order, and the text they came
    from (for error locations)."""

    file: str
    text: str = field(compare=False, repr=False)
    decls: tuple[Decl, ...]


# --- printing ----------------------------------------------------------------------------

# Binding strength, loosest first; a child printed inside a tighter parent gets parentheses.
_ADD, _MUL, _UNARY, _POW, _ATOM = range(5)


def _prec(e: Expr) -> int:
    if isinstance(e, BinOp):
        return _MUL if e.op in ("*", "mod") else _ADD
    if isinstance(e, (Neg, Sum)):
        return _UNARY
    if isinstance(e, Pow):
        return _POW
    return _ATOM


def format_expr(e: Expr) -> str:
    """``e`` in spec syntax; ``parse(format_expr(e))`` gives back ``e``."""
    if isinstance(e, Num):
        return str(e.value)
    if isinstance(e, Name):
        return e.name
    if isinstance(e, Read):
        return e.name + "".join(f"[{format_expr(i)}]" for i in e.indices)
    if isinstance(e, Neg):
        return "-" + _wrap(e.operand, _UNARY)
    if isinstance(e, Pow):
        return f"{_wrap(e.base, _ATOM)}^{e.exponent}"
    if isinstance(e, Sum):
        head = f"sum({e.var} in {format_expr(e.lo)}..{format_expr(e.hi)}) "
        return head + _wrap(e.body, _MUL)
    if isinstance(e, BinOp):
        level = _prec(e)
        # Left-associative: the right operand needs parentheses at the same level too; so
        # does a left operand mixing * and mod, for the reader (`(i * w) mod n`).
        mixed = isinstance(e.left, BinOp) and level == _MUL and e.left.op != e.op
        return f"{_wrap(e.left, level + 1 if mixed else level)} {e.op} {_wrap(e.right, level + 1)}"
    raise TypeError(f"not an expression: {e!r}")


def _wrap(e: Expr, level: int) -> str:
    text = format_expr(e)
    # A sum's body extends as far right as it can, so a sum is only safe unparenthesised
    # where nothing follows it; wrapping it in any operand position keeps printing simple.
    if _prec(e) < level or isinstance(e, Sum):
        return f"({text})"
    return text


def format_comparison(c: Comparison) -> str:
    """``c`` in spec syntax."""
    parts = [format_expr(c.operands[0])]
    for op, operand in zip(c.ops, c.operands[1:], strict=True):
        parts += [op, format_expr(operand)]
    return " ".join(parts)
