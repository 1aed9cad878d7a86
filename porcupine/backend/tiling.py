"""How data of any size maps onto a kernel's ciphertexts, derived from the spec.

A kernel is compiled for one size; an application's data has any size. Three kinds of spec:

* **stencil** (elementwise included: no halo): every input and the output share one layout
  (``vector(n)`` or ``image(h, w)``) and every output element that matters is the same
  formula of the input elements at fixed offsets from it. Big data is cut into overlapping
  tiles of the kernel's size: per axis the formula reads ``reads = (lo, hi)`` elements before
  and after its output element (through stages too), and the elements that matter form the
  box ``[m_lo, size - m_hi)`` (``margins``: the spec's ``where``, distances from the border).
* **reduction**: a scalar output that is a sum over ``k`` of one polynomial ``g`` of the
  inputs' elements at index ``k``, with ``g(0) = 0``: a long vector is cut into chunks of the
  kernel's length (the last zero padded) and the chunks' outputs are summed.
* **fixed**: anything else (matrix products, cyclic reads, position-dependent formulas): the
  kernel takes data of its own size only; ``reason`` says why.

The kind is decided exactly, not by sampling: the spec is evaluated on symbolic inputs into
canonical polynomials (:func:`quill.verify.reference`), each output element's polynomial is
rewritten with its variables indexed relative to that element, and the rewritten polynomials
must agree (for a ``pad zero`` input, a term reading outside it vanishes, as the spec says).
This is done at the spec's smallest instance (its defaults, or the instance given if
smaller) and again with every param doubled; both must give the same tiling, so a formula
that changes with the size (a param used as a value, ``where i < 3``, a cyclic ``mod``) is
``fixed``. A spec without params is taken at its one size. :func:`tiling_constants` gives the
constants an emitted module's tiling section (:mod:`porcupine.backend.tiles`) reads.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from porcupine.backend.pytext import INDENT, LINE, bracketed, fits
from quill.errors import QuillError
from quill.poly import Poly
from quill.spec import InputDecl, Spec
from quill.verify import reference

Index = tuple[int, ...]
RelVar = tuple[int, Index]  # (input position in spec.inputs, offset from the output element)
Formula = frozenset[tuple[tuple[RelVar, ...], int]]
"""A formula relative to its output element: (term's variables, coefficient) pairs."""

KINDS = ("stencil", "reduction", "fixed")
_WINDOW = "no output element that matters reads its whole window"


@dataclass(frozen=True)
class Tiling:
    """What inputs of any size a kernel of a spec takes, and how they are cut.

    ``reads`` and ``margins`` have one ``(before, after)`` pair per axis of the common layout
    (stencil), ``((0, 0),)`` for a reduction (each term reads its own element; every element
    counts), and are empty for a fixed kernel. ``fill``: inputs whose declared range excludes
    0, with the value that fills the don't-care elements of a tile outside the data (every
    other input is filled with 0). ``reason``: why a kernel is fixed (empty otherwise).
    """

    kind: str
    reads: tuple[tuple[int, int], ...] = ()
    margins: tuple[tuple[int, int], ...] = ()
    fill: tuple[tuple[str, int], ...] = ()
    reason: str = ""


def _fixed(reason: str) -> tuple[Tiling, Formula]:
    return Tiling("fixed", reason=reason), frozenset()


def derive_tiling(spec: Spec) -> Tiling:
    """Classify ``spec`` as a stencil, a reduction or a fixed kernel (see the module doc).

    Derived at the spec's default instance, or at ``spec`` itself when it is smaller and
    tiles, and confirmed there with every param doubled; the result holds for the kernel
    at any size of the spec (the tile kernel may be a larger instance than the one derived
    at). A fixed kernel's reason is the default instance's.
    """
    default = spec.at()
    if spec.n < default.n:
        found = _confirmed(spec)
        if found.kind != "fixed":
            return found
    return _confirmed(default)


_KNOWN: dict[tuple[str, tuple[tuple[str, int], ...], tuple[str | None, ...]], Tiling] = {}


def _confirmed(base: Spec) -> Tiling:
    """The tiling at ``base``, confirmed with every param doubled; remembered per spec text
    and params (Harris takes seconds, and every emission of a kernel asks again)."""
    key = (base.origin.source.text, base.params, base.origin.steps)
    if key not in _KNOWN:
        _KNOWN[key] = _derived(base)
    return _KNOWN[key]


def _derived(base: Spec) -> Tiling:
    found, formula = _derive(base)
    if found.kind == "fixed" or not base.params:
        return found
    doubled = {name: 2 * value for name, value in base.params}
    at = ", ".join(f"{k} = {v}" for k, v in doubled.items())
    try:
        larger = base.at(doubled)
    except QuillError as e:
        return _fixed(
            f"the spec cannot be instantiated at twice its size ({at}: {e.message}), so its "
            f"formula cannot be confirmed to be the same at every size"
        )[0]
    again, formula_again = _derive(larger)
    if again == found and formula_again != formula:
        return _fixed(
            f"the formula changes with the size: at {at} its terms or coefficients differ "
            f"from those at {_params(base)} (a param used as a value?)"
        )[0]
    if again != found:
        what = again.reason if again.kind == "fixed" else f"reads {again.reads}"
        return _fixed(
            f"the formula changes with the size: {found.kind} with reads {found.reads} and "
            f"margins {found.margins} at {_params(base)}, but at {at}: {what}"
            + ("" if again.kind == "fixed" else f", margins {again.margins}")
        )[0]
    return found


def _params(spec: Spec) -> str:
    return ", ".join(f"{k} = {v}" for k, v in spec.params)


def tiling_at(spec: Spec) -> Tiling:
    """The tiling of ``spec`` at its own size alone, not confirmed at another size (what
    :func:`derive_tiling` computes at two sizes)."""
    return _derive(spec)[0]


def _derive(spec: Spec) -> tuple[Tiling, Formula]:
    """The tiling of ``spec`` at its size, and the formula each output element is."""
    for decl in spec.inputs:
        if not decl.zero_outside:
            return _fixed(f"input {decl.name}'s slots outside its layout are not zero")
    if spec.output.layout.kind == "scalar":
        return _reduction(spec)
    return _stencil(spec)


def _element_of(decl: InputDecl) -> dict[int, Index]:
    """Slot -> element index of an input's layout."""
    return {decl.layout.slot(i): i for i in decl.layout.indices()}


def _variables(spec: Spec) -> tuple[dict[int, tuple[int, Index]], dict[int, Poly]]:
    """The spec's polynomial at every output slot that matters, and every variable's input
    (its position in ``spec.inputs``) and element index."""
    ref = reference(spec)
    elements = [_element_of(d) for d in spec.inputs]
    position = {d.name: p for p, d in enumerate(spec.inputs)}
    where: dict[int, tuple[int, Index]] = {}
    for v, (name, slot) in ref.sym.var_slot.items():
        p = position[name]
        where[v] = (p, elements[p][slot])
    return where, ref.polys


def _fill(decl: InputDecl) -> int:
    """The value nearest 0 in ``decl``'s declared range (0 when it has none)."""
    bounds = decl.value_bounds()
    return 0 if bounds is None else min(max(0, bounds[0]), bounds[1])


def _describe(spec: Spec, var: tuple[int, Index]) -> str:
    p, index = var
    return spec.inputs[p].name + "".join(f"[{i}]" for i in index)


# --- stencils ------------------------------------------------------------------------------


def _box(region: Sequence[Index], shape: Index) -> tuple[tuple[int, int], ...] | None:
    """``(m_lo, m_hi)`` per axis when ``region`` is exactly the box ``[m_lo, size - m_hi)``."""
    if not region:
        return None
    lows = [min(i[a] for i in region) for a in range(len(shape))]
    highs = [max(i[a] for i in region) for a in range(len(shape))]
    volume = 1
    for lo, hi in zip(lows, highs, strict=True):
        volume *= hi - lo + 1
    if volume != len(set(region)):
        return None
    return tuple((lo, size - 1 - hi) for lo, hi, size in zip(lows, highs, shape, strict=True))


class _Codes:
    """Relative variables as integers: input ``p``, offset ``off`` from the output element
    is ``p * volume + sum((off[a] + 2 * size[a]) * stride[a])`` over extents of
    ``4 * size[a]``, so re-indexing a variable relative to output element ``o`` is one
    subtraction (of ``shift(o)``) and codes of different offsets never collide."""

    def __init__(self, shape: Index) -> None:
        self.shape = shape
        self.extents = tuple(4 * s for s in shape)
        strides, acc = [], 1
        for e in reversed(self.extents):
            strides.append(acc)
            acc *= e
        self.strides = tuple(reversed(strides))
        self.volume = acc

    def code(self, p: int, offset: Index) -> int:
        return p * self.volume + self.shift(
            tuple(o + 2 * s for o, s in zip(offset, self.shape, strict=True))
        )

    def shift(self, o: Index) -> int:
        return sum(i * st for i, st in zip(o, self.strides, strict=True))

    def decode(self, code: int) -> tuple[int, Index]:
        p, rest = divmod(code, self.volume)
        offset = []
        for st, e, s in zip(self.strides, self.extents, self.shape, strict=True):
            offset.append((rest // st) % e - 2 * s)
        return p, tuple(offset)


def _stencil(spec: Spec) -> tuple[Tiling, Formula]:
    out = spec.output
    layout = out.layout
    for decl in spec.inputs:
        if decl.layout != layout:
            return _fixed(
                f"input {decl.name} is {decl.layout} but the output is {layout}: a stencil's "
                "inputs and output share one layout"
            )
        if decl.pad and _fill(decl) != 0:
            return _fixed(
                f"input {decl.name} is read as 0 outside its shape (pad zero) but its "
                f"declared range {decl.value_bounds()} excludes 0, which tiles are padded with"
            )
    margins = _box(out.region, layout.shape)
    if margins is None:
        return _fixed(
            f"the elements of output {out.name} that matter (its where) do not form a box "
            "[m_lo, size - m_hi) per axis"
        )
    where, polys = _variables(spec)
    shape = layout.shape
    codes = _Codes(shape)
    base = {v: codes.code(p, e) for v, (p, e) in where.items()}

    def head(o: Index) -> str:
        return out.name + "".join(f"[{i}]" for i in o)

    # Each output's polynomial with its variables relative to the output element.
    rels: dict[Index, dict[tuple[int, ...], int]] = {}
    for o in out.region:
        s = codes.shift(o)
        rels[o] = {
            tuple(sorted(base[v] - s for v in m)): c for m, c in polys[layout.slot(o)].items()
        }
    # The formula: every relative term any output has, with one coefficient everywhere.
    formula: dict[tuple[int, ...], int] = {}
    origin: dict[tuple[int, ...], Index] = {}
    for o, rel in rels.items():
        for m, c in rel.items():
            if formula.setdefault(m, c) != c:
                return _fixed(
                    f"{head(o)} and {head(origin[m])} weigh the same relative term with "
                    "different coefficients: the formula depends on the position"
                )
            origin.setdefault(m, o)
    decoded = {m: [codes.decode(c) for c in m] for m in formula}
    pad = [d.pad for d in spec.inputs]
    for o, rel in rels.items():
        expected = dict(formula) if any(pad) else formula
        for m, vs in decoded.items() if any(pad) else ():
            outside = [
                p
                for p, off in vs
                if not all(0 <= a + b < n for a, b, n in zip(o, off, shape, strict=True))
            ]
            if any(pad[p] for p in outside):
                del expected[m]  # a read outside a pad-zero input is 0, and so is the term
        if expected != rel:
            m = next(
                m
                for m in expected.keys() ^ rel.keys()
                | {m for m in rel if rel[m] != expected.get(m)}
            )
            term = (
                " * ".join(
                    _describe(spec, (p, tuple(a + b for a, b in zip(o, off, strict=True))))
                    for p, off in (codes.decode(c) for c in m)
                )
                or "the constant"
            )
            return _fixed(
                f"{head(o)} is not {head(origin[m])}'s formula moved to its position (they "
                f"differ in {term}): the formula depends on the position or wraps around"
            )
    offsets = [off for vs in decoded.values() for _, off in vs]
    reads = tuple(
        (max([0, *(-off[a] for off in offsets)]), max([0, *(off[a] for off in offsets)]))
        for a in range(len(shape))
    )
    if any(
        max(lo, m_lo) + max(hi, m_hi) >= size
        for (lo, hi), (m_lo, m_hi), size in zip(reads, margins, shape, strict=True)
    ):
        return _fixed(
            f"at {_params(spec)} {_WINDOW} "
            f"(reads {reads}, margins {margins}): a read wraps around the border, or the "
            "spec's size is too small for its window"
        )
    fill = tuple((d.name, _fill(d)) for d in spec.inputs if _fill(d) != 0)
    relative = frozenset((tuple(decoded[m]), c) for m, c in formula.items())
    return Tiling("stencil", reads, margins, fill), relative


# --- reductions ----------------------------------------------------------------------------


def _reduction(spec: Spec) -> tuple[Tiling, Formula]:
    shapes = {d.layout.shape for d in spec.inputs}
    if not spec.inputs or any(d.layout.kind != "vector" for d in spec.inputs) or len(shapes) > 1:
        layouts = ", ".join(f"{d.name}: {d.layout}" for d in spec.inputs)
        return _fixed(
            f"a scalar output over inputs {layouts}: a reduction's inputs are vectors of one length"
        )
    for decl in spec.inputs:
        if _fill(decl) != 0:
            return _fixed(
                f"input {decl.name}'s declared range {decl.value_bounds()} excludes 0, which "
                "the last chunk is padded with"
            )
    (n,) = shapes.pop()
    where, polys = _variables(spec)
    (poly,) = polys.values()
    terms: dict[int, dict[tuple[int, ...], int]] = {}
    for m, c in poly.items():
        if not m:
            return _fixed(
                f"the output has a constant term ({c}): every zero-padded chunk would add it"
            )
        ks = {where[v][1] for v in m}
        if len(ks) > 1:
            shown = " * ".join(_describe(spec, where[v]) for v in m)
            return _fixed(
                f"the output multiplies elements at different indices ({shown}): it is not a "
                "sum of one term per index, so chunks cannot be summed"
            )
        ((k,),) = ks
        terms.setdefault(k, {})[tuple(sorted(where[v][0] for v in m))] = c
    g = terms.get(0, {})
    for k in range(n):
        if terms.get(k, {}) != g:
            return _fixed(
                f"index {k} contributes another polynomial than index 0: the output is not "
                "one term summed over every index"
            )
    relative = frozenset((tuple((p, (0,)) for p in m), c) for m, c in g.items())
    return Tiling("reduction", ((0, 0),), ((0, 0),)), relative


# --- the emitted constants -----------------------------------------------------------------


def _pairs(pairs: Iterable[tuple[int, int]]) -> str:
    items = [f"({a}, {b})" for a, b in pairs]
    if len(items) == 1:
        return f"({items[0]},)"
    return f"({', '.join(items)})"


def tiling_constants(tiling: Tiling) -> list[str]:
    """The Python source lines of the constants an emitted module's tiling section
    (:mod:`porcupine.backend.tiles`) reads, one statement a line, for its constants block."""
    fill = [f"{json.dumps(name)}: {value}" for name, value in tiling.fill]
    return [
        "# How data of any size maps onto this kernel (porcupine.backend.tiling): a stencil",
        "# cuts it into tiles with halos, a reduction into chunks; a fixed kernel takes its",
        "# own size only. Per axis: (before, after).",
        f'TILE_KIND = "{tiling.kind}"  # "stencil", "reduction" or "fixed"',
        f"TILE_READS: tuple[tuple[int, int], ...] = {_pairs(tiling.reads)}",
        f"TILE_MARGINS: tuple[tuple[int, int], ...] = {_pairs(tiling.margins)}",
        *bracketed("TILE_FILL: dict[str, int] = {", fill, "}"),
        *_string("TILE_REASON", tiling.reason),
    ]


def _string(name: str, text: str) -> list[str]:
    """``name = "text"``, split into implicitly joined pieces when it is too long."""
    one = f"{name} = {json.dumps(text, ensure_ascii=False)}"
    if fits(one):
        return [one]
    pieces = textwrap.wrap(text, LINE - 8, drop_whitespace=False, break_on_hyphens=False)
    return [f"{name} = (", *(f"{INDENT}{json.dumps(p, ensure_ascii=False)}" for p in pieces), ")"]
