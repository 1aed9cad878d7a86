"""The smallest instance of a spec that determines its kernel.

A 3x3 blur on an 8x8 image and on a 4x4 one compute the same formula at every pixel that
matters; the solver finds the 4x4 kernel in a fraction of the time (16 slot variables
instead of 64), and :mod:`porcupine.staging.scale` lifts it. :func:`smallest_instance` halves the
spec's params as long as the formula at a slot that matters keeps its shape (the same
polynomial, as offsets from that slot) and images keep at least :data:`MIN_SIDE` pixels a
side (so rotation amounts still decompose into unambiguous row and column offsets). A
reduction to one slot keeps its shape when it is the same sum of shifted copies of one
term (a dot product of 8 or of 4 elements).

The shape is a strong hint, not a proof: the lifted kernel is verified at the full size
like any other, and the synthesizer falls back to the full size when it is wrong.
"""

from __future__ import annotations

from quill.errors import QuillError
from quill.poly import Poly
from quill.spec import Spec
from quill.verify import SymbolicInputs, symbolic_inputs

MIN_SIDE = 4
"""The smallest image side or vector length tried."""

Monomial = tuple[tuple[str, tuple[int, ...]], ...]  # (input, position) leaves
Shape = tuple[tuple[Monomial, int], ...]


def smallest_instance(spec: Spec) -> Spec | None:
    """The smallest instance of ``spec`` (its params halved) with the same shape, or
    ``None`` when no smaller one has it."""
    shape = _shape(spec)
    if shape is None:
        return None
    best: Spec | None = None
    params = dict(spec.params)
    shrinking = True
    while shrinking:
        shrinking = False
        for name, value in list(params.items()):
            trial = {**params, name: value // 2}
            try:
                small = spec.at(trial)
            except QuillError:
                continue
            current = best or spec
            if small.n >= current.n or not _large_enough(small):
                continue
            if _shape(small) != shape:
                continue
            params, best, shrinking = trial, small, True
    return best


def elementwise(spec: Spec) -> bool:
    """Whether every slot that matters reads only the same slot of its inputs."""
    shape = _shape(spec)
    return (
        spec.output.layout.kind != "scalar"
        and shape is not None
        and all(not any(at) for m, _ in shape for _, at in m)
    )


def _large_enough(spec: Spec) -> bool:
    """Images keep MIN_SIDE pixels a side, and an output that is not a reduction keeps two
    slots that matter per dimension: at one slot, a kernel may lean on coincidences of the
    wrap-around that no larger instance shares (Harris at 4x4, one slot: it did not lift)."""
    if not all(side >= MIN_SIDE for d in spec.inputs for side in d.layout.shape):
        return False
    rank = len(spec.output.layout.shape)
    return spec.output.layout.kind == "scalar" or len(spec.output_slots()) >= 2**rank


def _position(spec: Spec, name: str, slot: int) -> tuple[int, ...]:
    shape = spec.input(name).layout.shape
    return divmod(slot, shape[1]) if len(shape) == 2 else (slot,)


def _shape(spec: Spec) -> Shape | None:
    """The polynomial at the middle slot that matters as offsets from that slot, or for a
    one-slot reduction the terms through its first element, when it is a sum of shifted
    copies of them; ``None`` when neither applies."""
    slots = spec.output_slots()
    slot = slots[len(slots) // 2]
    sym = symbolic_inputs(spec)
    poly: Poly = spec.evaluate(sym.ring, sym.vectors, [slot])[slot]  # one slot: cheap
    reduction = spec.output.layout.kind == "scalar"
    monomials: list[tuple[Monomial, int]] = []
    for m, c in poly.items():
        leaves = []
        for v in m:
            name, s = sym.var_slot[v]
            at = _position(spec, name, s)
            if not reduction:
                at = tuple(a - b for a, b in zip(at, _position(spec, name, slot), strict=False))
            leaves.append((name, at))
        monomials.append((tuple(sorted(leaves)), c))
    if not reduction:
        return tuple(sorted(monomials))
    return _reduction_shape(spec, sym, monomials)


def _reduction_shape(
    spec: Spec, sym: SymbolicInputs, monomials: list[tuple[Monomial, int]]
) -> Shape | None:
    """The monomials that read element 0 of some input, as offsets from it, when every
    monomial is one of them shifted along the inputs (a full reduction)."""
    layouts = {spec.input(name).layout for m, _ in monomials for name, _ in m}
    if len(layouts) != 1 or (layout := layouts.pop()).kind != "vector":
        return None
    n = layout.size

    def shifted(m: Monomial, by: int) -> Monomial:
        return tuple(sorted((name, ((at[0] + by) % n,)) for name, at in m))

    terms = dict(monomials)
    base = {m: c for m, c in terms.items() if any(at == (0,) for _, at in m)}
    for m, c in base.items():
        if any(terms.get(shifted(m, k)) != c for k in range(n)):
            return None
    if sum(1 for _ in terms) != len({shifted(m, k) for m in base for k in range(n)}):
        return None
    lowest = {m: min(at[0] for _, at in m) for m in base}
    return tuple(sorted((shifted(m, -lowest[m]), c) for m, c in base.items()))
