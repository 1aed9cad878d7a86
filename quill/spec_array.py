"""A spec's reference semantics computed on numpy arrays, at any size.

:meth:`Spec.reference <quill.spec_model.Spec.reference>` unrolls a spec slot by slot
(:mod:`quill.spec_unroll`), which ties it to one ciphertext: at most 65536 slots, a power of
two, a few million terms. :func:`reference_array` computes the same values from the parsed
file and params directly: no slot count, no power-of-two sizes.

Each definition (every stage, then the output) is evaluated once over its whole layout, in
blocks of rows. Head indices are numpy axes; a ``sum``'s variable is one more (leading) axis,
reduced away, its range cut into chunks so that temporaries stay near :data:`BLOCK` elements.
Values are residues mod T in int64, reduced after every operation; index arithmetic
(indices, ``mod``, ``where``, sum bounds) is exact: int64, or Python ints where int64 could
overflow.

The semantics are the unroller's wherever both apply. A read outside a ``pad zero`` input is
0; any other read outside an input or a stage's ``where``, an empty sum or a modulus below 1
is an error at a position that matters (in the definition's ``where`` and inside every
enclosing sum's bounds), and elsewhere gives 0. ``e ^ 0`` is 1 without evaluating ``e``;
``where`` conditions stop at the first false one. Errors are :class:`SpecArrayError`, located
in the spec and naming the position. Checks that change no value are not repeated: ``slots``,
hints, unread stages (still evaluated) and plaintext-only outputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from quill.errors import QuillSemanticError
from quill.slots import T
from quill.spec_ast import (
    BinOp,
    DefinitionAst,
    Expr,
    InputAst,
    LayoutAst,
    Name,
    Neg,
    Num,
    ParamDecl,
    Pow,
    Read,
    Span,
    SpecFile,
    SpecNameDecl,
    Sum,
    format_comparison,
    format_expr,
)
from quill.spec_index import Context, exponent, param_value
from quill.spec_model import Layout, Spec

BLOCK = 1 << 20  # about how many elements a temporary holds (rows times a sum's chunk)

MAX_SUM_RANGE = 1 << 40  # a sum longer than this could not finish: a typo, not a kernel
_BIG = 1 << 62  # int64 index arithmetic switches to Python ints past this magnitude

Ints = npt.NDArray[Any]  # exact integers: int64, or object arrays of Python ints
Vals = npt.NDArray[np.int64]  # residues mod T
Mask = npt.NDArray[np.bool_]
Pos = tuple[int, ...]

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "<": np.less, "<=": np.less_equal, ">": np.greater,
    ">=": np.greater_equal, "==": np.equal, "!=": np.not_equal,
}  # fmt: skip


class SpecArrayError(QuillSemanticError, ValueError):
    """An error of :func:`reference_array`, located in the spec: a bad spec or params, an
    out-of-range read, empty sum or bad modulus at a position that matters, bad inputs."""


@dataclass(frozen=True)
class ArrayReference:
    """The output of a spec in its natural shape (``()`` for a scalar, ``(m,)`` for a vector,
    ``(h, w)`` for an image): ``values`` are residues in ``[0, T)`` (0 where the output does
    not matter), ``matters`` is True where the spec's ``where`` constrains the output."""

    values: Vals
    matters: Mask

    def slots(self) -> dict[int, int]:
        """The value at each slot that matters, as :meth:`Spec.reference` gives it (a layout
        stores its elements row-major from slot 0)."""
        picked = np.flatnonzero(self.matters)
        values = self.values.reshape(-1)[picked]
        return dict(zip(picked.tolist(), values.tolist(), strict=True))


def reference_array(
    source: SpecFile, params: Mapping[str, int], inputs: Mapping[str, npt.ArrayLike]
) -> ArrayReference:
    """The reference output of the spec ``source`` with ``params`` overriding its defaults,
    on ``inputs``: one integer array per input in its natural shape (reduced mod T).

    Raises :class:`SpecArrayError` (a :class:`ValueError`) for a bad spec, params or input
    shape, and for a read outside an input (not ``pad zero``) or stage region, an empty sum
    or a modulus below 1 at an output or stage position that matters; ``KeyError`` for a
    missing input.
    """
    try:
        return _Evaluator(source, params, inputs).run()
    except SpecArrayError:
        raise
    except QuillSemanticError as e:
        raise SpecArrayError(e.message, e.location, e.hint) from None
    except RecursionError:
        raise SpecArrayError(f"{source.file}: expression nested too deeply") from None


