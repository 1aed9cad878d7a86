"""Exact verification: a Quill program equals its spec on every output slot that matters,
for all inputs in the declared domain, or here is an input on which it does not.

Both sides are evaluated on symbolic inputs into canonical polynomials over Z_T
(:mod:`quill.poly`), so equality is a proof, not a sample. A difference is turned into a
concrete counterexample and re-checked with the numpy interpreter and the spec's own
reference evaluator, so a reported counterexample really distinguishes the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from quill.errors import QuillSemanticError
from quill.interp import Slots, evaluate_at_slots, interpret
from quill.ir import Program
from quill.ops import Kind
from quill.poly import Poly, PolyRing, evaluate_at, variables
from quill.slots import T, normalize_amount
from quill.spec import Domain, InputDecl, Spec

Inputs = dict[str, Slots]


@dataclass(frozen=True)
class Mismatch:
    """A concrete input on which program and spec differ, at ``slot``."""

    inputs: Inputs
    slot: int
    expected: int
    got: int


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`verify`: ``ok``, or a counterexample."""

    ok: bool
    counterexample: Mismatch | None = None


@dataclass(frozen=True)
class SymbolicInputs:
    """One variable per input slot its layout covers; uncovered slots are 0 by layout."""

    vectors: dict[str, list[Poly]]
    var_slot: dict[int, tuple[str, int]]  # variable id -> (input, slot)
    ring: PolyRing


def input_slots(decl: InputDecl, n: int) -> Sequence[int]:
    """The slots of an input that carry values: its layout's, or all of them when the slots
    outside the layout are not known to be 0 (a stage computed by an earlier step)."""
    return decl.layout.slots() if decl.zero_outside else range(n)


def symbolic_inputs(spec: Spec) -> SymbolicInputs:
    """Symbolic slot vectors for every input of ``spec``."""
    vectors: dict[str, list[Poly]] = {}
    var_slot: dict[int, tuple[str, int]] = {}
    bits: list[int] = []
    for decl in spec.inputs:
        vec: list[Poly] = [{} for _ in range(spec.n)]
        for s in input_slots(decl, spec.n):
            v = len(var_slot)
            var_slot[v] = (decl.name, s)
            vec[s] = {(v,): 1}
            if decl.domain is Domain.BITS:
                bits.append(v)
        vectors[decl.name] = vec
    return SymbolicInputs(vectors, var_slot, PolyRing(bits))


def check_signature(program: Program, spec: Spec) -> None:
    """Raise a :class:`QuillSemanticError` unless ``program`` takes exactly the spec's inputs
    with the same kinds."""
    declared = {d.name: d.kind for d in spec.inputs}
    params = {p.name: p.kind for p in program.params}
    if declared != params:
        want = ", ".join(f"{n}: {k}" for n, k in declared.items())
        got = ", ".join(f"{n}: {k}" for n, k in params.items())
        raise QuillSemanticError(
            f"kernel {program.name}({got}) does not take the inputs of spec {spec.name}",
            hint=f"declare the kernel as `kernel {program.name}({want})`",
        )


def spec_polynomials(spec: Spec, sym: SymbolicInputs) -> dict[int, Poly]:
    """The spec's reference, as a polynomial per output slot that matters."""
    return spec.evaluate(sym.ring, sym.vectors)


@dataclass(frozen=True)
class Reference:
    """A spec's exact reference, computed once: its symbolic inputs and a polynomial per
    output slot that matters. Verification and the synthesizer both read it."""

    spec: Spec
    sym: SymbolicInputs
    polys: dict[int, Poly]

    @property
    def ct_vars(self) -> set[int]:
        """Variables of ciphertext inputs."""
        kinds = {d.name: d.kind for d in self.spec.inputs}
        return {v for v, (name, _) in self.sym.var_slot.items() if kinds[name] is Kind.CT}

    @property
    def degree(self) -> int:
        """The largest total degree of a monomial at a slot that matters."""
        return max((len(m) for p in self.polys.values() for m in p), default=0)

    @property
    def ct_degree(self) -> int:
        """The largest degree of a monomial in ciphertext variables."""
        ct = self.ct_vars
        return max(
            (sum(1 for v in m if v in ct) for p in self.polys.values() for m in p), default=0
        )

    def offsets(self, slot: int) -> dict[str, set[int]]:
        """Per input, the offsets (input slot minus ``slot``, normalized) that the
        polynomial at output ``slot`` reads."""
        out: dict[str, set[int]] = {}
        for m in self.polys[slot]:
            for v in m:
                name, s = self.sym.var_slot[v]
                out.setdefault(name, set()).add(normalize_amount(s - slot, self.spec.n))
        return out


