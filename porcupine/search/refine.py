"""What the search constrains, and how it learns from a wrong candidate: the two engines.

Both start from one output slot that matters and add constraints lazily, as candidates
fail exact verification (constraining everything at once is what made multiply-heavy
sketches slow):

* :class:`ExactSlots` constrains the result's *polynomial* at a slot to the spec's
  (:class:`~porcupine.search.models.ExactModel`): that is the kernel being right at that slot for
  all inputs, so a wrong candidate adds the slot it was wrong at. A translation-invariant
  spec (a stencil, a reduction) is settled by one slot.
* :class:`NarrowExamples` constrains the result on concrete small-valued example inputs at
  single slots (:class:`~porcupine.search.models.ExampleModel`), adding a distinguishing
  (example, slot) pair for each wrong candidate.

Both also offer the cheap abstractions (:class:`~porcupine.search.models.SupportModel`,
:class:`~porcupine.search.models.DegreeModel`) the search tries first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import z3

from porcupine.search.encode import SketchEncoding
from porcupine.search.models import DegreeModel, ExactModel, ExampleModel, SupportModel
from quill.algebra import IntRing, ModPow2
from quill.interp import evaluate
from quill.ir import Program
from quill.ops import Kind
from quill.poly import Monomial
from quill.spec import Domain
from quill.verify import Reference, Verdict, input_slots


class Refiner(Protocol):
    """An engine: the constraints it has learned, and how it learns more."""

    def constraints(self, enc: SketchEncoding) -> list[Any]:
        """Everything learned so far, as constraints on ``enc``'s result."""
        ...

    def abstractions(self, enc: SketchEncoding) -> list[Any]:
        """Arithmetic-free necessary conditions on ``enc``'s result."""
        ...

    def learn(self, program: Program, verdict: Verdict) -> bool:
        """Learn from a candidate that failed verification; False if nothing new was
        learned (the caller then blocks the candidate itself)."""
        ...


def _middle(ref: Reference) -> int:
    slots = sorted(ref.polys)
    return slots[len(slots) // 2]  # its neighbourhood is least likely to be special


class _Abstractions:
    def __init__(self, ref: Reference, width: int) -> None:
        self.ref = ref
        variables = {(name, s): v for v, (name, s) in ref.sym.var_slot.items()}
        bits = ref.sym.ring.bits
        self.degree = ref.degree
        self.exact = ExactModel(width, variables, self.degree, bits)
        self.support = SupportModel(variables, self.degree, bits)
        cts = frozenset(d.name for d in ref.spec.inputs if d.kind is Kind.CT)
        self.degrees = DegreeModel(cts)
        self.slots: list[int] = [_middle(ref)]

    def abstractions(self, enc: SketchEncoding) -> list[Any]:
        out = [z3.UGE(enc.result(self.degrees, 0), self.ref.ct_degree)]
        for slot in self.slots:
            monomials: Sequence[Monomial] = list(self.ref.polys[slot])
            out += self.support.contains(enc.result(self.support, slot), monomials)
        return out


class ExactSlots(_Abstractions):
    """Constrain the result's polynomial at a growing set of output slots."""

    def constraints(self, enc: SketchEncoding) -> list[Any]:
        out = []
        for slot in self.slots:
            out += self.exact.equal(enc.result(self.exact, slot), self.ref.polys[slot])
        return out

    def learn(self, program: Program, verdict: Verdict) -> bool:
        assert verdict.counterexample is not None
        slot = verdict.counterexample.slot
        if slot in self.slots:
            return False  # equal mod 2^width at that slot, not over Z_T
        self.slots.append(slot)
        return True


VALUE_RANGES = (2, 4, 16)
"""Example entries are drawn below the first of these that yields a counterexample (after
sparse examples with three non-zero entries below 4; finally the full width). Small
entries keep the solver's multipliers nearly constant: one Roberts cross check took 0.5 s
with entries below 4 and timed out after 300 s with 8-bit ones."""


class NarrowExamples(_Abstractions):
    """Constrain the result on narrow example inputs, one (example, slot) pair at a time."""

    def __init__(self, ref: Reference, width: int, seed: int) -> None:
        super().__init__(ref, width)
        self.width = width
        self.mask = (1 << width) - 1
        self.rng = np.random.default_rng(seed)
        self.inputs: list[dict[str, list[int]]] = []
        self.wants: list[dict[int, int]] = []
        self.models: list[ExampleModel] = []
        self.pairs: list[tuple[int, int]] = []  # (example, slot), in order of adding
        e = self._add(self.random_inputs(4, 3))
        self.pairs.append((e, _middle(ref)))

    def random_inputs(self, high: int = 2, nonzero: int | None = None) -> dict[str, list[int]]:
        """Random inputs in the domain, entries below ``high`` (bits: 0 or 1); with
        ``nonzero``, only that many entries per input are non-zero (sparse examples keep
        the solver's products mostly zero)."""
        spec = self.ref.spec
        out: dict[str, list[int]] = {}
        for d in spec.inputs:
            vec = [0] * spec.n
            bound = 2 if d.domain is Domain.BITS else min(high, 1 << self.width)
            slots = list(input_slots(d, spec.n))
            if nonzero is not None:
                picked = self.rng.choice(len(slots), size=min(nonzero, len(slots)), replace=False)
                slots = [slots[i] for i in sorted(picked)]
            for s in slots:
                vec[s] = int(self.rng.integers(1 if nonzero else 0, max(2, bound)))
            out[d.name] = vec
        return out

    def _add(self, inputs: dict[str, list[int]]) -> int:
        self.inputs.append(inputs)
        exact = self.ref.spec.evaluate(IntRing(), inputs)
        self.wants.append({s: v & self.mask for s, v in exact.items()})
        self.models.append(ExampleModel(self.width, inputs))
        return len(self.inputs) - 1

    def constraints(self, enc: SketchEncoding) -> list[Any]:
        return [
            enc.result(self.models[e], slot) == self.models[e].bv.lift(self.wants[e][slot])
            for e, slot in self.pairs
        ]

    def _run(self, program: Program, inputs: dict[str, list[int]]) -> list[int]:
        n = self.ref.spec.n
        vectors = {p.name: np.array(inputs[p.name], dtype=np.int64) for p in program.params}
        result = evaluate(
            program,
            ModPow2(self.width),
            vectors,
            lambda vs: np.array([vs[i % len(vs)] & self.mask for i in range(n)], dtype=np.int64),
        )
        return [int(x) for x in result]

    def learn(self, program: Program, verdict: Verdict, tries: int = 32) -> bool:
        """An (example, slot) pair on which ``program`` and the spec differ in the narrow
        arithmetic: on a known example first, else on new random ones with entries drawn
        from growing ranges (:data:`VALUE_RANGES`)."""
        known = len(self.inputs)
        kinds: list[tuple[int, int | None]] = [(4, 3), (4, None)]
        kinds += [(h, None) for h in VALUE_RANGES[1:]] + [(1 << self.width, None)]
        for e in range(known + tries * len(kinds)):
            if e >= known:
                self._add(self.random_inputs(*kinds[(e - known) // tries]))
            got = self._run(program, self.inputs[e])
            for slot, want in self.wants[e].items():
                if got[slot] != want and (e, slot) not in self.pairs:
                    self.pairs.append((e, slot))
                    if slot not in self.slots:
                        self.slots.append(slot)
                    return True
        return False