def spec_reference_array(spec: Spec, inputs: Mapping[str, npt.ArrayLike]) -> ArrayReference:
    """:func:`reference_array` of the file ``spec`` was instantiated from, at its params.

    ``NotImplementedError`` for a spec derived by :meth:`Spec.stage_spec` or
    :meth:`Spec.with_stages_as_inputs` (its file describes the kernel it came from)."""
    if spec.origin.steps:
        raise NotImplementedError(f"spec {spec.name} is derived; only whole spec files are")
    return reference_array(spec.origin.source, dict(spec.params), inputs)


def _exact(v: int) -> Ints:
    return np.asarray(v, dtype=np.int64 if -_BIG < v < _BIG else object)


def _mag(a: Ints) -> int:
    return int(np.max(np.abs(a))) if a.size else 0


def _residues(a: Ints) -> Vals:
    return np.asarray(a % T).astype(np.int64)


def _bools(a: Any) -> Mask:
    return np.asarray(a, dtype=bool)


def _pick(a: Ints, pos: Pos) -> int:
    """The value of ``a`` (broadcast, right-aligned) at position ``pos``."""
    a = np.asarray(a)
    tail = pos[len(pos) - a.ndim :] if a.ndim else ()
    return int(a[tuple(p if d > 1 else 0 for p, d in zip(tail, a.shape, strict=True))])


def _input_array(name: str, given: npt.ArrayLike, layout: Layout) -> Vals:
    a = np.asarray(given)
    if a.dtype.kind == "O" and all(isinstance(v, (int, np.integer)) for v in a.flat):
        a = np.asarray(a % T).astype(np.int64)
    elif a.dtype.kind == "u":
        a = np.remainder(a, np.uint64(T)).astype(np.int64)
    elif a.dtype.kind not in "bi":
        raise SpecArrayError(f"input {name} must hold integers, not {a.dtype}")
    if a.shape != layout.shape:
        raise SpecArrayError(f"input {name} has shape {a.shape}, but {layout} needs {layout.shape}")
    out = a.astype(np.int64)  # a copy: reduced in place
    return np.remainder(out, T, out=out)


@dataclass(frozen=True)
class _Scope:
    """The variables bound while evaluating a definition: its head indices over a block of
    rows, and the enclosing sums' variables (each a leading axis), over ``shape``."""

    what: str  # "output y" or "stage gx"
    heads: tuple[str, ...]
    sums: tuple[str, ...]
    env: Mapping[str, Ints]
    shape: tuple[int, ...]

    def bind(self, var: str, values: Ints) -> _Scope:
        """One more (leading) axis, for the sum variable ``var`` taking ``values``."""
        return _Scope(
            self.what, self.heads, (*self.sums, var), {**self.env, var: values},
            (len(values), *self.shape),
        )  # fmt: skip

    def at(self, pos: Pos) -> str:
        """Position ``pos`` in words: ``output y[1][2] (with k = 3)``."""
        head = self.what + "".join(f"[{_pick(self.env[v], pos)}]" for v in self.heads)
        extra = ", ".join(f"{v} = {_pick(self.env[v], pos)}" for v in self.sums)
        return head + (f" (with {extra})" if extra else "")


