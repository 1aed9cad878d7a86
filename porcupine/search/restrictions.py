"""Instruction restrictions: which ops, rotation amounts and constants a sketch may use.

Derived from the spec's exact reference polynomials alone, so a spec needs no hints: a
slot's polynomial names the input slots it reads (hence the rotation offsets), its degree
in ciphertext variables (hence whether ct*ct multiplies are needed, and how deep) and its
coefficients (hence the plaintext constants). Spec hints, where given, override a choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from quill.ops import Opcode
from quill.ranges import residue
from quill.slots import normalize_amount
from quill.verify import Reference

MAX_DERIVED_ROTATIONS = 12
"""Past this many candidate amounts (a reduction over many slots), keep powers of two."""


@dataclass(frozen=True)
class Restrictions:
    """The instruction set of a sketch."""

    ops: tuple[Opcode, ...]
    rotations: tuple[int, ...]  # non-zero amounts in (-n/2, n/2]
    constants: tuple[int, ...]  # plaintext splat constants available as operands
    max_depth: int  # ct*ct multiplicative depth bound
    ct_degree: int  # degree of the spec in ciphertext variables
    window: int | None = None  # the amount of the ``sum`` op, when ops offer it

    def describe(self) -> str:
        ops = ", ".join(f"{op.value}({self.window})" if op.sums else op.value for op in self.ops)
        rots = ", ".join(str(r) for r in self.rotations)
        consts = f"; constants {list(self.constants)}" if self.constants else ""
        return f"ops {{{ops}}}; rotations {{{rots}}}; depth <= {self.max_depth}{consts}"


def derive(ref: Reference) -> Restrictions:
    """The restrictions for a spec: derived from its reference, overridden by its hints."""
    spec, hints = ref.spec, ref.spec.hints
    degree = ref.ct_degree
    constants = hints.constants if hints.constants is not None else derive_constants(ref)
    ops = hints.ops if hints.ops is not None else derive_ops(ref, degree, constants)
    if hints.rotations is not None:
        rotations = _normalized(hints.rotations, spec.n)
    else:
        rotations = derive_rotations(ref)
    window = spec.n if any(op.sums for op in ops) else None
    depth = max(0, (degree - 1).bit_length())  # ceil(log2(degree))
    return Restrictions(tuple(ops), rotations, tuple(constants), depth, degree, window)


MAX_DERIVED_CONSTANTS = 6
"""More literals than this (a formula weighting by its index, say) are not all offered."""


def derive_constants(ref: Reference) -> tuple[int, ...]:
    """The magnitudes of the constants the spec's formula is written with, other than 0 and
    1 (a kernel scales by them or adds them), and of its constant terms, smallest first.
    Coefficients that only arise from expanding the formula, like the 2 of (a - b)^2, are
    not offered: the formula's own shape is the better guide."""
    found = {abs(residue(c)) for c in ref.spec.literals()} - {0, 1}
    # A constant term is added as it is, 1 included (3x^3 + 2x^2 + x + 1 ends in + 1).
    found |= {abs(residue(p[()])) for p in ref.polys.values() if () in p}
    return tuple(sorted(found)[:MAX_DERIVED_CONSTANTS])


def derive_ops(ref: Reference, degree: int, constants: tuple[int, ...]) -> list[Opcode]:
    """Add and subtract always; ct*ct multiplies for degree 2 and up; ct*pt multiplies
    when a plaintext input multiplies a ciphertext one or a constant scales; ct+pt when
    the spec has terms without ciphertext variables, or constants meet products (as in
    s * (2 - s))."""
    ct = ref.ct_vars
    monomials = [m for p in ref.polys.values() for m in p]
    ops = [Opcode.ADD_CC, Opcode.SUB_CC]
    if degree >= 2:
        ops.append(Opcode.MUL_CC)
    mixed = any(any(v in ct for v in m) and any(v not in ct for v in m) for m in monomials)
    if constants or mixed:
        ops.append(Opcode.MUL_CP)
    # In a linear kernel without constant terms, a ct+pt add only adds a constant that must
    # cancel again: dropping it gives a cheaper kernel, so it is never needed.
    plain_terms = any(not any(v in ct for v in m) for m in monomials)
    if plain_terms or (constants and degree >= 2):
        ops += [Opcode.ADD_CP, Opcode.SUB_CP]
    if reduction(ref):  # the library's EvalSum adds up every slot
        ops.append(Opcode.SUM)
    return ops


def reduction(ref: Reference) -> bool:
    """Whether a slot that matters reads every element of an input (a full reduction)."""
    return any(
        len(found) >= max(4, ref.spec.input(name).layout.size)
        for slot in ref.polys
        for name, found in ref.offsets(slot).items()
    )


def _normalized(amounts: tuple[int, ...] | list[int] | set[int], n: int) -> tuple[int, ...]:
    out = {normalize_amount(k, n) for k in amounts} - {0}
    return tuple(sorted(out, key=lambda k: (abs(k), k)))


def derive_rotations(ref: Reference) -> tuple[int, ...]:
    """The offsets between the slots a result reads and the slot it lands in; on images
    also their row and column parts (a separable stencil rotates by whole rows and whole
    columns); for a reduction (a slot reading every element of an input), the powers of
    two."""
    n = ref.spec.n
    offsets = {o for slot in ref.polys for found in ref.offsets(slot).values() for o in found}
    widths = {d.layout.shape[1] for d in ref.spec.inputs if d.layout.kind == "image"}
    for w in widths:
        for o in list(offsets):
            rows = round(o / w)
            offsets |= {rows * w, o - rows * w}
    rotations = _normalized(offsets, n)
    if reduction(ref) or len(rotations) > MAX_DERIVED_ROTATIONS:
        powers = {1 << i for i in range(n.bit_length() - 1)}
        rotations = _normalized(powers | {-p for p in powers}, n)
    return rotations


def axis_rotations(ref: Reference, rotations: tuple[int, ...]) -> tuple[int, ...] | None:
    """For an image spec, the whole-row and whole-column steps among ``rotations`` (a
    separable stencil needs no others): a smaller sketch the search tries first, to find a
    good kernel fast; ``None`` when that would not be smaller."""
    widths = {d.layout.shape[1] for d in ref.spec.inputs if d.layout.kind == "image"}
    if len(widths) != 1:
        return None
    w = widths.pop()
    axis = tuple(r for r in rotations if abs(r) == 1 or abs(r) == w)
    return axis if axis and len(axis) < len(rotations) else None
