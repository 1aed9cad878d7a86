"""Kernel specs: what a kernel computes, slot by slot, as the synthesizer's reference.

A ``.spec`` file names the kernel, its size params, the slot count ``n``, its inputs (each a
ciphertext or plaintext with a layout), optional intermediate ``stage`` definitions, one
``output`` definition, and optional hints for the synthesizer::

    spec box_blur
    param w = 4                        # sizes are params with defaults, overridable
    param h = 4
    slots w * h                        # n: must be a power of two
    input x: ct image(h, w)            # x[i][j] lives in slot i*w + j
    output y[i][j]: image(h, w) = x[i][j] + x[i][j+1] + x[i+1][j] + x[i+1][j+1]
        where i < h - 1, j < w - 1     # the other slots are don't-care

Layouts: ``vector(m)`` (element k in slot k), ``image(h, w)`` (row-major), ``scalar`` (slot
0). Slots outside an input's layout hold 0. ``bits`` restricts an input to {0, 1};
``pad zero`` makes reads outside its shape 0 (otherwise such a read, at a slot that matters,
is an error). Values are computed mod T = 65537; ``sum(k in lo..hi) e`` is half-open and its
body is a product (parenthesise a sum of terms); ``e ^ k`` takes a literal exponent.

Beyond the brief, documented here:

* In a value expression a bare param or index/sum variable stands for its integer value
  (``sum(k in 0..n) k * a[k]``); ``!=`` is allowed in ``where``; ``^`` also works in index
  expressions.
* Keywords (``spec param slots input stage output hint ops rotations components constants ct
  pt vector image scalar bits pad zero where sum in``) cannot be used as names.
* Stages may be declared in any order; reading each other in a cycle is an error, and so is
  a stage no slot that matters depends on.
* ``hint rotations`` amounts are normalised into ``(-n/2, n/2]`` (the same rotation), deduped.
* Limits that keep a typo from hanging the tool: ``n <= 65536``, exponents ``<= 64``, and at
  most a few million unrolled terms per spec.
* :class:`InputDecl` has one extra field, ``zero_outside`` (default ``True``): ``False`` marks
  an input whose slots outside its layout are arbitrary, as for a stage that
  :meth:`Spec.with_stages_as_inputs` turned into an input (an earlier kernel computed it and
  only guarantees the slots later steps read).

Semantic checks all run when the spec is instantiated with its params (:func:`parse_spec`,
:func:`load_spec`), so a bad spec fails at load time with a located, worded error.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from quill.errors import Location, QuillError, QuillSemanticError, QuillSyntaxError, locate
from quill.ops import Kind, Opcode
from quill.slots import T, is_power_of_two, normalize_amount
from quill.spec_ast import (
    BinOp,
    Comparison,
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
    format_comparison,
    format_expr,
)
from quill.spec_eval import (
    Add,
    Const,
    InputSlot,
    IntRing,
    ModTRing,
    Mul,
    Negate,
    Power,
    ScalarRing,
    StageSlot,
    Sub,
    Term,
    evaluator,
    leaves,
)
from quill.spec_parser import parse_spec_file

__all__ = [
    "Definition",
    "Domain",
    "Hints",
    "InputDecl",
    "IntRing",
    "Layout",
    "ModTRing",
    "ScalarRing",
    "Spec",
    "load_spec",
    "parse_spec",
]

S = TypeVar("S")
Index = tuple[int, ...]

MAX_SLOTS = 1 << 16  # the most slots a BFV row offers at the largest usual ring dimension
MAX_EXPONENT = 64
MAX_TERMS = 4_000_000  # unrolled reads and sum iterations per spec


# --- the public model --------------------------------------------------------------------


class Domain(Enum):
    """The values an input's elements may take."""

    ZT = "zt"  # all of Z_T
    BITS = "bits"  # 0 or 1


@dataclass(frozen=True)
class Layout:
    """Where the elements of an input or definition live in the slots.

    ``kind`` is ``"vector"`` (shape ``(m,)``, element k in slot k), ``"image"`` (shape
    ``(h, w)``, element [i][j] in slot ``i*w + j``) or ``"scalar"`` (shape ``()``, slot 0).
    """

    kind: str
    shape: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def slot(self, index: Index) -> int:
        """The slot of element ``index`` (which must be inside the shape)."""
        if self.kind == "image":
            return index[0] * self.shape[1] + index[1]
        return index[0] if self.kind == "vector" else 0

    def contains(self, index: Sequence[int]) -> bool:
        """Whether ``index`` names an element of this layout."""
        return len(index) == len(self.shape) and all(
            0 <= i < d for i, d in zip(index, self.shape, strict=True)
        )

    def slots(self) -> tuple[int, ...]:
        """Every slot the layout covers, ascending (always ``0 .. size-1``)."""
        return tuple(range(self.size))

    def indices(self) -> Iterator[Index]:
        """Every element index, in slot order."""
        return itertools.product(*(range(d) for d in self.shape))

    def __str__(self) -> str:
        return self.kind if not self.shape else f"{self.kind}({', '.join(map(str, self.shape))})"


