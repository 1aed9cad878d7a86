"""Why a search found nothing: name what the sketch lacks, not just "more components".

A sketch can fail for reasons no number of components fixes: the instruction set lacks an
op the formula needs (a hinted op list without a ct*ct multiply, say), the allowed
rotations cannot bring an input slot to the output slot, or the formula differs from slot
to slot, which slot-wise ops and rotations cannot do without a per-slot mask. Each check
here is a sound reason; only when none applies does the message ask for a larger sketch.
"""

from __future__ import annotations

from porcupine.search.restrictions import Restrictions
from quill.verify import Reference

Position = tuple[int, ...]


def why_nothing(ref: Reference, restrictions: Restrictions, components: int) -> str:
    """The most specific reason no kernel of at most ``components`` components exists in
    the sketch of ``restrictions``."""
    for check in (_missing_op, _varies_by_slot, _unreachable_offset):
        reason = check(ref, restrictions, components)
        if reason:
            return reason
    return (
        f"no kernel with at most {components} components exists in the sketch "
        f"({restrictions.describe()}); allow more components (--max-components or "
        "`hint components`), or more ops or rotations (`hint ops` / `hint rotations`)"
    )


def _missing_op(ref: Reference, restrictions: Restrictions, components: int) -> str:
    ops, ct = set(restrictions.ops), ref.ct_vars
    monomials = [m for p in ref.polys.values() for m in p]
    if ref.ct_degree >= 2 and not any(op.multiplies_ciphertexts for op in ops):
        return (
            f"the formula multiplies ciphertexts (degree {ref.ct_degree}) but the ops "
            f"({restrictions.describe()}) have no ct*ct multiply: add mul_cc to `hint ops`"
        )
    mixed = any(any(v in ct for v in m) and any(v not in ct for v in m) for m in monomials)
    if mixed and not any(op.info.multiplies_plaintext for op in ops):
        return "the formula multiplies a ciphertext by a plaintext input: add mul_cp to `hint ops`"
    alone = any(not any(v in ct for v in m) for m in monomials)
    if alone and not any(op.info.adds_plaintext for op in ops):
        return (
            "the formula has terms without a ciphertext (a constant or a plaintext input "
            "alone): add add_cp to `hint ops`"
        )
    return ""


def _shape(ref: Reference, slot: int) -> frozenset[tuple[tuple[tuple[str, Position], ...], int]]:
    """The polynomial at ``slot`` with its leaves as (input, offset from ``slot``)."""
    out = set()
    for m, c in ref.polys[slot].items():
        leaves = []
        for v in m:
            name, s = ref.sym.var_slot[v]
            leaves.append((name, _position(ref, name, s, slot)))
        out.add((tuple(sorted(leaves)), c))
    return frozenset(out)


def _position(ref: Reference, name: str, s: int, origin: int) -> Position:
    shape = ref.spec.input(name).layout.shape
    if len(shape) == 2:
        (r, c), (r0, c0) = divmod(s, shape[1]), divmod(origin, shape[1])
        return (r - r0, c - c0)
    return (s - origin,)


def varying_slots(ref: Reference) -> tuple[int, int] | None:
    """Two output slots that compute different formulas relative to their own position,
    when no zero padding explains it: slot-wise ops and rotations cannot do that without
    a per-slot mask."""
    if any(d.layout.size < ref.spec.n for d in ref.spec.inputs):
        return None  # zero padding makes formulas differ legitimately
    slots = sorted(ref.polys)
    first = _shape(ref, slots[0])
    return next(((slots[0], s) for s in slots[1:] if _shape(ref, s) != first), None)


def _varies_by_slot(ref: Reference, restrictions: Restrictions, components: int) -> str:
    pair = varying_slots(ref)
    if pair is None:
        return ""
    return (
        f"output slots {pair[0]} and {pair[1]} compute different formulas (relative to their "
        "own position), but a kernel of slot-wise ops and rotations computes the same "
        "formula at every slot: this spec needs a per-slot mask (a ct*pt multiply by a 0/1 "
        "plaintext), which the sketch does not offer"
    )


def _unreachable_offset(ref: Reference, restrictions: Restrictions, components: int) -> str:
    """An input slot the output reads at an offset no sum of allowed rotations reaches."""
    n = ref.spec.n
    if any(op.sums for op in restrictions.ops):
        return ""
    reach = {0}
    for _ in range(2 * components):  # each component rotates at most two operands
        reach |= {(r + k) % n for r in reach for k in restrictions.rotations}
    for slot in ref.polys:
        for name, offsets in ref.offsets(slot).items():
            missing = sorted(o for o in offsets if o % n not in reach)
            if missing:
                return (
                    f"output slot {slot} reads {name} at offset {missing[0]}, which no sum of "
                    f"the allowed rotations {list(restrictions.rotations)} reaches: allow it in "
                    "`hint rotations`"
                )
    return ""
