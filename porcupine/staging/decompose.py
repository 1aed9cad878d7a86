"""Automatic stages: Porcupine's multi-step idea without user-written ``stage`` lines.

A flat formula such as Roberts cross, ``(x[i][j] - x[i+1][j+1])^2 + (x[i+1][j] -
x[i][j+1])^2``, is too big for one search but falls apart at its ciphertext products:
each factor of a ct*ct product that is not a plain read becomes a stage, and the output
reads the stages. Factors that are the same formula shifted by a few pixels (the gradient
at four neighbours, as in Harris) become one stage read at four offsets: stages are found
up to translation, on the exact polynomials of the spec's unrolled terms.

It works bottom-up in rounds: a round makes stages of the factors whose own products, if
any, multiply only reads, and rewrites every subterm equal to a stage (anywhere, at any
offset) as a read of it, so a later factor such as ``sxx + syy`` reads earlier stages
instead of recomputing them. The result is an ordinary staged spec (built from syntax, so
the multi-step synthesizer takes it as it takes a user's) whose reference is checked equal
to the flat spec's, polynomial by polynomial, before it is used.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from porcupine.staging.spec_build import Leaves, number, polynomial, shifted, term_expr, total
from quill.errors import QuillError
from quill.slots import T
from quill.spec import Spec
from quill.spec_ast import (
    BinOp,
    Comparison,
    Decl,
    DefinitionAst,
    Expr,
    Name,
    Num,
    Pow,
    Read,
    SpecFile,
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
    children,
    leaves,
)
from quill.spec_resolve import instantiate
from quill.verify import Reference, reference

log = logging.getLogger("porcupine.staging.decompose")

Position = tuple[int, ...]  # a slot as layout coordinates: (row, column) or (index,)
Variable = tuple[str, Position]  # (source, offset from the anchor)
Key = tuple[tuple[tuple[Variable, ...], int], ...]  # a polynomial up to translation

MAX_ROUNDS = 4


@dataclass(frozen=True)
class _Stage:
    name: str
    key: Key
    anchor: Position  # the offset (from the output slot) where the stage is read unshifted


class _Layout:
    """Slots as coordinates of the spec's (one) layout shape; ``scalar``: the output is a
    reduction to slot 0, and stages are scalars too."""

    def __init__(self, shape: tuple[int, ...], scalar: bool = False) -> None:
        self.shape, self.scalar = shape, scalar

    def position(self, slot: int) -> Position:
        if len(self.shape) == 2:
            return divmod(slot, self.shape[1])
        return (slot,)

    def slot(self, position: Position) -> int:
        return position[0] * self.shape[1] + position[1] if len(self.shape) == 2 else position[0]


def decompose(spec: Spec, ref: Reference | None = None) -> Spec | None:
    """``spec`` with automatic stages, or ``None`` when it has stages already, no ct*ct
    product of a compound factor, or a shape this does not cover. ``ref``: ``spec``'s
    reference when the caller has it (the staged spec is checked against it)."""
    if spec.stages:
        return None
    scalar = spec.output.layout.kind == "scalar"
    shapes = {d.layout.shape for d in spec.inputs} | (
        {()} if scalar else {spec.output.layout.shape}
    )
    if len(shapes - {()}) != 1 or (scalar and len(next(iter(shapes - {()}))) != 1):
        return None
    layout = _Layout(next(iter(shapes - {()})), scalar)
    slots = spec.output_slots()
    s0 = slots[len(slots) // 2]
    term = spec.terms()[s0]
    cts = {d.name for d in spec.inputs if d.kind.value == "ct"}
    stages: list[_Stage] = []
    taken = {d.name for d in spec.inputs} | {spec.output.name} | {k for k, _ in spec.params}
    prefix = next(
        p for p in ("s", "stage", "auto_stage") if not any(n.startswith(p) for n in taken)
    )
    for _ in range(MAX_ROUNDS):
        made = _round(term, s0, layout, cts, stages, prefix)
        if not made and not stages and not scalar:
            made = _split_sum(term, s0, layout, cts, prefix)
        if not made:
            break
        stages += made
        term = _substitute(term, s0, layout, stages)
    if not stages:
        return None
    try:
        staged = instantiate(_staged_file(spec, term, s0, layout, stages), dict(spec.params))
    except QuillError as e:
        log.info("no automatic stages: %s", e)
        return None
    if reference(staged).polys != (reference(spec) if ref is None else ref).polys:
        log.info("no automatic stages: the staged formula is not the flat one everywhere")
        return None
    log.info("automatic stages: %s", ", ".join(s.name for s in stages))
    return staged


# --- finding factors ------------------------------------------------------------------------


def _is_ct(t: Term, cts: set[str], staged: set[str]) -> bool:
    return any(
        (isinstance(x, InputSlot) and x.name in cts)
        or (isinstance(x, StageSlot) and x.name in staged)
        for x in leaves(t)
    )


def _products(
    t: Term, cts: set[str], staged: set[str], scaled: bool = False
) -> Iterator[tuple[Term, ...]]:
    """The factors of every ct*ct product in ``t``; with ``scaled``, also the ciphertext
    factor of a product with a plaintext (in a reduction, ``n * sum(...)`` is worth a
    stage of its own)."""
    todo = [t]
    while todo:
        x = todo.pop()
        if isinstance(x, Mul):
            left, right = _is_ct(x.left, cts, staged), _is_ct(x.right, cts, staged)
            if left and right:
                yield (x.left, x.right)
            elif scaled and (left or right):
                yield (x.left if left else x.right,)
            todo += (x.left, x.right)
        elif isinstance(x, Power):
            if x.exponent >= 2 and _is_ct(x.base, cts, staged):
                yield (x.base,)
            todo.append(x.base)
        elif isinstance(x, Add):
            todo.extend(x.parts)
        elif isinstance(x, Sub):
            todo += (x.left, x.right)
        elif isinstance(x, Negate):
            todo.append(x.operand)


def _compound(t: Term) -> bool:
    return not isinstance(t, (InputSlot, StageSlot, Const))


def _proper_compounds(t: Term) -> Iterator[Term]:
    """The compound subterms of ``t`` other than ``t`` itself."""
    todo = list(children(t))
    while todo:
        x = todo.pop()
        if _compound(x):
            yield x
            todo.extend(children(x))


def _round(
    term: Term, s0: int, layout: _Layout, cts: set[str], stages: list[_Stage], prefix: str
) -> list[_Stage]:
    """One round of :func:`_factors` made stages."""
    staged = {s.name for s in stages}
    factors = [
        f
        for product in _products(term, cts, staged, layout.scalar)
        for f in product
        if _compound(f)
        and not any(_compound(g) for p in _products(f, cts, staged, layout.scalar) for g in p)
    ]
    return _stages(factors, s0, layout, len(stages), prefix)


def _split_sum(term: Term, s0: int, layout: _Layout, cts: set[str], prefix: str) -> list[_Stage]:
    """Stages for the terms of a top-level sum of three or more products (a convolution
    with an encrypted filter): each term is a small step, and translated copies of one term
    are one stage read at several offsets."""
    if not isinstance(term, Add):
        return []
    terms = [p for p in term.parts if _compound(p) and any(_products(p, cts, set()))]
    return _stages(terms, s0, layout, 0, prefix) if len(terms) >= 3 else []


def _stages(
    factors: list[Term], s0: int, layout: _Layout, made_before: int, prefix: str
) -> list[_Stage]:
    """Stages for ``factors``, one per shape up to translation, except a factor that
    contains another one (``sxx + syy`` waits for the round after ``sxx`` and ``syy`` are
    stages, and then reads them). A reduction's stages are scalars, read unshifted only."""
    # A factor that is a constant (``0 * a``) or a scaled read (``2 * a``) is no step of its
    # own: it is left in the formula, where the lowering folds or scales it.
    placed = [(f, *_canonical(f, s0, layout)) for f in factors]
    placed = [(f, key, shift) for f, key, shift in placed if not _read_or_constant(key)]
    keys = {key for _, key, _ in placed}
    found: dict[Key, list[Position]] = {}
    for f, key, shift in placed:
        if not any(_canonical(g, s0, layout)[0] in keys for g in _proper_compounds(f)):
            found.setdefault(key, []).append(shift)
    made: list[_Stage] = []
    for key, shifts in found.items():
        anchor = Counter(shifts).most_common(1)[0][0]  # read most often unshifted
        if layout.scalar and any(s != anchor for s in shifts):
            continue
        made.append(_Stage(f"{prefix}{made_before + len(made) + 1}", key, anchor))
    return made