@dataclass(frozen=True)
class InputDecl:
    """A kernel input. ``zero_outside``: slots outside the layout hold 0 (the backend encodes
    them so); ``False`` for a stage turned into an input, whose other slots are arbitrary."""

    name: str
    kind: Kind
    layout: Layout
    domain: Domain
    pad: bool
    zero_outside: bool = True


@dataclass(frozen=True)
class Hints:
    """Optional guidance for the synthesizer; ``None`` means "not given"."""

    ops: tuple[Opcode, ...] | None = None
    rotations: tuple[int, ...] | None = None
    components: int | None = None
    constants: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Definition:
    """A stage or the output: ``name[indices]: layout = expr where where``.

    ``region`` is authoritative: the index tuples that matter, in slot order. It is the
    layout's indices satisfying ``where``, except in :meth:`Spec.stage_spec`, where it is
    narrowed to what later definitions read.
    """

    name: str
    indices: tuple[str, ...]
    layout: Layout
    expr: Expr
    where: tuple[Comparison, ...]
    region: tuple[Index, ...]
    span: Span | None = field(default=None, compare=False, repr=False)

    def slots(self) -> tuple[int, ...]:
        """The slots that matter, ascending."""
        return tuple(self.layout.slot(i) for i in self.region)


@dataclass(frozen=True)
class _Unrolled:
    """The spec unrolled per slot (see :mod:`quill.spec_eval`); shared by evaluations."""

    text: str  # the source, for locating errors in derived specs
    terms: Mapping[str, Mapping[int, Term]]  # definition -> slot -> term, over its region
    order: tuple[str, ...]  # stages, each after every stage it reads
    demand: Mapping[str, tuple[int, ...]]  # stage -> the slots the output depends on
    reads: Mapping[str, frozenset[str]]  # definition -> inputs and stages its expr names