def reference(spec: Spec) -> Reference:
    """Evaluate ``spec`` on symbolic inputs."""
    sym = symbolic_inputs(spec)
    return Reference(spec, sym, spec_polynomials(spec, sym))


def verify(program: Program, spec: Spec | Reference, seed: int = 0) -> Verdict:
    """Prove ``program`` equal to ``spec`` on the output slots that matter, for all inputs in
    the spec's domains, or return a checked counterexample. Pass a :class:`Reference` to
    verify many programs against one spec without evaluating the spec again."""
    ref = spec if isinstance(spec, Reference) else reference(spec)
    spec, sym = ref.spec, ref.sym
    check_signature(program, spec)
    slots = spec.output_slots()
    got = evaluate_at_slots(program, sym.ring, sym.vectors, slots, spec.n)
    for slot in slots:
        diff = sym.ring.sub(got[slot], ref.polys[slot])
        if diff:
            return Verdict(False, _counterexample(program, spec, sym, diff, seed))
    return Verdict(True)


def agrees_on_random(program: Program, spec: Spec, draws: int = 2, seed: int = 0) -> bool:
    """Whether ``program`` matches ``spec`` on ``draws`` random inputs: a refutation that
    costs a few interpreter runs, for rewrites tried by the dozen before one is proven (a
    wrong rewrite's polynomials can be far larger than the spec's)."""
    rng = np.random.default_rng(seed)
    for _ in range(draws):
        inputs = spec.random_inputs(rng)
        got = interpret(program, {p.name: inputs[p.name] for p in program.params})
        want = spec.reference(inputs)
        if any(int(got[slot]) != want[slot] % T for slot in spec.output_slots()):
            return False
    return True


def _counterexample(
    program: Program, spec: Spec, sym: SymbolicInputs, diff: Poly, seed: int
) -> Mismatch:
    """A concrete input on which the non-zero polynomial ``diff`` is non-zero, confirmed by
    running the interpreter and the reference evaluator on it."""
    rng = np.random.default_rng(seed)
    bit_vars = [v for v in variables(diff) if v in sym.ring.bits]
    for attempt in range(64):
        if attempt == 0 and len(bit_vars) == len(variables(diff)):
            point = _bit_witness(diff)
        else:
            point = {
                v: int(rng.integers(0, 2)) if v in sym.ring.bits else int(rng.integers(0, T))
                for v in sym.var_slot
            }
        # Schwartz-Zippel: a non-zero polynomial of degree d vanishes on at most a d/T
        # fraction of Z_T^m, so a random point almost always works.
        if evaluate_at(diff, point) == 0:
            continue
        found = _confirm(program, spec, sym, point)
        if found is not None:
            return found
    raise AssertionError("verifier found a difference but no input exhibiting it")


def _bit_witness(diff: Poly) -> dict[int, int]:
    """For a multilinear polynomial, the indicator of a minimal monomial is a non-zero
    point: only that monomial and its (zero-coefficient) subsets survive."""
    smallest = min(diff, key=len)
    return dict.fromkeys(smallest, 1)


def _confirm(
    program: Program, spec: Spec, sym: SymbolicInputs, point: dict[int, int]
) -> Mismatch | None:
    inputs: Inputs = {d.name: np.zeros(spec.n, dtype=np.int64) for d in spec.inputs}
    for v, (name, s) in sym.var_slot.items():
        inputs[name][s] = point.get(v, 0)
    got = interpret(program, {p.name: inputs[p.name] for p in program.params})
    want = spec.reference(inputs)
    for slot in spec.output_slots():
        if int(got[slot]) != want[slot] % T:
            return Mismatch(inputs, slot, want[slot] % T, int(got[slot]))
    return None
