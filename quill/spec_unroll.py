"""Unrolling a resolved spec: every definition checked against the inputs and stages and
expanded, at each index of its region, into a term (:mod:`quill.spec_eval`); the stages
ordered; the stage slots the output depends on worked out; the :class:`~quill.spec_model.Spec`
built.

Reads are checked here, where their index values are known: an out-of-range read, an
empty sum or a bad modulus is reported with the definition and index it happened at.
"""

from __future__ import annotations

import graphlib
import heapq
from collections.abc import Callable, Iterator, Mapping

from quill.errors import QuillError, QuillSemanticError
from quill.ops import Kind
from quill.slots import T
from quill.spec_ast import (
    BinOp,
    Expr,
    Name,
    Neg,
    Num,
    Pow,
    Read,
    Span,
    Sum,
    format_comparison,
    format_expr,
)
from quill.spec_eval import (
    Add,
    Const,
    InputSlot,
    Mul,
    Negate,
    Power,
    StageSlot,
    Sub,
    Term,
    leaves,
)
from quill.spec_index import Context, IntFn, exponent, int_fn, suggest
from quill.spec_model import Definition, Hints, Index, InputDecl, Origin, Spec, Unrolled

MAX_TERMS = 4_000_000  # unrolled reads and sum iterations per spec


def assemble(
    origin: Origin,
    name: str,
    params: tuple[tuple[str, int], ...],
    n: int,
    inputs: tuple[InputDecl, ...],
    stages: tuple[Definition, ...],
    output: Definition,
    hints: Hints,
) -> Spec:
    """Check every definition against the inputs and stages, unroll it over its region,
    order the stages, work out which stage slots matter, and build the :class:`Spec`.
    ``origin`` is kept on the spec (its source locates errors)."""
    source = origin.source
    ctx = Context(source.file, source.text)
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
    unrolled = Unrolled(
        origin,
        terms,
        tuple(order),
        {k: tuple(sorted(v)) for k, v in demand.items()},
        reads,
    )
    stages_in_order = tuple(by_name[s] for s in order)
    return Spec(name, source.file, params, n, inputs, stages_in_order, output, hints, unrolled)


def _stage_order(
    ctx: Context, stages: tuple[Definition, ...], reads: Mapping[str, frozenset[str]]
) -> list[str]:
    """The stages in declaration order, each moved after the stages it reads: of the stages
    whose reads are all placed, the first declared goes next."""
    position = {s.name: k for k, s in enumerate(stages)}
    graph = {s.name: [r for r in sorted(reads[s.name]) if r in position] for s in stages}
    sorter = graphlib.TopologicalSorter(graph)
    try:
        sorter.prepare()
    except graphlib.CycleError as e:
        # The cycle comes as "each node a dependency of the next"; say it as "reads".
        cycle: list[str] = e.args[1][::-1][:-1]
        first = min(range(len(cycle)), key=lambda k: position[cycle[k]])
        cycle = cycle[first:] + cycle[:first]
        raise ctx.error(
            f"stages read each other in a cycle: {' -> '.join([*cycle, cycle[0]])}",
            stages[position[cycle[0]]].span,
            "a stage can only read inputs and other, earlier stages",
        ) from None
    ready: list[tuple[int, str]] = []
    order: list[str] = []
    while sorter.is_active():
        for s in sorter.get_ready():
            heapq.heappush(ready, (position[s], s))
        _, s = heapq.heappop(ready)
        order.append(s)
        sorter.done(s)
    return order


def _check_reads_ciphertext(
    ctx: Context,
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

    def __init__(self, ctx: Context) -> None:
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
        ctx: Context,
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

        def at(env: Mapping[str, int]) -> str:
            return f" at {self.at(env)}"

        return int_fn(self.ctx, e, self.params, variables, unknown, "an index expression", at)

    def integer(self, e: BinOp, variables: frozenset[str]) -> TermFn:
        """A ``mod`` in a value expression: integer arithmetic on params and indices, whose
        result is a constant of the term."""
        sources = {*self.inputs, *self.stages}
        for x in _walk(e):
            if isinstance(x, (Read, Name)) and (isinstance(x, Read) or x.name in sources):
                raise self.ctx.error(
                    f"`{format_expr(e)}` takes the remainder of a value that reads {x.name};"
                    " `mod` works on params, indices and sum variables",
                    e.span,
                    f"values are already computed mod {T}; `mod` is for index arithmetic,"
                    " as in x[(i + 1) mod h]",
                )
        f = self.index(e, variables)
        return lambda env: Const(f(env))

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
            b, k = self.value(e.base, variables), exponent(self.ctx, e)
            if k == 0:
                return lambda env: Const(1)
            return b if k == 1 else (lambda env: Power(b(env), k))
        if isinstance(e, BinOp) and e.op == "mod":
            return self.integer(e, variables)
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
            f"unknown input or stage {name}", span, suggest(name, sources, "inputs and stages")
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


def _walk(e: Expr) -> Iterator[Expr]:
    """``e`` and all its subexpressions, without recursion."""
    todo = [e]
    while todo:
        x = todo.pop()
        yield x
        if isinstance(x, Sum):
            todo += (x.lo, x.hi, x.body)
        elif isinstance(x, BinOp):
            todo += (x.left, x.right)
        elif isinstance(x, Neg):
            todo.append(x.operand)
        elif isinstance(x, Pow):
            todo.append(x.base)
        elif isinstance(x, Read):
            todo.extend(x.indices)


def _sum_variables(e: Expr) -> set[str]:
    """The variables of every sum in ``e``."""
    return {x.var for x in _walk(e) if isinstance(x, Sum)}


def _add(a: Term, b: Term) -> Term:
    # Flatten left-nested chains (a + b + c ...) so long sums stay shallow trees.
    if isinstance(a, Add):
        return Add((*a.parts, b))
    return Add((a, b))