@dataclass(frozen=True)
class Spec:
    """An instantiated kernel spec: params resolved, every check passed.

    ``stages`` are in dependency order. Build one with :func:`parse_spec` / :func:`load_spec`.
    """

    name: str
    file: str
    params: tuple[tuple[str, int], ...]
    n: int
    inputs: tuple[InputDecl, ...]
    stages: tuple[Definition, ...]
    output: Definition
    hints: Hints
    _unrolled: _Unrolled = field(compare=False, repr=False)

    def at(self, params: Mapping[str, int] | None = None) -> Spec:
        """The same spec instantiated with other parameters (``None``: its defaults)."""
        return parse_spec(self._unrolled.text, self.file, params)

    def input(self, name: str) -> InputDecl:
        """The input called ``name`` (``KeyError`` if there is none)."""
        for i in self.inputs:
            if i.name == name:
                return i
        raise KeyError(f"spec {self.name} has no input {name!r}")

    def stage(self, name: str) -> Definition:
        """The stage called ``name`` (``KeyError`` if there is none)."""
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"spec {self.name} has no stage {name!r}")

    def output_slots(self) -> tuple[int, ...]:
        """The output slots that matter, ascending; every other slot is don't-care."""
        return self.output.slots()

    def evaluate(self, ring: ScalarRing[S], inputs: Mapping[str, Sequence[S]]) -> dict[int, S]:
        """The reference value at every output slot that matters, computed in ``ring`` from
        one length-``n`` slot vector of ring elements per input."""
        for decl in self.inputs:
            if decl.name not in inputs:
                raise KeyError(f"no value given for input {decl.name!r} of spec {self.name}")
            if len(inputs[decl.name]) != self.n:
                raise ValueError(
                    f"input {decl.name!r} has {len(inputs[decl.name])} slots, expected {self.n}"
                )
        u = self._unrolled
        stage_values: dict[str, dict[int, S]] = {}
        ev = evaluator(ring, inputs, stage_values)
        for name in u.order:
            terms = u.terms[name]
            stage_values[name] = {slot: ev(terms[slot]) for slot in u.demand[name]}
        return {slot: ev(term) for slot, term in u.terms[self.output.name].items()}

    def reference(self, inputs: Mapping[str, npt.ArrayLike]) -> dict[int, int]:
        """:meth:`evaluate` mod T on integer slot vectors (reduced mod T first)."""
        vectors = {k: (np.asarray(v, dtype=np.int64) % T).tolist() for k, v in inputs.items()}
        return self.evaluate(ModTRing(), vectors)

    def random_inputs(self, rng: np.random.Generator) -> dict[str, npt.NDArray[np.int64]]:
        """Random int64 slot vectors: layout slots drawn from the input's domain, 0 outside
        the layout (arbitrary there too for inputs with ``zero_outside=False``)."""
        out: dict[str, npt.NDArray[np.int64]] = {}
        for decl in self.inputs:
            vec = np.zeros(self.n, dtype=np.int64)
            count = decl.layout.size if decl.zero_outside else self.n
            high = 2 if decl.domain is Domain.BITS else T
            vec[:count] = rng.integers(0, high, size=count, dtype=np.int64)
            out[decl.name] = vec
        return out

    def stage_spec(self, name: str) -> Spec:
        """The sub-kernel computing stage ``name`` from the inputs: its output is the stage,
        restricted to the slots later definitions read for the output slots that matter; its
        stages are the ones it depends on. Ops, rotation and constant hints carry over (they
        describe the whole kernel), the component count does not. For a stage that reads
        other stages, ``.with_stages_as_inputs()`` on the result is the one step computing it
        from those stages (how a multi-level kernel such as harris decomposes)."""
        stage = self.stage(name)
        u = self._unrolled
        wanted = set(u.demand[name])
        output = replace(
            stage, region=tuple(i for i in stage.region if stage.layout.slot(i) in wanted)
        )
        needed = self._closure(name)
        stages = tuple(s for s in self.stages if s.name in needed and s.name != name)
        inputs = tuple(i for i in self.inputs if i.name in needed)
        hints = replace(self.hints, components=None)
        return _assemble(
            f"{self.name}_{name}", self.file, u.text, self.params, self.n, inputs, stages, output,
            hints,
        )  # fmt: skip

    def with_stages_as_inputs(self) -> Spec:
        """The last step of a multi-stage kernel: each stage the output reads becomes a
        ciphertext input with the stage's layout (arbitrary outside the stage's slots that
        matter); the output is unchanged and no stages remain."""
        if not self.stages:
            return self
        read = self._unrolled.reads[self.output.name]
        inputs = tuple(i for i in self.inputs if i.name in read) + tuple(
            InputDecl(s.name, Kind.CT, s.layout, Domain.ZT, pad=False, zero_outside=False)
            for s in self.stages
            if s.name in read
        )
        return _assemble(
            self.name, self.file, self._unrolled.text, self.params, self.n, inputs, (),
            self.output, self.hints,
        )  # fmt: skip

    def _closure(self, name: str) -> set[str]:
        """``name`` and every input and stage it reads, transitively."""
        reads = self._unrolled.reads
        seen, todo = {name}, [name]
        while todo:
            for r in reads.get(todo.pop(), ()):
                if r not in seen:
                    seen.add(r)
                    todo.append(r)
        return seen


# --- entry points ------------------------------------------------------------------------


def parse_spec(text: str, file: str = "<spec>", params: Mapping[str, int] | None = None) -> Spec:
    """Parse and instantiate a spec; ``params`` override the declared defaults.

    Raises :class:`~quill.errors.QuillSyntaxError` or :class:`QuillSemanticError`.
    """
    try:
        return _instantiate(parse_spec_file(text, file), dict(params or {}))
    except RecursionError:
        # Only absurdly nested text gets here (each level is a parenthesis or operator).
        raise QuillSemanticError(
            "expression nested too deeply", Location(file, 1, 1), "simplify the spec"
        ) from None


