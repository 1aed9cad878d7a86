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


@dataclass(frozen=True)
class Reference:
    """The spec's exact reference: symbolic inputs and a polynomial per output slot that
    matters. Computed once per search; restrictions, dependencies and the soundness bound
    all read it."""

    spec: Spec
    sym: SymbolicInputs
    polys: dict[int, Poly]

    @property
    def ct_vars(self) -> set[int]:
        """Variables of ciphertext inputs."""
        kinds = {d.name: d.kind for d in self.spec.inputs}
        return {v for v, (name, _) in self.sym.var_slot.items() if kinds[name] is Kind.CT}


def reference(spec: Spec) -> Reference:
    """Evaluate ``spec`` on symbolic inputs."""
    sym = symbolic_inputs(spec)
    return Reference(spec, sym, spec_polynomials(spec, sym))


def derive(ref: Reference) -> Restrictions:
    """The restrictions for a spec: derived from its reference, overridden by its hints."""
    spec, ct = ref.spec, ref.ct_vars
    monomials = [m for p in ref.polys.values() for m in p]
    degree = max((sum(1 for v in m if v in ct) for m in monomials), default=0)
    ops = spec.hints.ops if spec.hints.ops is not None else _derive_ops(ref, ct, degree)
    if spec.hints.rotations is not None:
        rotations = _normalized(spec.hints.rotations, spec.n)
    else:
        rotations = _derive_rotations(ref)
    constants = spec.hints.constants or ()
    depth = max(0, (degree - 1).bit_length())  # ceil(log2(degree))
    return Restrictions(tuple(ops), rotations, tuple(constants), depth, degree)


def _derive_ops(ref: Reference, ct: set[int], degree: int) -> list[Opcode]:
    monomials = [m for p in ref.polys.values() for m in p]
    constants = bool(ref.spec.hints.constants)
    ops = [Opcode.ADD_CC, Opcode.SUB_CC]
    if degree >= 2:
        ops.append(Opcode.MUL_CC)
    # A plaintext variable multiplying ciphertext ones needs ct*pt (so does scaling by a
    # hinted constant); a term with no ciphertext variable at all needs ct+pt.
    if constants or any(any(v in ct for v in m) and any(v not in ct for v in m) for m in monomials):
        ops.append(Opcode.MUL_CP)
    if constants or any(not any(v in ct for v in m) for m in monomials):
        ops += [Opcode.ADD_CP, Opcode.SUB_CP]
    return ops


def _normalized(amounts: tuple[int, ...] | list[int] | set[int], n: int) -> tuple[int, ...]:
    out = {normalize_amount(k, n) for k in amounts} - {0}
    return tuple(sorted(out, key=lambda k: (abs(k), k)))


def _derive_rotations(ref: Reference) -> tuple[int, ...]:
    """Offsets between the slots a result reads and the slot it lands in, their differences
    and, when that is too many (a reduction), the offsets' powers of two."""
    n = ref.spec.n
    offsets = {
        normalize_amount(ref.sym.var_slot[v][1] - slot, n)
        for slot, p in ref.polys.items()
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


def dependencies(ref: Reference) -> Dependencies:
    """The spec's input dependencies per output slot that matters."""
    needed = {slot: sum({1 << v for m in p for v in m}) for slot, p in ref.polys.items()}
    leaf_vars: dict[str, dict[int, int]] = {}
    for v, (name, slot) in ref.sym.var_slot.items():
        leaf_vars.setdefault(name, {})[slot] = 1 << v
    return Dependencies(needed, leaf_vars)