class _Evaluator:
    """Evaluates one spec file at one set of params on one set of inputs."""

    def __init__(
        self, source: SpecFile, overrides: Mapping[str, int], inputs: Mapping[str, npt.ArrayLike]
    ) -> None:
        self.ctx = Context(source.file, source.text)
        self.params = {d.name: d.value for d in source.decls if isinstance(d, ParamDecl)}
        defs = [d for d in source.decls if isinstance(d, DefinitionAst)]
        self.stages = {d.name: d for d in defs if d.role == "stage"}
        outputs = [d for d in defs if d.role == "output"]
        names = [d.name for d in source.decls if isinstance(d, (ParamDecl, InputAst))]
        names += [d.name for d in defs]
        for k, name in enumerate(names):
            if name in names[:k]:
                raise self.error(f"duplicate declaration: {name} is declared twice", None)
        if len(outputs) != 1 or not any(isinstance(d, SpecNameDecl) for d in source.decls):
            raise self.error("a spec needs a `spec NAME` declaration and exactly one output", None)
        self.output = outputs[0]
        for key, value in overrides.items():
            if key not in self.params:
                known = ", ".join(self.params) or "none"
                raise SpecArrayError(f"unknown param override {key!r}: the params are {known}")
            self.params[key] = int(value)
        self.inputs: dict[str, tuple[Layout, bool, Vals]] = {}
        for i in source.decls:
            if isinstance(i, InputAst):
                layout = self.layout(i.layout, f"input {i.name}")
                if i.name not in inputs:
                    raise KeyError(f"no value given for input {i.name!r}")
                self.inputs[i.name] = layout, i.pad, _input_array(i.name, inputs[i.name], layout)
        self.done: dict[str, tuple[Vals, Mask]] = {}
        self.busy: list[str] = []

    def error(self, message: str, span: Span | None, hint: str = "") -> SpecArrayError:
        e = self.ctx.error(message, span, hint)
        return SpecArrayError(e.message, e.location, e.hint)

    def check(self, bad: Any, active: Mask, scope: _Scope, say: Callable[[Pos], str],
              span: Span | None, hint: str = "") -> None:  # fmt: skip
        """Raise ``say(position)`` if ``bad`` holds at a position that is ``active``."""
        hit = np.logical_and(_bools(bad), active)
        if hit.any():
            full = np.broadcast_to(hit, scope.shape)
            pos = tuple(int(p) for p in np.unravel_index(int(np.argmax(full)), scope.shape))
            raise self.error(say(pos), span, hint)

    def layout(self, ast: LayoutAst, owner: str) -> Layout:
        where = f"the layout of {owner}"
        dims = tuple(param_value(self.ctx, a, self.params, where) for a in ast.args)
        layout = Layout(ast.kind, dims)
        if any(d < 1 for d in dims):
            raise self.error(f"the layout {layout} of {owner} has a dimension below 1", ast.span)
        return layout

    def run(self) -> ArrayReference:
        values, matters = self.definition(self.output)
        for name in self.stages:  # unread stages too: their errors are errors of the spec
            self.stage(name, None)
        values[~matters] = 0
        return ArrayReference(values, matters)

    # --- definitions ---------------------------------------------------------------------

    def stage(self, name: str, span: Span | None) -> tuple[Vals, Mask]:
        """The values and region of stage ``name``, evaluated on first use."""
        if name in self.busy:
            cycle = [*self.busy[self.busy.index(name) :], name]
            raise self.error(f"stages read each other in a cycle: {' -> '.join(cycle)}", span)
        if name not in self.done:
            self.busy.append(name)
            self.done[name] = self.definition(self.stages[name])
            self.busy.pop()
        return self.done[name]

    def definition(self, d: DefinitionAst) -> tuple[Vals, Mask]:
        """A stage or the output over its whole layout, and where it matters."""
        what = f"{d.role} {d.name}"
        layout = self.layout(d.layout, what)
        if len(d.indices) != layout.rank:
            have = f"{what} has {len(d.indices)}"
            raise self.error(
                f"wrong number of indices: {have}, {layout} needs {layout.rank}", d.span
            )
        for k, var in enumerate(d.indices):
            if var in {*d.indices[:k], *self.params, *self.inputs, *self.stages, self.output.name}:
                raise self.error(f"index {var} of {d.name} is a repeat or a declared name", d.span)
        rows = layout.shape[0] if layout.rank else 1
        matters = self.where(d, self.head(d, layout, 0, rows), layout)
        if not matters.any():
            raise self.error(
                f"no slot of {what} matters: its `where` excludes every index of {layout}", d.span
            )
        values = np.zeros(layout.shape, dtype=np.int64)
        step = max(1, BLOCK // math.prod(layout.shape[1:]))
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            block = matters[r0:r1] if layout.rank else matters
            v = self.value(d.expr, self.head(d, layout, r0, r1), block)
            (values[r0:r1] if layout.rank else values)[...] = v
        return values, matters

    def head(self, d: DefinitionAst, layout: Layout, r0: int, r1: int) -> _Scope:
        """The scope of ``d``'s head indices over rows ``r0 .. r1-1`` of ``layout``."""
        shape = (r1 - r0, *layout.shape[1:]) if layout.rank else ()
        env: dict[str, Ints] = {}
        for axis, var in enumerate(d.indices):
            lo, hi = (r0, r1) if axis == 0 else (0, layout.shape[axis])
            dims = [1] * layout.rank
            dims[axis] = hi - lo
            env[var] = np.arange(lo, hi, dtype=np.int64).reshape(dims)
        return _Scope(f"{d.role} {d.name}", d.indices, (), env, shape)

    def where(self, d: DefinitionAst, scope: _Scope, layout: Layout) -> Mask:
        """Where ``d``'s conditions hold; each is evaluated only where the earlier hold."""
        region = _bools(True)
        for c in d.where:
            values = [self.integer(c.operands[0], scope, region, "a `where` condition")]
            for k, op in enumerate(c.ops):
                values.append(self.integer(c.operands[k + 1], scope, region, "a `where` condition"))
                region = region & _bools(_COMPARE[op](values[k], values[k + 1]))
        return np.broadcast_to(region, layout.shape).copy()

    # --- integer (index) expressions -----------------------------------------------------

    def integer(self, e: Expr, scope: _Scope, active: Mask, where: str) -> Ints:
        """An integer expression over params and bound variables, exactly."""
        if isinstance(e, Num):
            return _exact(e.value)
        if isinstance(e, Name):
            if e.name in scope.env:
                return scope.env[e.name]
            if e.name in self.params:
                return _exact(self.params[e.name])
            bound = ", ".join(scope.env) or "none"
            raise self.error(
                f"unknown name {e.name} in {where}: it uses params and the variables in scope"
                f" ({bound}), not inputs or stages",
                e.span,
            )
        if isinstance(e, Neg):
            return np.asarray(-self.integer(e.operand, scope, active, where))
        if isinstance(e, Pow):
            k = exponent(self.ctx, e)
            base = self.integer(e.base, scope, active, where)
            if _mag(base) ** k >= _BIG:
                base = base.astype(object)
            return np.asarray(base**k)
        if isinstance(e, BinOp):
            a = self.integer(e.left, scope, active, where)
            b = self.integer(e.right, scope, active, where)
            if e.op == "mod":
                self.check(b <= 0, active, scope, lambda pos: (
                    f"the modulus of `{format_expr(e)}` is {_pick(b, pos)} at {scope.at(pos)};"
                    " it must be positive"
                ), e.right.span, "`a mod m` is the remainder in 0..m-1, for m >= 1")  # fmt: skip
                return np.asarray(a % np.where(b > 0, b, 1))
            if (_mag(a) * _mag(b) if e.op == "*" else _mag(a) + _mag(b)) >= _BIG:
                a, b = a.astype(object), b.astype(object)
            return np.asarray(a * b if e.op == "*" else a + b if e.op == "+" else a - b)
        if isinstance(e, Read):
            raise self.error(f"{where} cannot read {e.name}: it is an integer expression", e.span)
        assert isinstance(e, Sum)
        raise self.error(f"sum(...) cannot appear in {where}", e.span)

    # --- value expressions ---------------------------------------------------------------

    def value(self, e: Expr, scope: _Scope, active: Mask) -> Vals:
        """A value expression mod T; ``active`` marks the positions whose errors count."""
        if isinstance(e, Num):
            return np.asarray(e.value % T, dtype=np.int64)
        if isinstance(e, Name):
            if e.name in scope.env:
                return _residues(scope.env[e.name])
            if e.name in self.params:
                return np.asarray(self.params[e.name] % T, dtype=np.int64)
            return self.read(Read(e.name, (), span=e.span), scope, active)
        if isinstance(e, Read):
            return self.read(e, scope, active)
        if isinstance(e, Neg):
            return np.asarray(-self.value(e.operand, scope, active) % T)
        if isinstance(e, Pow):
            k = exponent(self.ctx, e)
            if k == 0:  # the unroller writes 1 without reading the base: no errors there
                self.value(e.base, scope, _bools(False))
                return np.asarray(1, dtype=np.int64)
            return self.power(self.value(e.base, scope, active), k)
        if isinstance(e, BinOp) and e.op == "mod":
            sources = {*self.inputs, *self.stages}
            for x in _walk(e):
                if isinstance(x, Read) or (isinstance(x, Name) and x.name in sources):
                    raise self.error(
                        f"`{format_expr(e)}` takes the remainder of a value that reads {x.name};"
                        " `mod` works on params, indices and sum variables",
                        e.span,
                    )
            return _residues(self.integer(e, scope, active, "an index expression"))
        if isinstance(e, BinOp):
            a, b = self.value(e.left, scope, active), self.value(e.right, scope, active)
            if e.op == "+":
                return np.asarray((a + b) % T)
            if e.op == "-":
                return np.asarray((a - b) % T)
            return np.asarray(a * b % T)
        assert isinstance(e, Sum)
        return self.sum(e, scope, active)

    @staticmethod
    def power(base: Vals, k: int) -> Vals:
        """``base ^ k`` mod T (``k >= 1``) by square-and-multiply."""
        result: Vals | None = None
        while k:
            if k & 1:
                result = base if result is None else np.asarray(result * base % T)
            k >>= 1
            if k:
                base = np.asarray(base * base % T)
        assert result is not None
        return result

    def read(self, e: Read, scope: _Scope, active: Mask) -> Vals:
        """An element of an input or stage at each position."""
        name = e.name
        region: Mask | None = None
        if name in self.inputs:
            layout, pad, data = self.inputs[name]
        elif name in self.stages:
            data, region = self.stage(name, e.span)
            layout, pad = Layout(self.stages[name].layout.kind, data.shape), False
        elif name == self.output.name:
            raise self.error(f"{name} is the output; no definition can read it", e.span)
        else:
            raise self.error(f"unknown input or stage {name}", e.span)
        if len(e.indices) != layout.rank:
            raise self.error(
                f"wrong number of indices: {name} has layout {layout}, so a read of it takes"
                f" {layout.rank}, but `{format_expr(e)}` has {len(e.indices)}",
                e.span,
            )
        idx = [self.integer(i, scope, active, "an index expression") for i in e.indices]
        inside = _bools(True)
        for a, dim in zip(idx, layout.shape, strict=True):
            inside = inside & _bools(a >= 0) & _bools(a < dim)
        # Each index clamped into its axis (same small shape), so the gather stays valid.
        clipped = tuple(
            np.where(a < 0, 0, np.where(a < dim, a, dim - 1)).astype(np.int64)
            for a, dim in zip(idx, layout.shape, strict=True)
        )
        got = np.asarray(data[clipped])
        ok = inside if region is None else inside & region[clipped]
        if not pad:
            outside = f"outside input {name}'s {layout}"
            hint = f"restrict the `where`, or declare `input {name}: ... pad zero` to read 0"
            if region is not None:
                conds = ", ".join(format_comparison(c) for c in self.stages[name].where)
                outside = f"outside the region of stage {name} ({conds or 'its layout'})"
                hint = f"widen the `where` of stage {name} or restrict the reader's `where`"
            self.check(~ok, active, scope, lambda pos: (
                f"out-of-range read: {format_expr(e)} at {scope.at(pos)} reads"
                f" {name}{''.join(f'[{_pick(a, pos)}]' for a in idx)}, {outside}"
            ), e.span, hint)  # fmt: skip
        return got if ok.all() else np.asarray(np.where(ok, got, 0))

    def sum(self, e: Sum, scope: _Scope, active: Mask) -> Vals:
        """``sum(var in lo..hi) body``: the body over chunks of a leading axis, reduced."""
        var = e.var
        if var in scope.env or var in self.params or var in self.inputs or var in self.stages:
            raise self.error(f"sum variable {var} shadows an index, param, input or stage", e.span)
        lo = self.integer(e.lo, scope, active, "an index expression")
        hi = self.integer(e.hi, scope, active, "an index expression")
        self.check(lo >= hi, active, scope, lambda pos: (
            f"sum over {var} in {_pick(lo, pos)}..{_pick(hi, pos)} is"
            f" {'empty' if _pick(lo, pos) == _pick(hi, pos) else 'inverted'} at {scope.at(pos)}"
        ), e.span, "`lo..hi` is half-open: it needs lo < hi")  # fmt: skip
        live = np.broadcast_to(active, np.broadcast_shapes(lo.shape, hi.shape, active.shape))
        if live.any():
            start = int(np.min(np.broadcast_to(lo, live.shape)[live]))
            stop = int(np.max(np.broadcast_to(hi, live.shape)[live]))
        else:  # no position needs it: evaluate the body once, for the spec's own errors
            start, stop = 0, 1
        if stop - start > MAX_SUM_RANGE:
            raise self.error(f"sum over {var} in {start}..{stop} is too long", e.span)
        chunk = max(1, BLOCK // math.prod(scope.shape))
        total: Vals = np.zeros((), dtype=np.int64)
        for k0 in range(start, stop, chunk):
            ks = np.arange(k0, min(stop, k0 + chunk), dtype=np.int64)
            inner = scope.bind(var, ks.reshape((-1,) + (1,) * len(scope.shape)))
            valid = _bools(lo <= inner.env[var]) & _bools(inner.env[var] < hi)
            body = self.value(e.body, inner, active & valid)
            body = body.reshape((1,) * (len(inner.shape) - body.ndim) + body.shape)
            part = np.where(valid, body, 0).sum(axis=0, dtype=np.int64)
            total = np.asarray((total + part) % T)
        return total


def _walk(e: Expr) -> list[Expr]:
    """``e`` and all its subexpressions."""
    out, todo = [], [e]
    while todo:
        x = todo.pop()
        out.append(x)
        if isinstance(x, Sum):
            todo += (x.lo, x.hi, x.body)
        elif isinstance(x, BinOp):
            todo += (x.left, x.right)
        elif isinstance(x, (Neg, Pow)):
            todo.append(x.operand if isinstance(x, Neg) else x.base)
        elif isinstance(x, Read):
            todo.extend(x.indices)
    return out