def load_spec(path: str | Path, params: Mapping[str, int] | None = None) -> Spec:
    """Read and instantiate the spec file at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise QuillSyntaxError(f"{path} is not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise QuillSemanticError(f"cannot read spec {path}: {e.strerror or e}") from None
    return parse_spec(text, str(path), params)


# --- instantiation -----------------------------------------------------------------------


class _Context:
    """The source being checked, for located errors."""

    def __init__(self, file: str, text: str) -> None:
        self.file, self.text = file, text

    def error(self, message: str, span: Span | None, hint: str = "") -> QuillSemanticError:
        loc = None
        if span is not None:
            width = span.end_column - span.column if span.end_line == span.line else 0
            loc = locate(self.file, self.text, span.line, span.column, width)
            if width <= 0:  # a multi-line span: underline to the end of its first line
                loc = replace(loc, width=max(1, len(loc.source_line) - span.column + 1))
        return QuillSemanticError(message, loc, hint)


def _suggest(name: str, candidates: Sequence[str], what: str) -> str:
    close = difflib.get_close_matches(name, candidates, n=1)
    if close:
        return f"did you mean {close[0]}?"
    return f"{what}: {', '.join(candidates)}" if candidates else f"there are no {what}"


def _nearest_powers(n: int) -> str:
    if n < 1:
        return "the smallest is 1"
    low = 1 << (n.bit_length() - 1)
    return f"the nearest are {low} and {2 * low}"


IntFn = Callable[[dict[str, int]], int]


def _int_fn(
    ctx: _Context,
    e: Expr,
    params: Mapping[str, int],
    variables: frozenset[str],
    unknown: Callable[[Name], QuillSemanticError],
    where: str,
) -> IntFn:
    """Compile an integer (index) expression over ``params`` and ``variables`` to a function
    of the variables' values. ``unknown`` builds the error for an unknown name; ``where``
    names the context for the nodes index expressions cannot contain."""

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
            b, k = go(e.base), _exponent(ctx, e)
            return lambda env: b(env) ** k
        if isinstance(e, BinOp):
            lf, rf = go(e.left), go(e.right)
            if e.op == "+":
                return lambda env: lf(env) + rf(env)
            if e.op == "-":
                return lambda env: lf(env) - rf(env)
            return lambda env: lf(env) * rf(env)
        if isinstance(e, Read):
            raise ctx.error(
                f"{where} cannot read {e.name}: it is an integer expression over params"
                " and indices",
                e.span,
            )
        assert isinstance(e, Sum)
        raise ctx.error(f"sum(...) cannot appear in {where}", e.span)

    return go(e)


def _exponent(ctx: _Context, e: Pow) -> int:
    if e.exponent > MAX_EXPONENT:
        raise ctx.error(
            f"exponent {e.exponent} is too large (at most {MAX_EXPONENT})",
            e.span,
            "an HE kernel's multiplicative depth grows with the exponent",
        )
    return e.exponent


def _param_value(ctx: _Context, e: Expr, params: Mapping[str, int], where: str) -> int:
    """Evaluate ``e``, an expression over params only (slots, layout sizes, hints)."""

    def unknown(n: Name) -> QuillSemanticError:
        return ctx.error(
            f"unknown param {n.name} in {where}", n.span, _suggest(n.name, list(params), "params")
        )

    return _int_fn(ctx, e, params, frozenset(), unknown, where)({})


def _layout(ctx: _Context, ast: LayoutAst, params: Mapping[str, int], n: int, owner: str) -> Layout:
    dims = tuple(_param_value(ctx, a, params, f"the layout of {owner}") for a in ast.args)
    layout = Layout(ast.kind, dims)
    if any(d < 1 for d in dims):
        raise ctx.error(f"the layout {layout} of {owner} has a dimension below 1", ast.span)
    if layout.size > n:
        raise ctx.error(
            f"size mismatch: the layout {layout} of {owner} has {layout.size} elements but"
            f" the kernel has only {n} slots",
            ast.span,
            "raise `slots` or shrink the layout",
        )
    return layout


def _instantiate(f: SpecFile, overrides: dict[str, int]) -> Spec:
    """Resolve params, sizes and layouts, then check and unroll (:func:`_assemble`)."""
    ctx = _Context(f.file, f.text)
    spec_name: SpecNameDecl | None = None
    slots: SlotsDecl | None = None
    output: DefinitionAst | None = None
    param_decls: list[ParamDecl] = []
    input_decls: list[InputAst] = []
    stage_decls: list[DefinitionAst] = []
    hint_decls: dict[str, HintDecl] = {}
    declared: dict[str, tuple[str, Span | None]] = {}  # one namespace for all declared names

    def declare(name: str, what: str, span: Span | None) -> None:
        if name in declared:
            other, where = declared[name]
            line = f" at line {where.line}" if where else ""
            raise ctx.error(
                f"duplicate declaration: {name} is already declared as {other}{line}",
                span,
                "give each param, input, stage and output its own name",
            )
        declared[name] = (what, span)

    for d in f.decls:
        if isinstance(d, SpecNameDecl):
            if spec_name is not None:
                raise ctx.error(
                    f"duplicate declaration: the spec is already named {spec_name.name}", d.span
                )
            spec_name = d
        elif isinstance(d, ParamDecl):
            declare(d.name, "a param", d.span)
            param_decls.append(d)
        elif isinstance(d, SlotsDecl):
            if slots is not None:
                raise ctx.error("duplicate declaration: `slots` is already given", d.span)
            slots = d
        elif isinstance(d, InputAst):
            declare(d.name, "an input", d.span)
            input_decls.append(d)
        elif isinstance(d, DefinitionAst):
            if d.role == "output" and output is not None:
                raise ctx.error(
                    f"a spec has exactly one output, but {output.name} is already the output",
                    d.span,
                    "make the earlier one a `stage`",
                )
            declare(d.name, "the output" if d.role == "output" else "a stage", d.span)
            if d.role == "output":
                output = d
            else:
                stage_decls.append(d)
        else:
            if d.kind in hint_decls:
                raise ctx.error(f"duplicate declaration: `hint {d.kind}` is already given", d.span)
            hint_decls[d.kind] = d
    if spec_name is None:
        raise ctx.error(
            "missing `spec NAME` declaration", None, "start the file with `spec my_kernel`"
        )
    if slots is None:
        raise ctx.error("missing `slots` declaration", None, "add e.g. `slots w * h`")
    if output is None:
        raise ctx.error("missing output", None, "add e.g. `output y[i]: vector(n) = ...`")

    params = {p.name: p.value for p in param_decls}
    for key, value in overrides.items():
        if key not in params:
            known = ", ".join(params) if params else "none"
            raise QuillSemanticError(
                f"unknown param override {key!r}: spec {spec_name.name} has params {known}"
            )
        params[key] = int(value)

    n = _param_value(ctx, slots.expr, params, "`slots`")
    if not is_power_of_two(n):
        raise ctx.error(
            f"the slot count must be a power of two, but `slots` is {n}; {_nearest_powers(n)}",
            slots.span,
        )
    if n > MAX_SLOTS:
        raise ctx.error(
            f"`slots` is {n}, more than the {MAX_SLOTS} a BFV ciphertext holds", slots.span
        )

    inputs = tuple(
        InputDecl(
            d.name,
            Kind(d.kind),
            _layout(ctx, d.layout, params, n, f"input {d.name}"),
            Domain.BITS if d.bits else Domain.ZT,
            d.pad,
        )
        for d in input_decls
    )
    definitions = [_definition(ctx, d, params, n, set(declared)) for d in [*stage_decls, output]]
    hints = _hints(ctx, hint_decls, params, n)
    return _assemble(
        spec_name.name, f.file, f.text, tuple(params.items()), n, inputs,
        tuple(definitions[:-1]), definitions[-1], hints,
    )  # fmt: skip


def _definition(
    ctx: _Context, d: DefinitionAst, params: Mapping[str, int], n: int, names: set[str]
) -> Definition:
    """Resolve a stage or output head: layout, index names, ``where``, region."""
    what = f"{d.role} {d.name}"
    layout = _layout(ctx, d.layout, params, n, what)
    spans = d.index_spans or tuple(None for _ in d.indices)
    if len(d.indices) != layout.rank:
        example = d.name + "".join(f"[{v}]" for v in "ijk"[: layout.rank])
        raise ctx.error(
            f"wrong number of indices: {what} has {len(d.indices)} but its layout {layout}"
            f" needs {layout.rank}",
            d.span,
            f"write {example}",
        )
    for k, (var, span) in enumerate(zip(d.indices, spans, strict=True)):
        if var in d.indices[:k]:
            raise ctx.error(f"duplicate declaration: index {var} appears twice in {d.name}", span)
        if var in names or var in params:
            raise ctx.error(
                f"index {var} of {d.name} has the name of a declared param, input or stage",
                span,
                "rename the index",
            )
    variables = frozenset(d.indices)
    conditions = [_condition(ctx, c, params, variables, d) for c in d.where]
    region = []
    for index in layout.indices():
        env = dict(zip(d.indices, index, strict=True))
        if all(cond(env) for cond in conditions):
            region.append(index)
    if not region:
        raise ctx.error(
            f"no slot of {what} matters: its `where` excludes every index of {layout}",
            d.where[0].span if d.where else d.span,
            "loosen the conditions or use larger params",
        )
    return Definition(d.name, d.indices, layout, d.expr, d.where, tuple(region), span=d.span)


_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _condition(
    ctx: _Context,
    c: Comparison,
    params: Mapping[str, int],
    variables: frozenset[str],
    d: DefinitionAst,
) -> Callable[[dict[str, int]], bool]:
    def unknown(n: Name) -> QuillSemanticError:
        indices = ", ".join(d.indices) if d.indices else "none"
        return ctx.error(
            f"`where` names {n.name}, which is not an index of {d.name} (its indices: {indices})"
            " nor a param",
            n.span,
            "conditions restrict the definition's own indices",
        )

    fns = [_int_fn(ctx, e, params, variables, unknown, "a `where` condition") for e in c.operands]
    pairs = [(_COMPARE[op], fns[k], fns[k + 1]) for k, op in enumerate(c.ops)]
    return lambda env: all(cmp(a(env), b(env)) for cmp, a, b in pairs)


def _hints(
    ctx: _Context, decls: Mapping[str, HintDecl], params: Mapping[str, int], n: int
) -> Hints:
    ops: tuple[Opcode, ...] | None = None
    rotations: tuple[int, ...] | None = None
    components: int | None = None
    constants: tuple[int, ...] | None = None
    if "ops" in decls:
        d = decls["ops"]
        valid = [op.value for op in Opcode]
        spans = d.item_spans or tuple(d.span for _ in d.items)
        for item, span in zip(d.items, spans, strict=True):
            if item not in valid:
                raise ctx.error(
                    f"unknown op {item} in `hint ops`", span, f"valid ops: {', '.join(valid)}"
                )
        ops = tuple(dict.fromkeys(Opcode(str(i)) for i in d.items))
    if "rotations" in decls:
        d = decls["rotations"]
        amounts = []
        for item in d.items:
            assert isinstance(item, Expr)
            k = normalize_amount(_param_value(ctx, item, params, "`hint rotations`"), n)
            if k == 0:
                raise ctx.error(
                    f"`hint rotations` lists {format_expr(item)}, a rotation by 0 (mod {n})",
                    item.span,
                    "rotating by a multiple of the slot count does nothing; drop it",
                )
            amounts.append(k)
        rotations = tuple(dict.fromkeys(amounts))
    if "components" in decls:
        d = decls["components"]
        components = _int_item(d.items[0])
        if components < 1:
            raise ctx.error("`hint components` must be at least 1", d.span)
    if "constants" in decls:
        constants = tuple(_int_item(i) for i in decls["constants"].items)
    return Hints(ops, rotations, components, constants)


def _int_item(item: str | Expr | int) -> int:
    assert isinstance(item, int)  # the grammar only allows integer literals here
    return item


# --- checking and unrolling definitions --------------------------------------------------


def _assemble(
    name: str,
    file: str,
    text: str,
    params: tuple[tuple[str, int], ...],
    n: int,
    inputs: tuple[InputDecl, ...],
    stages: tuple[Definition, ...],
    output: Definition,
    hints: Hints,
) -> Spec:
    """Check every definition against the inputs and stages, unroll it over its region,
    order the stages, work out which stage slots matter, and build the :class:`Spec`."""
    ctx = _Context(file, text)
    budget = _Budget(ctx)
    env_params = dict(params)
    by_name = {s.name: s for s in stages}
    terms: dict[str, dict[int, Term]] = {}
    reads: dict[str, frozenset[str]] = {}
    for d in (*stages, output):
        unroller = _Unroller(ctx, env_params, inputs, by_name, output.name, d, budget)
        terms[d.name], reads[d.name] = unroller.run()

    order = _stage_order(ctx, stages, reads)
    demand: dict[str, set[int]] = {s.name: set() for s in stages}
    for reader in [output.name, *reversed(order)]:
        slots = terms[reader] if reader == output.name else demand[reader]
        for slot in slots:
            for leaf in leaves(terms[reader][slot]):
                if isinstance(leaf, StageSlot):
                    demand[leaf.name].add(leaf.slot)
    for s in stages:
        if not demand[s.name]:
            raise ctx.error(
                f"stage {s.name} is never read for an output slot that matters",
                s.span,
                "remove it or read it from the output",
            )
    _check_reads_ciphertext(ctx, output, inputs, terms, demand)
    unrolled = _Unrolled(
        text,
        terms,
        tuple(order),
        {k: tuple(sorted(v)) for k, v in demand.items()},
        reads,
    )
    stages_in_order = tuple(by_name[s] for s in order)
    return Spec(name, file, params, n, inputs, stages_in_order, output, hints, unrolled)


def _stage_order(
    ctx: _Context, stages: tuple[Definition, ...], reads: Mapping[str, frozenset[str]]
) -> list[str]:
    """The stages in declaration order, moved after the stages they read."""
    names = [s.name for s in stages]
    spans = {s.name: s.span for s in stages}
    done: list[str] = []
    visiting: list[str] = []

    def visit(s: str) -> None:
        if s in done:
            return
        if s in visiting:
            cycle = [*visiting[visiting.index(s) :], s]
            raise ctx.error(
                f"stages read each other in a cycle: {' -> '.join(cycle)}",
                spans[s],
                "a stage can only read inputs and other, earlier stages",
            )
        visiting.append(s)
        for r in sorted(reads[s]):
            if r in spans:
                visit(r)
        visiting.pop()
        done.append(s)

    for s in names:
        visit(s)
    return done


def _check_reads_ciphertext(
    ctx: _Context,
    output: Definition,
    inputs: tuple[InputDecl, ...],
    terms: Mapping[str, Mapping[int, Term]],
    demand: Mapping[str, set[int]],
) -> None:
    kinds = {i.name: i.kind for i in inputs}
    read: set[str] = set()
    for name, slots in [(output.name, set(terms[output.name])), *demand.items()]:
        for slot in slots:
            read.update(
                leaf.name for leaf in leaves(terms[name][slot]) if isinstance(leaf, InputSlot)
            )
    if not any(kinds[r] is Kind.CT for r in read):
        reads_what = (
            f"only the plaintext input(s) {', '.join(sorted(read))}" if read else "no input"
        )
        raise ctx.error(
            f"plaintext-only output: {output.name} reads {reads_what}, so it is no HE kernel",
            output.span,
            "an output must depend on at least one `ct` input",
        )


class _Budget:
    """Counts unrolled reads and sum iterations, to stop a typo from hanging the tool."""

    def __init__(self, ctx: _Context) -> None:
        self.ctx, self.used = ctx, 0

    def spend(self, amount: int, span: Span | None) -> None:
        self.used += amount
        if self.used > MAX_TERMS:
            raise self.ctx.error(
                f"the spec unrolls to more than {MAX_TERMS} terms", span, "use smaller params"
            )


TermFn = Callable[[dict[str, int]], Term]
_ZERO = Const(0)


class _Unroller:
    """Checks one definition's expression and unrolls it at every index of its region."""

    def __init__(
        self,
        ctx: _Context,
        params: Mapping[str, int],
        inputs: tuple[InputDecl, ...],
        stages: Mapping[str, Definition],
        output_name: str,
        d: Definition,
        budget: _Budget,
    ) -> None:
        self.ctx, self.params, self.d, self.budget = ctx, params, d, budget
        self.inputs = {i.name: i for i in inputs}
        self.stages = stages
        self.output_name = output_name
        self.regions = {s.name: frozenset(s.region) for s in stages.values()}
        self.read_names: set[str] = set()
        self.input_slots: dict[tuple[str, int], InputSlot] = {}  # shared leaves, less memory

    def run(self) -> tuple[dict[int, Term], frozenset[str]]:
        d = self.d
        build = self.value(d.expr, frozenset(d.indices))
        terms = {}
        for index in d.region:
            terms[d.layout.slot(index)] = build(dict(zip(d.indices, index, strict=True)))
        return terms, frozenset(self.read_names)

    # where an error happened, in words
    def at(self, env: Mapping[str, int]) -> str:
        role = "output" if self.d.name == self.output_name else "stage"
        head = f"{role} " + self.d.name + "".join(f"[{env[v]}]" for v in self.d.indices)
        extra = [f"{k} = {v}" for k, v in env.items() if k not in self.d.indices]
        return head + (f" (with {', '.join(extra)})" if extra else "")

    def index(self, e: Expr, variables: frozenset[str]) -> IntFn:
        def unknown(n: Name) -> QuillSemanticError:
            if n.name in self.inputs or n.name in self.stages:
                return self.ctx.error(
                    f"{n.name} is an input or stage, but index expressions only use params,"
                    " indices and sum variables",
                    n.span,
                )
            bound = ", ".join(sorted(variables)) or "none"
            hint = f"index variables come from the head of {self.d.name} or a sum(...)"
            if n.name in _sum_variables(self.d.expr):
                hint = (
                    f"this is outside sum({n.name} ...): a sum's body is one product, so"
                    " parenthesise a body of several terms, sum(k in 0..n) (a[k] - b[k])"
                )
            return self.ctx.error(
                f"unbound index variable {n.name} (in scope: {bound};"
                f" params: {', '.join(self.params) or 'none'})",
                n.span,
                hint,
            )

        return _int_fn(self.ctx, e, self.params, variables, unknown, "an index expression")

    def value(self, e: Expr, variables: frozenset[str]) -> TermFn:
        """Compile a value expression to a function from variable values to its term."""
        if isinstance(e, Num):
            c = Const(e.value)
            return lambda env: c
        if isinstance(e, Name):
            if e.name in variables:
                name = e.name
                return lambda env: Const(env[name])
            if e.name in self.params:
                c = Const(self.params[e.name])
                return lambda env: c
            if e.name in self.inputs or e.name in self.stages:
                return self.read(Read(e.name, (), span=e.span), variables)
            raise self.unknown_source(e.name, e.span, variables)
        if isinstance(e, Read):
            return self.read(e, variables)
        if isinstance(e, Neg):
            f = self.value(e.operand, variables)
            return lambda env: Negate(f(env))
        if isinstance(e, Pow):
            b, k = self.value(e.base, variables), _exponent(self.ctx, e)
            if k == 0:
                return lambda env: Const(1)
            return b if k == 1 else (lambda env: Power(b(env), k))
        if isinstance(e, BinOp):
            lf, rf = self.value(e.left, variables), self.value(e.right, variables)
            if e.op == "+":
                return lambda env: _add(lf(env), rf(env))
            if e.op == "-":
                return lambda env: Sub(lf(env), rf(env))
            return lambda env: Mul(lf(env), rf(env))
        assert isinstance(e, Sum)
        return self.sum(e, variables)

    def unknown_source(self, name: str, span: Span | None, variables: frozenset[str]) -> QuillError:
        if name == self.output_name:
            return self.ctx.error(f"{name} is the output; no definition can read it", span)
        if name in self.params or name in variables:
            what = "a param" if name in self.params else "an index variable"
            return self.ctx.error(
                f"{name} is {what}, not an input or stage, so it cannot be indexed", span
            )
        sources = [*self.inputs, *self.stages]
        return self.ctx.error(
            f"unknown input or stage {name}", span, _suggest(name, sources, "inputs and stages")
        )

    def read(self, e: Read, variables: frozenset[str]) -> TermFn:
        name = e.name
        if name not in self.inputs and name not in self.stages:
            raise self.unknown_source(name, e.span, variables)
        self.read_names.add(name)
        source = self.inputs.get(name)
        layout = source.layout if source else self.stages[name].layout
        if len(e.indices) != layout.rank:
            example = name + "".join(f"[{v}]" for v in "ijk"[: layout.rank])
            raise self.ctx.error(
                f"wrong number of indices: {name} has layout {layout}, so a read of it takes"
                f" {layout.rank}, but `{format_expr(e)}` has {len(e.indices)}",
                e.span,
                f"read it as {example}",
            )
        fns = [self.index(i, variables) for i in e.indices]
        spend = self.budget.spend
        if source is not None:
            pad, slots = source.pad, self.input_slots

            def read_input(env: dict[str, int]) -> Term:
                spend(1, e.span)
                index = tuple(f(env) for f in fns)
                if layout.contains(index):
                    slot = layout.slot(index)
                    leaf = slots.get((name, slot))
                    if leaf is None:
                        leaf = slots[name, slot] = InputSlot(name, slot)
                    return leaf
                if pad:
                    return _ZERO
                raise self.out_of_range(e, index, env, f"outside input {name}'s {layout}")

            return read_input
        region = self.regions[name]
        stage = self.stages[name]

        def read_stage(env: dict[str, int]) -> Term:
            spend(1, e.span)
            index = tuple(f(env) for f in fns)
            if index in region:
                return StageSlot(name, layout.slot(index))
            where = ", ".join(format_comparison(c) for c in stage.where) or "its layout"
            raise self.out_of_range(e, index, env, f"outside the region of stage {name} ({where})")

        return read_stage

    def out_of_range(
        self, e: Read, index: Index, env: Mapping[str, int], outside: str
    ) -> QuillSemanticError:
        target = e.name + "".join(f"[{i}]" for i in index)
        if e.name in self.inputs:
            hint = (
                f"restrict the `where` of {self.d.name} so the read stays inside,"
                f" or declare `input {e.name}: ... pad zero` to read 0 there"
            )
        else:
            hint = f"widen the `where` of stage {e.name} or restrict the `where` of {self.d.name}"
        return self.ctx.error(
            f"out-of-range read: {format_expr(e)} at {self.at(env)} reads {target}, {outside}",
            e.span,
            hint,
        )

    def sum(self, e: Sum, variables: frozenset[str]) -> TermFn:
        var = e.var
        if var in variables or var in self.params or var in self.inputs or var in self.stages:
            raise self.ctx.error(
                f"sum variable {var} shadows an index, param, input or stage of that name",
                e.span,
                "pick a fresh name for the sum variable",
            )
        lo, hi = self.index(e.lo, variables), self.index(e.hi, variables)
        body = self.value(e.body, variables | {var})
        spend = self.budget.spend

        def unroll(env: dict[str, int]) -> Term:
            start, stop = lo(env), hi(env)
            if start >= stop:
                how = "empty" if start == stop else "inverted"
                raise self.ctx.error(
                    f"sum over {var} in {start}..{stop} is {how} at {self.at(env)}",
                    e.span,
                    "`lo..hi` is half-open: it needs lo < hi",
                )
            spend(stop - start, e.span)
            parts = []
            for k in range(start, stop):
                env[var] = k
                parts.append(body(env))
            del env[var]
            return parts[0] if len(parts) == 1 else Add(tuple(parts))

        return unroll


def _sum_variables(e: Expr) -> set[str]:
    """The variables of every sum in ``e``."""
    found: set[str] = set()
    todo = [e]
    while todo:
        x = todo.pop()
        if isinstance(x, Sum):
            found.add(x.var)
            todo += (x.lo, x.hi, x.body)
        elif isinstance(x, BinOp):
            todo += (x.left, x.right)
        elif isinstance(x, Neg):
            todo.append(x.operand)
        elif isinstance(x, Pow):
            todo.append(x.base)
        elif isinstance(x, Read):
            todo.extend(x.indices)
    return found


def _add(a: Term, b: Term) -> Term:
    # Flatten left-nested chains (a + b + c ...) so long sums stay shallow trees.
    if isinstance(a, Add):
        return Add((*a.parts, b))
    return Add((a, b))