# --- polynomials up to translation ------------------------------------------------------------


def _minus(a: Position, b: Position) -> Position:
    return tuple(x - y for x, y in zip(a, b, strict=True))


Placed = dict[tuple[Variable, ...], int]  # a polynomial over (source, offset from s0)


def _placed(t: Term, s0: int, layout: _Layout) -> Placed:
    """``t``'s polynomial, its leaves as offsets from output slot ``s0``."""
    variables = Leaves()
    poly = polynomial(t, variables)
    origin = layout.position(s0)

    def leaf(v: int) -> Variable:
        name, slot = variables.leaves[v]
        return name, _minus(layout.position(slot), origin)

    return {tuple(sorted(leaf(v) for v in m)): c for m, c in poly.items()}


def _shifted(p: Placed, by: Position) -> Placed:
    return {
        tuple((name, tuple(o + b for o, b in zip(off, by, strict=True))) for name, off in m): c
        for m, c in p.items()
    }


def _lowest(p: Placed) -> Position | None:
    """The smallest offset ``p`` reads; ``None`` for a constant (it reads nothing)."""
    return min((off for m in p for _, off in m), default=None)


def _read_or_constant(key: Key) -> bool:
    """Whether the polynomial ``key`` is a constant or a multiple of one read."""
    return len(key) <= 1 and all(len(m) <= 1 for m, _ in key)


