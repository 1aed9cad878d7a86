"""Integer (index) expressions of specs, and the located errors of the semantic checks.

Shared by resolution (:mod:`quill.spec_resolve`: sizes, layouts, ``where``, hints, value
ranges) and unrolling (:mod:`quill.spec_unroll`: the indices of reads, sum bounds). An index
expression is compiled once into a function of its variables' values, then called for every
index of a definition's region.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from quill.errors import QuillSemanticError, locate
from quill.spec_ast import BinOp, Expr, Name, Neg, Num, Pow, Read, Span, Sum, format_expr

MAX_EXPONENT = 64

IntFn = Callable[[dict[str, int]], int]
# Variable values -> where an evaluation happened, as a suffix: " at output y[0][1]".
Describe = Callable[[Mapping[str, int]], str]


@dataclass(frozen=True)
class Context:
    """The source being checked, for located errors."""

    file: str
    text: str

    def error(self, message: str, span: Span | None, hint: str = "") -> QuillSemanticError:
        """A semantic error at ``span`` (its first line, if it spans several)."""
        loc = None
        if span is not None:
            width = span.end_column - span.column if span.end_line == span.line else 0
            loc = locate(self.file, self.text, span.line, span.column, width)
            if width <= 0:  # a multi-line span: underline to the end of its first line
                loc = replace(loc, width=max(1, len(loc.source_line) - span.column + 1))
        return QuillSemanticError(message, loc, hint)


def suggest(name: str, candidates: Sequence[str], what: str) -> str:
    """A hint for a misspelt ``name``: the closest candidate, or the list of ``what``."""
    close = difflib.get_close_matches(name, candidates, n=1)
    if close:
        return f"did you mean {close[0]}?"
    return f"{what}: {', '.join(candidates)}" if candidates else f"there are no {what}"


def _with(env: Mapping[str, int]) -> str:
    return f" (with {', '.join(f'{k} = {v}' for k, v in env.items())})" if env else ""


def int_fn(
    ctx: Context,
    e: Expr,
    params: Mapping[str, int],
    variables: frozenset[str],
    unknown: Callable[[Name], QuillSemanticError],
    where: str,
    at: Describe = _with,
) -> IntFn:
    """Compile an integer expression over ``params`` and ``variables`` to a function of the
    variables' values. ``unknown`` builds the error for an unknown name; ``where`` names the
    context for the nodes integer expressions cannot contain; ``at`` says where an
    evaluation failed (a modulus that is not positive), given the variables' values (by
    default by listing them)."""

    def go(e: Expr) -> IntFn:
        if isinstance(e, Num):
            v = e.value
            return lambda env: v
        if isinstance(e, Name):
            name = e.name
            if name in variables:
                return lambda env: env[name]
            if name in params:
                v = params[name]
                return lambda env: v
            raise unknown(e)
        if isinstance(e, Neg):
            f = go(e.operand)
            return lambda env: -f(env)
        if isinstance(e, Pow):
            b, k = go(e.base), exponent(ctx, e)
            return lambda env: b(env) ** k
        if isinstance(e, BinOp):
            lf, rf = go(e.left), go(e.right)
            if e.op == "+":
                return lambda env: lf(env) + rf(env)
            if e.op == "-":
                return lambda env: lf(env) - rf(env)
            if e.op == "*":
                return lambda env: lf(env) * rf(env)
            return _mod(ctx, e, lf, rf, at)
        if isinstance(e, Read):
            raise ctx.error(
                f"{where} cannot read {e.name}: it is an integer expression over params"
                " and indices",
                e.span,
            )
        assert isinstance(e, Sum)
        raise ctx.error(f"sum(...) cannot appear in {where}", e.span)

    return go(e)


def _mod(ctx: Context, e: BinOp, lf: IntFn, rf: IntFn, at: Describe) -> IntFn:
    def mod(env: dict[str, int]) -> int:
        m = rf(env)
        if m <= 0:
            raise ctx.error(
                f"the modulus of `{format_expr(e)}` is {m}{at(env)}; it must be positive",
                e.right.span,
                "`a mod m` is the remainder in 0..m-1, defined for m >= 1",
            )
        return lf(env) % m  # Python's remainder: in 0..m-1 for m > 0, as on a torus

    return mod


def exponent(ctx: Context, e: Pow) -> int:
    """The literal exponent of ``e``, refused above :data:`MAX_EXPONENT`."""
    if e.exponent > MAX_EXPONENT:
        raise ctx.error(
            f"exponent {e.exponent} is too large (at most {MAX_EXPONENT})",
            e.span,
            "an HE kernel's multiplicative depth grows with the exponent",
        )
    return e.exponent


def param_value(ctx: Context, e: Expr, params: Mapping[str, int], where: str) -> int:
    """Evaluate ``e``, an expression over params only (slots, sizes, hints, ranges)."""

    def unknown(n: Name) -> QuillSemanticError:
        return ctx.error(
            f"unknown param {n.name} in {where}", n.span, suggest(n.name, list(params), "params")
        )

    return int_fn(ctx, e, params, frozenset(), unknown, where)({})
