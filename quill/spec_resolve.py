"""Resolving a parsed spec (:class:`~quill.spec_ast.SpecFile`): the declarations gathered and
checked, params overridden, the slot count, layouts, value ranges, definition heads, ``where``
regions and hints evaluated; then :func:`quill.spec_unroll.assemble` checks and unrolls the
definitions into a :class:`~quill.spec_model.Spec`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from quill.errors import Location, QuillSemanticError
from quill.ops import Kind, Opcode
from quill.params import LARGEST_ROW
from quill.slots import T, is_power_of_two, normalize_amount
from quill.spec_ast import (
    Comparison,
    DefinitionAst,
    Expr,
    HintDecl,
    InputAst,
    LayoutAst,
    Name,
    ParamDecl,
    SlotsDecl,
    Span,
    SpecFile,
    SpecNameDecl,
    format_expr,
)
from quill.spec_index import Context, int_fn, param_value, suggest
from quill.spec_model import (
    PACKINGS,
    Definition,
    Domain,
    Hints,
    InputDecl,
    Layout,
    Origin,
    Spec,
)
from quill.spec_unroll import assemble

MAX_SLOTS = LARGEST_ROW  # a row of the largest ring of quill.params: nothing larger can run
MAX_VALUE = (T - 1) // 2  # input ranges lie in -MAX_VALUE..MAX_VALUE: one value per residue


def instantiate(source: SpecFile, params: Mapping[str, int] | None = None) -> Spec:
    """The spec ``source`` describes, with ``params`` overriding its declared defaults.

    Raises :class:`~quill.errors.QuillSemanticError` for every semantic error, located.
    """
    try:
        return _instantiate(source, dict(params or {}))
    except RecursionError:
        # Only absurdly nested text gets here (each level is a parenthesis or operator).
        raise QuillSemanticError(
            "expression nested too deeply", Location(source.file, 1, 1), "simplify the spec"
        ) from None


def _fitting(ctx: Context, e: Expr, params: dict[str, int], overrides: Mapping[str, int]) -> str:
    """The largest size that fits, said as the override to give where one was given."""
    for key in overrides:
        value = params[key] // 2
        while value >= 1:
            try:
                n = param_value(ctx, e, {**params, key: value}, "`slots`")
            except QuillSemanticError:
                break
            if n <= MAX_SLOTS and is_power_of_two(n):
                return f"the largest that fits is --param {key}={value} ({n} slots)"
            value //= 2
    return f"at most {MAX_SLOTS} slots fit"


class _Layers:
    """The :class:`~quill.spec_model.Builder` a spec derives other specs through."""

    def instantiate(self, source: SpecFile, params: Mapping[str, int]) -> Spec:
        return instantiate(source, params)

    def assemble(
        self,
        origin: Origin,
        name: str,
        params: tuple[tuple[str, int], ...],
        n: int,
        inputs: tuple[InputDecl, ...],
        stages: tuple[Definition, ...],
        output: Definition,
        hints: Hints,
    ) -> Spec:
        return assemble(origin, name, params, n, inputs, stages, output, hints)


_BUILDER = _Layers()


def _nearest_powers(n: int) -> str:
    if n < 1:
        return "the smallest is 1"
    low = 1 << (n.bit_length() - 1)
    return f"the nearest are {low} and {2 * low}"


def _layout(ctx: Context, ast: LayoutAst, params: Mapping[str, int], n: int, owner: str) -> Layout:
    dims = tuple(param_value(ctx, a, params, f"the layout of {owner}") for a in ast.args)
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
    """Resolve params, sizes and layouts, then check and unroll (:func:`assemble`)."""
    ctx = Context(f.file, f.text)
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

    n = param_value(ctx, slots.expr, params, "`slots`")
    if not is_power_of_two(n):
        raise ctx.error(
            f"the slot count must be a power of two, but `slots` is {n}; {_nearest_powers(n)}",
            slots.span,
        )
    if n > MAX_SLOTS:
        raise ctx.error(
            f"`slots` is {n}, more than the {MAX_SLOTS} in a row of the largest ring the "
            f"compiler has (N = {2 * MAX_SLOTS}): no parameter set can run it",
            slots.span,
            f"{_fitting(ctx, slots.expr, params, overrides)}; larger data is tiled by the "
            f"application, one kernel call per block of at most {MAX_SLOTS} slots",
        )

    inputs = tuple(_input(ctx, d, params, n) for d in input_decls)
    _check_packed_with(ctx, input_decls, inputs, n)
    definitions = [_definition(ctx, d, params, n, set(declared)) for d in [*stage_decls, output]]
    hints = _hints(ctx, hint_decls, params, n)
    return assemble(
        Origin(f, _BUILDER), spec_name.name, tuple(params.items()), n, inputs,
        tuple(definitions[:-1]), definitions[-1], hints,
    )  # fmt: skip


def _input(ctx: Context, d: InputAst, params: Mapping[str, int], n: int) -> InputDecl:
    """Resolve an input declaration: its layout and value range."""
    layout = _layout(ctx, d.layout, params, n, f"input {d.name}")
    value_range = _value_range(ctx, d, params)
    within_bits = value_range is not None and 0 <= value_range[0] <= value_range[1] <= 1
    if d.bits and value_range is not None and not within_bits:
        lo, hi = value_range
        raise ctx.error(
            f"input {d.name} is `bits` (0 or 1), but its value range is {lo}..{hi}",
            d.range_span,
            "drop one of them: `bits` alone means 0..1",
        )
    domain = Domain.BITS if d.bits or within_bits else Domain.ZT
    packing, packed_with = _packing(ctx, d)
    return InputDecl(
        d.name, Kind(d.kind), layout, domain, d.pad, value_range=value_range,
        packing=packing, packed_with=packed_with,
    )  # fmt: skip


def _check_packed_with(
    ctx: Context, asts: list[InputAst], inputs: tuple[InputDecl, ...], n: int
) -> None:
    """``packing with X`` names another input of the same kind, which is not itself packed
    with another, and the inputs packed with X fit one ciphertext of ``n`` slots."""
    kinds = {i.name: i.kind for i in inputs}
    decls = {i.name: i for i in inputs}
    groups: dict[str, list[InputDecl]] = {}
    for d, decl in zip(asts, inputs, strict=True):
        other = decl.packed_with
        if other is None:
            continue
        if other not in kinds:
            raise ctx.error(
                f"input {d.name} is packed with {other}, which is no input",
                d.packing_span,
                suggest(other, list(kinds), "inputs"),
            )
        if kinds[other] is not decl.kind:
            raise ctx.error(
                f"input {d.name} ({decl.kind}) cannot share a ciphertext with {other} "
                f"({kinds[other]})",
                d.packing_span,
            )
        holder = decls[other].packed_with
        if holder is not None:  # a chain or a cycle: the ciphertext would have no holder
            hint = (
                f"write `packing with` on one of {d.name} and {other} only"
                if holder == d.name
                else f"name the input that holds the ciphertext on each: `packing with {holder}`"
            )
            raise ctx.error(
                f"input {d.name} is packed with {other}, which is itself packed with {holder}",
                d.packing_span,
                hint,
            )
        group = groups.setdefault(other, [decls[other]])
        group.append(decl)
        used = sum(g.layout.size for g in group)
        if used > n:
            sizes = " + ".join(f"{g.name} ({g.layout.size})" for g in group)
            raise ctx.error(
                f"input {d.name} does not fit in {other}'s ciphertext: {sizes} need {used} "
                f"slots, and the spec has {n}",
                d.packing_span,
                f"raise `slots` to at least {used} (a power of two), or drop this clause",
            )


def _packing(ctx: Context, d: InputAst) -> tuple[str | None, str | None]:
    """The packing an input asks for: a name of :data:`PACKINGS` or ``with X``."""
    if d.packing is None:
        return None, None
    kind, other = d.packing
    if kind == "with":
        if other == d.name:
            raise ctx.error(f"input {d.name} cannot be packed with itself", d.packing_span)
        return "with", other
    if kind not in PACKINGS:
        choices = ", ".join(f"`packing {p}`" for p in PACKINGS) + ", `packing with INPUT`"
        raise ctx.error(
            f"unknown packing {kind} for input {d.name}",
            d.packing_span,
            f"{suggest(kind, list(PACKINGS), 'packings')} (the packings: {choices})",
        )
    return kind, None


def _value_range(ctx: Context, d: InputAst, params: Mapping[str, int]) -> tuple[int, int] | None:
    if d.value_range is None:
        return None
    where = f"the value range of input {d.name}"
    lo, hi = (param_value(ctx, e, params, where) for e in d.value_range)
    for e, v in zip(d.value_range, (lo, hi), strict=True):
        if not -MAX_VALUE <= v <= MAX_VALUE:
            raise ctx.error(
                f"the value range of input {d.name} has bound {v}, outside"
                f" {-MAX_VALUE}..{MAX_VALUE}",
                e.span,
                f"values are computed mod {T}, so a range holds at most {T} distinct values,"
                " centred on 0",
            )
    if lo > hi:
        raise ctx.error(
            f"the value range {lo}..{hi} of input {d.name} is empty",
            d.range_span,
            "write `in lo..hi` with lo <= hi (both bounds included)",
        )
    return lo, hi


def _definition(
    ctx: Context, d: DefinitionAst, params: Mapping[str, int], n: int, names: set[str]
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
    ctx: Context,
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

    fns = [int_fn(ctx, e, params, variables, unknown, "a `where` condition") for e in c.operands]
    pairs = [(_COMPARE[op], fns[k], fns[k + 1]) for k, op in enumerate(c.ops)]
    return lambda env: all(cmp(a(env), b(env)) for cmp, a, b in pairs)


def _hints(ctx: Context, decls: Mapping[str, HintDecl], params: Mapping[str, int], n: int) -> Hints:
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
            k = normalize_amount(param_value(ctx, item, params, "`hint rotations`"), n)
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