def _canonical(t: Term, s0: int, layout: _Layout) -> tuple[Key, Position]:
    """``t``'s polynomial with leaves as offsets from its smallest one, and that offset
    (from output slot ``s0``)."""
    placed = _placed(t, s0, layout)
    shift = _lowest(placed)
    if shift is None:  # a constant: the same at every offset
        return tuple(sorted(placed.items())), tuple(0 for _ in layout.shape)
    moved = _shifted(placed, tuple(-d for d in shift))
    return tuple(sorted(moved.items())), shift


def _substitute(term: Term, s0: int, layout: _Layout, stages: list[_Stage]) -> Term:
    """``term`` with every compound subterm equal to a stage (at any offset) replaced by a
    read of that stage, and so every group of a sum's parts: the unroller flattens
    ``(a + b) + c`` into one sum, so ``sxx + syy`` arrives as the parts of both."""
    by_key = {s.key: s for s in stages}
    origin = layout.position(s0)

    def read(stage: _Stage, shift: Position) -> Term:
        at = tuple(o + d - a for o, d, a in zip(origin, shift, stage.anchor, strict=True))
        return StageSlot(stage.name, layout.slot(at))

    def grouped(parts: list[Term]) -> list[Term]:
        placed = [_placed(p, s0, layout) for p in parts]
        for stage in sorted(stages, key=lambda st: -len(st.key)):
            for shift in {at for p in placed if (at := _lowest(p)) is not None}:
                remaining = _shifted(dict(stage.key), shift)
                chosen = []
                for i, p in enumerate(placed):
                    if p and all(remaining.get(m) == c for m, c in p.items()):
                        chosen.append(i)
                        for m in p:
                            del remaining[m]
                if not remaining and 1 < len(chosen) < len(parts):
                    rest = [q for i, q in enumerate(parts) if i not in chosen]
                    return grouped([*rest, read(stage, shift)])
        return parts

    def go(x: Term) -> Term:
        if not _compound(x):
            return x
        key, shift = _canonical(x, s0, layout)
        stage = by_key.get(key)
        if stage is not None:
            return read(stage, shift)
        if isinstance(x, Add):
            parts = grouped([go(p) for p in x.parts])
            return parts[0] if len(parts) == 1 else Add(tuple(parts))
        if isinstance(x, Sub):
            return Sub(go(x.left), go(x.right))
        if isinstance(x, Mul):
            return Mul(go(x.left), go(x.right))
        if isinstance(x, Negate):
            return Negate(go(x.operand))
        assert isinstance(x, Power)
        return Power(go(x.base), x.exponent)

    return go(term)


