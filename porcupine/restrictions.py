"""Instruction restrictions: which ops, rotation amounts and constants a sketch may use.

Derived from the spec's exact reference polynomials, so they need no knowledge of the spec's
syntax: a slot's polynomial names the input slots it reads (hence the rotation offsets) and
its degree in ciphertext variables (hence whether ct*ct multiplies are needed, and how deep).
Spec hints override each derived choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from porcupine.verify import SymbolicInputs, spec_polynomials, symbolic_inputs
from quill.ops import Kind, Opcode
from quill.poly import Poly
from quill.slots import normalize_amount
from quill.spec import Spec

MAX_DERIVED_ROTATIONS = 12
"""Past this many candidate amounts, keep offsets and powers of two only (reductions)."""


@dataclass(frozen=True)
class Restrictions:
    """The instruction set of a sketch."""

    ops: tuple[Opcode, ...]
    rotations: tuple[int, ...]  # non-zero amounts in (-n/2, n/2]
    constants: tuple[int, ...]  # plaintext splat constants available as operands
    max_depth: int  # ct*ct multiplicative depth bound
    ct_degree: int  # degree of the spec in ciphertext variables

    def describe(self) -> str:
        ops = ", ".join(op.value for op in self.ops)
        rots = ", ".join(str(r) for r in self.rotations)
        consts = f"; constants {list(self.constants)}" if self.constants else ""
        return f"ops {{{ops}}}; rotations {{{rots}}}; depth <= {self.max_depth}{consts}"


def derive(spec: Spec) -> Restrictions:
    """The restrictions for ``spec``: derived from its reference, overridden by its hints."""
    sym = symbolic_inputs(spec)
    polys = spec_polynomials(spec, sym)
    degree = _ct_degree(spec, sym, polys)
    ops = spec.hints.ops if spec.hints.ops is not None else _derive_ops(spec, sym, polys, degree)
    if spec.hints.rotations is not None:
        rotations = _normalized(spec.hints.rotations, spec.n)
    else:
        rotations = _derive_rotations(spec, sym, polys)
    constants = spec.hints.constants or ()
    depth = max(0, (degree - 1).bit_length())  # ceil(log2(degree))
    return Restrictions(tuple(ops), rotations, tuple(constants), depth, degree)


def _ct_degree(spec: Spec, sym: SymbolicInputs, polys: dict[int, Poly]) -> int:
    ct = {v for v, (name, _) in sym.var_slot.items() if spec.input(name).kind is Kind.CT}
    return max((sum(1 for v in m if v in ct) for p in polys.values() for m in p), default=0)


def _derive_ops(
    spec: Spec, sym: SymbolicInputs, polys: dict[int, Poly], degree: int
) -> list[Opcode]:
    ct = {v for v, (name, _) in sym.var_slot.items() if spec.input(name).kind is Kind.CT}
    monomials = [m for p in polys.values() for m in p]
    ops = [Opcode.ADD_CC, Opcode.SUB_CC]
    if degree >= 2:
        ops.append(Opcode.MUL_CC)
    # A plaintext variable multiplying ciphertext ones needs ct*pt; a term with no
    # ciphertext variable at all (a plaintext or constant term) needs ct+pt.
    if any(any(v in ct for v in m) and any(v not in ct for v in m) for m in monomials):
        ops.append(Opcode.MUL_CP)
    if any(not any(v in ct for v in m) for m in monomials) or spec.hints.constants:
        ops += [Opcode.ADD_CP, Opcode.SUB_CP]
    if spec.hints.constants:
        ops.append(Opcode.MUL_CP) if Opcode.MUL_CP not in ops else None
    return ops


def _normalized(amounts: tuple[int, ...] | list[int] | set[int], n: int) -> tuple[int, ...]:
    out = {normalize_amount(k, n) for k in amounts} - {0}
    return tuple(sorted(out, key=lambda k: (abs(k), k)))


def _derive_rotations(spec: Spec, sym: SymbolicInputs, polys: dict[int, Poly]) -> tuple[int, ...]:
    """Offsets between the slots a result reads and the slot it lands in, their differences
    and, when that is too many (a reduction), the offsets' powers of two."""
    n = spec.n
    offsets = {
        normalize_amount(sym.var_slot[v][1] - slot, n)
        for slot, p in polys.items()
        for m in p
        for v in m
    }
    candidates = set(offsets) | {a - b for a in offsets for b in offsets}
    rotations = _normalized(candidates, n)
    if len(rotations) > MAX_DERIVED_ROTATIONS:
        powers = {1 << i for i in range(n.bit_length() - 1)}
        rotations = _normalized(powers | {-p for p in powers}, n)
    return rotations


@dataclass(frozen=True)
class Dependencies:
    """Which input variables each output slot's spec polynomial reads, as bit masks."""

    needed: dict[int, int]  # output slot -> mask of variables
    leaf_vars: dict[str, dict[int, int]]  # input name -> slot -> its variable's bit


def dependencies(spec: Spec) -> Dependencies:
    """The spec's input dependencies per output slot that matters."""
    sym = symbolic_inputs(spec)
    polys = spec_polynomials(spec, sym)
    needed = {slot: sum({1 << v for m in p for v in m}) for slot, p in polys.items()}
    leaf_vars: dict[str, dict[int, int]] = {}
    for v, (name, slot) in sym.var_slot.items():
        leaf_vars.setdefault(name, {})[slot] = 1 << v
    return Dependencies(needed, leaf_vars)
