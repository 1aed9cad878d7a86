"""The packings the compiler can offer a client (see :mod:`porcupine.layouts.packing`), and the
choice among them: what a spec's ``packing`` clauses ask for, and every option for
``porcupine synth --layout search``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from porcupine.layouts.packing import (
    MAX_SLOTS,
    Ciphertext,
    Element,
    Packing,
    build,
    check,
    dims,
    heads_of,
    leaves,
    natural,
    output_terms,
    own,
    position,
    source_input,
    source_output,
    spec_file,
    term_shape,
)
from porcupine.staging.spec_build import Leaves, polynomial, shifted, term_expr, total
from quill.errors import QuillSemanticError
from quill.ops import Kind
from quill.params import SETS
from quill.spec import Spec
from quill.spec_ast import (
    BinOp,
    Comparison,
    DefinitionAst,
    Expr,
    InputAst,
    LayoutAst,
    Name,
    Num,
    Read,
    SlotsDecl,
    SpecFile,
)
from quill.spec_eval import Add, InputSlot, StageSlot, Term
from quill.spec_index import Context


def broadcast(spec: Spec, names: Sequence[str] | None = None) -> Packing | None:
    """Inputs read only at fixed elements, one ciphertext per element in every slot
    (``names``: those inputs; default: every input read so)."""
    terms = output_terms(spec)
    fixed = _fixed_reads(spec, terms)
    chosen = [n for n in (names if names is not None else fixed) if n in fixed]
    shape = spec.output.layout.shape
    others = [d for d in spec.inputs if d.name not in chosen]
    if not chosen or not shape or any(d.layout.shape != shape for d in others):
        return None  # the other inputs are read relative to the output: they need its shape
    s0 = spec.output_slots()[len(spec.output_slots()) // 2]
    heads = heads_of(spec)
    out_pos = position(spec.output.layout.shape, s0)

    def leaf(x: InputSlot | StageSlot) -> Expr:
        if x.name in chosen:
            return Read(f"{x.name}__{x.slot}", tuple(Name(h) for h in heads))
        deltas = (a - b for a, b in zip(position(shape, x.slot), out_pos, strict=True))
        return Read(x.name, tuple(shifted(h, d) for h, d in zip(heads, deltas, strict=True)))

    expr = term_expr(terms[s0], leaf)
    out = source_output(spec)
    inputs: list[tuple[str, Kind, LayoutAst]] = []
    cts: list[Ciphertext] = []
    for d in spec.inputs:
        if d.name in chosen:
            for e in sorted(fixed[d.name]):
                inputs.append((f"{d.name}__{e}", d.kind, out.layout))
                cts.append(
                    Ciphertext(f"{d.name}__{e}", d.kind, tuple((d.name, e) for _ in range(spec.n)))
                )
        else:
            inputs.append((d.name, d.kind, source_input(spec, d.name).layout))
            cts.append(own(spec, d.name))
    file = spec_file(spec, spec.n, inputs, dataclasses.replace(out, expr=expr))
    built = build(spec, file)
    if built is None:
        return None
    return Packing("broadcast " + ", ".join(chosen), tuple(cts), natural(spec).output, built)


def _fixed_reads(spec: Spec, terms: dict[int, Term]) -> dict[str, set[int]]:
    """Inputs every output slot reads at the same elements, and those elements."""
    reads: dict[str, set[int]] | None = None
    for term in terms.values():
        here: dict[str, set[int]] = {}
        for leaf in leaves(term):
            here.setdefault(leaf.name, set()).add(leaf.slot)
        reads = here if reads is None else {k: v for k, v in reads.items() if here.get(k) == v}
    return reads or {}


def aligned(spec: Spec, terms_major: bool) -> Packing | None:
    """Each input's element for every (output, term) in a slot of its own (see the module
    docstring); ``None`` when the output is not a sum of like terms, or does not fit."""
    terms = output_terms(spec)
    layout = spec.output.layout
    if layout.kind == "scalar" or (len(layout.shape) != 1 and len(layout.shape) != 2):
        return None
    parts = {o: (t.parts if isinstance(t, Add) else (t,)) for o, t in terms.items()}
    count = {len(p) for p in parts.values()}
    if len(count) != 1:
        return None
    T = count.pop()
    width = 1 << (T - 1).bit_length()  # terms padded to a power of two
    n_out = layout.size
    n_new = 1 << (width * max(n_out, 1) - 1).bit_length()
    if n_new > MAX_SLOTS or (width == 1 and not terms_major):
        return None  # one term: terms major and minor are the same packing
    shapes = [tuple(term_shape(p) for p in ps) for ps in parts.values()]
    if any(s != shapes[0] for s in shapes):
        return None
    if any(_constant_term(p) for ps in parts.values() for p in ps):
        return None  # a padded term would not be 0
    slot_of: Callable[[int, int], int] = (
        (lambda t, o: t * n_out + o) if terms_major else (lambda t, o: o * width + t)
    )
    # The ciphertexts: one per (input, occurrence of it in a term).
    gather: dict[str, list[Element | None]] = {}
    kinds = {d.name: d.kind for d in spec.inputs}
    for o, ps in parts.items():
        for t, part in enumerate(ps):
            seen: dict[str, int] = {}
            for leaf in leaves(part):
                k = seen.get(leaf.name, 0)
                seen[leaf.name] = k + 1
                name = f"{leaf.name}__{k}"
                gather.setdefault(name, [None] * n_new)[slot_of(t, o)] = (leaf.name, leaf.slot)
    s0 = spec.output_slots()[len(spec.output_slots()) // 2]
    if len(layout.shape) == 2:
        h, w = layout.shape
        big = (h * width, w) if terms_major else (h, w * width)
        layout_ast = LayoutAst("image", (Num(big[0]), Num(big[1])))
    else:
        layout_ast = LayoutAst("vector", (Num(n_new),))
    heads = heads_of(spec)
    exprs = [
        term_expr(part, _occurrences(_term_index(heads, t, terms_major, layout.shape)))
        for t, part in enumerate(parts[s0])
    ]
    where = _where(spec, heads, terms_major, width)
    if where is None:
        return None
    out_def = DefinitionAst("output", spec.output.name, heads, layout_ast, total(exprs), where)
    inputs = [(name, kinds[name.split("__")[0]], layout_ast) for name in sorted(gather)]
    built = build(spec, spec_file(spec, n_new, inputs, out_def))
    if built is None:
        return None
    cts = tuple(
        Ciphertext(name, kinds[name.split("__")[0]], tuple(gather[name])) for name in sorted(gather)
    )
    output = tuple((o, slot_of(0, o) if terms_major else o * width) for o in spec.output_slots())
    kind = "" if width == 1 else " (terms major)" if terms_major else " (terms minor)"
    return Packing(f"aligned{kind}", cts, output, built)


def _constant_term(part: Term) -> bool:
    """Whether ``part`` is not 0 when every read is (a padded term would not vanish)."""
    return () in polynomial(part, Leaves())


def _occurrences(index: tuple[Expr, ...]) -> Callable[[InputSlot | StageSlot], Expr]:
    """Reads of a term in an aligned packing: the k-th read of input x in the term reads
    ciphertext ``x__k`` at ``index``."""
    seen: dict[str, int] = {}

    def leaf(x: InputSlot | StageSlot) -> Expr:
        k = seen.get(x.name, 0)
        seen[x.name] = k + 1
        return Read(f"{x.name}__{k}", index)

    return leaf


def _term_index(
    heads: tuple[str, ...], t: int, major: bool, shape: tuple[int, ...]
) -> tuple[Expr, ...]:
    """Where term ``t`` of the output at the head indices reads, in an aligned packing."""
    if len(shape) == 2:
        i, j = heads
        if major:
            return (shifted(i, t * shape[0]), Name(j))
        return (Name(i), shifted(j, t))  # the output column is j = width * column
    (k,) = heads
    return (shifted(k, t * shape[0]),) if major else (shifted(k, t),)


def _where(
    spec: Spec, heads: tuple[str, ...], major: bool, width: int
) -> tuple[Comparison, ...] | None:
    """The output's region in the aligned packing: its box, every ``width``-th column
    (terms minor); ``None`` if the region is no box."""
    region = spec.output.region
    dims = len(spec.output.layout.shape)
    lows = [min(r[a] for r in region) for a in range(dims)]
    highs = [max(r[a] for r in region) + 1 for a in range(dims)]
    size = 1
    for lo, hi in zip(lows, highs, strict=True):
        size *= hi - lo
    if size != len(region):
        return None
    last = dims - 1
    out = []
    for a, h in enumerate(heads):
        lo, hi = lows[a], highs[a]
        if not major and a == last:
            out.append(Comparison((Num(lo * width), Name(h), Num(hi * width)), ("<=", "<")))
            out.append(Comparison((BinOp("mod", Name(h), Num(width)), Num(0)), ("==",)))
        else:
            out.append(Comparison((Num(lo), Name(h), Num(hi)), ("<=", "<")))
    return tuple(out)


def _lines_up(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return len(a) == len(b) and (len(a) == 1 or a[1:] == b[1:])


def packed(spec: Spec, groups: Sequence[Sequence[str]] | None = None) -> Packing | None:
    """Inputs sharing one ciphertext, one after the other (``groups``: the inputs of each
    shared ciphertext, in order; default: all ciphertext inputs in one)."""
    if groups is None:
        groups = [[d.name for d in spec.inputs if d.kind is Kind.CT]]
    groups = [list(g) for g in groups if len(g) > 1]
    if not groups or spec.output.layout.kind == "scalar":
        return None
    offset: dict[str, tuple[str, int]] = {}  # input -> (its ciphertext, first slot)
    for g in groups:
        at = 0
        for name in g:
            offset[name] = ("__".join(g), at)
            at += spec.input(name).layout.size
        if at > spec.n:
            return None
    s0 = spec.output_slots()[len(spec.output_slots()) // 2]
    heads = heads_of(spec)
    shape = spec.output.layout.shape
    # Slot arithmetic needs the inputs to share the output's rank (and row width in 2-D).
    if any(not _lines_up(spec.input(n).layout.shape, shape) for n in offset):
        return None
    out_pos = position(shape, s0)
    terms = output_terms(spec)
    fixed = _fixed_reads(spec, terms)

    def leaf(x: InputSlot | StageSlot) -> Expr:
        if isinstance(x, InputSlot) and x.name in fixed and x.name not in offset:
            # the same element for every output element: read it there, not shifted
            at = position(spec.input(x.name).layout.shape, x.slot)
            return Read(x.name, tuple(Num(p) for p in at)) if at else Name(x.name)
        deltas = [a - b for a, b in zip(position(shape, x.slot), out_pos, strict=True)]
        if x.name not in offset:
            return Read(x.name, tuple(shifted(h, d) for h, d in zip(heads, deltas, strict=True)))
        ct, first = offset[x.name]
        if len(shape) == 2:  # row-major: the slot is (i + di) * w + (j + dj) + first
            row = BinOp("*", shifted(heads[0], deltas[0]), Num(shape[1]))
            return Read(ct, (BinOp("+", row, shifted(heads[1], deltas[1] + first)),))
        return Read(ct, (shifted(heads[0], deltas[0] + first),))

    out = source_output(spec)
    expr = term_expr(terms[s0], leaf)
    inputs: list[tuple[str, Kind, LayoutAst]] = []
    cts: list[Ciphertext] = []
    for d in spec.inputs:
        if d.name in offset:
            continue
        inputs.append((d.name, d.kind, source_input(spec, d.name).layout))
        cts.append(own(spec, d.name))
    for g in groups:
        name = "__".join(g)
        slots: list[Element | None] = [None] * spec.n
        for member in g:
            first = offset[member][1]
            for e in range(spec.input(member).layout.size):
                slots[first + e] = (member, e)
        kind = spec.input(g[0]).kind
        inputs.append((name, kind, dims(spec.n)))
        cts.append(Ciphertext(name, kind, tuple(slots)))
    built = build(spec, spec_file(spec, spec.n, inputs, dataclasses.replace(out, expr=expr)))
    if built is None:
        return None
    return Packing(
        "packed " + " + ".join(g[0] for g in groups), tuple(cts), natural(spec).output, built
    )


def padded(spec: Spec, factor: int) -> Packing | None:
    """Every input as its layout says, in ``factor`` times the spec's slots, the rest 0.

    The client moves no data: each element keeps its slot, and the ciphertext repeats every
    ``factor * n`` slots instead of every ``n``. The spare slots are what a kernel can use
    to compute two values in one ciphertext (:mod:`porcupine.layouts.spare_slots`)."""
    n = spec.n * factor
    if factor < 2 or n > max(s.slots for s in SETS):  # no parameter set's row holds it
        return None
    source = spec.origin.source
    decls = tuple(SlotsDecl(Num(n)) if isinstance(d, SlotsDecl) else d for d in source.decls)
    built = build(spec, SpecFile(source.file, source.text, decls))
    if built is None:
        return None
    cts = tuple(own(spec, d.name, n) for d in spec.inputs)
    return Packing(f"padded x{factor}", cts, natural(spec).output, built)


def requested(spec: Spec) -> Packing:
    """The packing the spec's ``packing`` clauses ask for (``free`` counts as natural),
    proven equal to the spec. Raises a :class:`QuillSemanticError` located at the first
    clause when the compiler cannot make it (the spec is then not one it can compile as
    written)."""

    broadcasts = [d.name for d in spec.inputs if d.packing == "broadcast"]
    withs = [d for d in spec.inputs if d.packing == "with"]
    if withs:
        groups: dict[str, list[str]] = {}
        for d in withs:
            assert d.packed_with is not None
            groups.setdefault(d.packed_with, [d.packed_with]).append(d.name)
        found = packed(spec, list(groups.values()))
        if found is not None and not check(found, spec):  # proven, as every packing offered
            found = None
        if found is None:
            shape = spec.output.layout.shape
            off = [n for g in groups.values() for n in g
                   if not _lines_up(spec.input(n).layout.shape, shape)]  # fmt: skip
            why = (
                f"{', '.join(off)} {'is' if len(off) == 1 else 'are'} not laid out like the "
                f"output {spec.output.name} ({_layout_text(spec.output.layout.shape)}), so "
                "no slot shift reads it there"
                if off or spec.output.layout.kind == "scalar"
                else "the packed inputs are not read at the output's own elements"
            )
            raise _clause_error(
                spec, withs[0].name, f"cannot pack {' and '.join(groups)}'s ciphertext as "
                f"asked: {why}", "drop the `packing with` clauses: the inputs then keep "
                "ciphertexts of their own",
            )  # fmt: skip
        return found
    if broadcasts:
        found = broadcast(spec, broadcasts)
        if found is not None and not check(found, spec):
            found = None
        if found is None:
            fixed = _fixed_reads(spec, output_terms(spec))
            moving = [b for b in broadcasts if b not in fixed]
            why = (
                f"{', '.join(moving)} {'is' if len(moving) == 1 else 'are'} read at elements "
                "that change with the output element"
                if moving
                else "the other inputs are not laid out like the output"
            )
            raise _clause_error(
                spec, broadcasts[0], f"`packing broadcast` cannot be made: {why}",
                "`packing broadcast` is for inputs read at the same few elements by every "
                "output element (filter taps, coefficients); drop it here",
            )  # fmt: skip
        return found
    return natural(spec)


def _layout_text(shape: tuple[int, ...]) -> str:
    return {0: "a scalar", 1: "a vector"}.get(len(shape), "an image")


def _clause_error(spec: Spec, name: str, message: str, hint: str) -> QuillSemanticError:
    """An error located at input ``name``'s packing clause in the spec's source."""
    source = spec.origin.source
    span = next(
        (d.packing_span for d in source.decls if isinstance(d, InputAst) and d.name == name),
        None,
    )
    return Context(source.file, source.text).error(message, span, hint)


def options(spec: Spec) -> list[Packing]:
    """The packings ``--layout search`` tries, natural first, each checked equal to the
    spec; inputs whose spec pins a packing keep it."""
    if any(d.packing not in (None, "free", "natural") for d in spec.inputs):
        return [requested(spec)]
    found = [
        natural(spec),
        broadcast(spec),
        aligned(spec, terms_major=True),
        aligned(spec, terms_major=False),
        packed(spec),
    ]
    return [p for p in found if p is not None and check(p, spec)]