# --- back to syntax ---------------------------------------------------------------------------


def _read(name: str, offset: Position, heads: tuple[str, ...], scalars: frozenset[str]) -> Read:
    """A read of ``name`` at ``offset`` from the head indices; a reduction (no heads)
    reads fixed elements, and its stages are scalars."""
    if name in scalars:
        return Read(name, ())
    if not heads:
        return Read(name, tuple(Num(o) for o in offset))
    return Read(name, tuple(shifted(h, d) for h, d in zip(heads, offset, strict=True)))


def _key_expr(key: Key, anchor: Position, heads: tuple[str, ...], scalars: frozenset[str]) -> Expr:
    """The stage's formula: ``key`` read from ``anchor`` on."""
    terms: list[Expr] = []
    for mono, c in key:
        counts = Counter(mono)
        factors: list[Expr] = []
        for (name, offset), k in sorted(counts.items()):
            at = tuple(o + a for o, a in zip(offset, anchor, strict=True))
            read = _read(name, at, heads, scalars)
            factors.append(read if k == 1 else Pow(read, k))
        if c % T != 1 or not factors:
            factors.insert(0, number(c))
        product = factors[0]
        for f in factors[1:]:
            product = BinOp("*", product, f)
        terms.append(product)
    return total(terms)


def _term_expr(
    t: Term, origin: Position, layout: _Layout, heads: tuple[str, ...], scalars: frozenset[str]
) -> Expr:
    """An unrolled term at output slot ``origin`` as a formula over the head indices."""

    def leaf(x: InputSlot | StageSlot) -> Expr:
        return _read(x.name, _minus(layout.position(x.slot), origin), heads, scalars)

    return term_expr(t, leaf)


def _box(
    key: Key, anchor: Position, boxes: Mapping[str, list[range]], shape: tuple[int, ...]
) -> list[range]:
    """The positions where every read of the stage stays inside its source's box."""
    box = [range(0, n) for n in shape]
    for mono, _ in key:
        for name, offset in mono:
            for axis, o in enumerate(offset):
                d, src = o + anchor[axis], boxes[name][axis]
                box[axis] = range(
                    max(box[axis].start, src.start - d), min(box[axis].stop, src.stop - d)
                )
    return box


def _where(box: list[range], heads: tuple[str, ...]) -> tuple[Comparison, ...]:
    return tuple(
        Comparison((Num(r.start), Name(h), Num(r.stop)), ("<=", "<"))
        for r, h in zip(box, heads, strict=True)
    )


def _staged_file(
    spec: Spec, term: Term, s0: int, layout: _Layout, stages: list[_Stage]
) -> SpecFile:
    source = spec.origin.source
    out = next(d for d in source.decls if isinstance(d, DefinitionAst) and d.role == "output")
    heads = out.indices
    scalars = frozenset(s.name for s in stages) if layout.scalar else frozenset()
    origin = layout.position(s0)
    boxes = {d.name: [range(0, n) for n in d.layout.shape] for d in spec.inputs}
    decls: list[Decl] = [d for d in source.decls if not isinstance(d, DefinitionAst)]
    for s in stages:
        formula = _key_expr(s.key, s.anchor, heads, scalars)
        if layout.scalar:
            where: tuple[Comparison, ...] = ()
        else:
            boxes[s.name] = box = _box(s.key, s.anchor, boxes, layout.shape)
            where = _where(box, heads)
        decls.append(DefinitionAst("stage", s.name, heads, out.layout, formula, where))
    expr = _term_expr(term, origin, layout, heads, scalars)
    decls.append(DefinitionAst("output", out.name, heads, out.layout, expr, out.where))
    return SpecFile(source.file, source.text, tuple(decls))
