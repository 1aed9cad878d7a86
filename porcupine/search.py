"""Counterexample-guided search for the cheapest verified kernel in the local-rotate sketch.

For L = 1, 2, ... components: solve the sketch on a few narrow (``width``-bit) examples,
verify each candidate exactly against the spec, and on failure add an input that tells them
apart; once a candidate verifies, demand a strictly cheaper one, until the solver answers
UNSAT. The search ends ``extra_components`` sizes after the first size that had a kernel,
or when the time is up, returning the best verified kernel so far.

When is UNSAT a proof? The examples are a relaxation twice over: they are finitely many
inputs, and arithmetic mod 2^width stands in for arithmetic mod T. Every program correct over
Z_T satisfies the example constraints as long as its integer coefficients cannot reach T
(then "equal mod T" means "equal over the integers", which survives reduction mod 2^width).
:func:`coefficient_bound` bounds the coefficients any program of the sketch can build; when
that bound is below T the UNSAT answers prove that no cheaper kernel exists in the sketch,
and the result says ``optimal: true``. Otherwise it says ``optimal: false``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import z3

from porcupine.encode import COST_SCALE, SketchEncoding
from porcupine.restrictions import (
    Dependencies,
    Reference,
    Restrictions,
    dependencies,
    derive,
    reference,
)
from porcupine.sketch import Filled, Space, space_for, to_quill
from porcupine.verify import input_slots, verify
from quill.cost import (
    DEFAULT_TABLE,
    KEY_SWITCH_WEIGHT_MS,
    CostTable,
    Objective,
    key_switches,
    objective,
    program_cost,
)
from quill.interp import Slots, evaluate
from quill.ir import Program
from quill.noise import RING_DIM
from quill.ops import OPS, Opcode
from quill.slots import T
from quill.spec import Domain, IntRing, Spec

Progress = Callable[[str], None]


class SynthesisError(Exception):
    """The search ended without a verified kernel; the message says why and what to try."""


@dataclass
class SearchLog:
    """What the search established, for the result's summary."""

    sizes_exhausted: list[int] = field(default_factory=list)  # sizes proven to have no cheaper
    candidates: int = 0
    counterexamples: int = 0
    first_size: int | None = None
    best: Found | None = None


@dataclass(frozen=True)
class Options:
    """Knobs of the search."""

    table: CostTable = DEFAULT_TABLE
    max_components: int = 8  # sketch sizes tried, unless the spec hints otherwise
    extra_components: int = 1  # sizes searched past the first size with a kernel
    width: int = 8  # bits of the narrow example arithmetic
    seed: int = 0
    goal: Objective = Objective.INSTRUCTIONS


@dataclass(frozen=True)
class Found:
    program: Program
    units: int  # cost in the encoding's units
    components: int


VALUE_RANGES = (2, 4, 16)
"""Example entries are drawn below the first of these that yields a counterexample (after
sparse examples with three non-zero entries below 4; finally the full width). Small
entries keep the solver's multipliers nearly constant: one Roberts cross check took 0.5 s
with entries below 4 and timed out after 300 s with 8-bit ones."""


class NarrowExamples:
    """Example inputs in the search's narrow arithmetic, the spec's values on them, and
    which (example, slot) pairs the search constrains.

    Constraining every output slot of an example at once is what makes multiply-heavy
    sketches slow (Roberts cross: over 300 s for one check with all 9 slots, 0.3 s with
    one), so slots are added lazily, like counterexamples: a candidate that is wrong at a
    slot gets that (example, slot) pair constrained, and the arithmetic-free dependency
    abstraction covers every slot from the start.
    """

    def __init__(self, spec: Spec, width: int, seed: int) -> None:
        self.spec = spec
        self.width = width
        self.mask = (1 << width) - 1
        self.rng = np.random.default_rng(seed)
        self.inputs: list[dict[str, list[int]]] = []
        self.wants: list[dict[int, int]] = []
        self.constrained: list[tuple[int, int]] = []  # (example, slot), in order of adding

    def random_inputs(self, high: int = 2, nonzero: int | None = None) -> dict[str, list[int]]:
        """Random inputs in the domain, entries below ``high`` (bits: 0 or 1); with
        ``nonzero``, only that many entries per input are non-zero (sparse examples keep
        the solver's products mostly zero)."""
        out: dict[str, list[int]] = {}
        for d in self.spec.inputs:
            vec = [0] * self.spec.n
            bound = 2 if d.domain is Domain.BITS else min(high, 1 << self.width)
            slots = list(input_slots(d, self.spec.n))
            if nonzero is not None:
                picked = self.rng.choice(len(slots), size=min(nonzero, len(slots)), replace=False)
                slots = [slots[i] for i in sorted(picked)]
            for s in slots:
                vec[s] = int(self.rng.integers(1 if nonzero else 0, max(2, bound)))
            out[d.name] = vec
        return out

    def reference(self, inputs: dict[str, list[int]]) -> dict[int, int]:
        exact = self.spec.evaluate(IntRing(), inputs)
        return {s: v & self.mask for s, v in exact.items()}

    def run(self, program: Program, inputs: dict[str, list[int]]) -> list[int]:
        mask, n = self.mask, self.spec.n
        vectors = {k: np.array(v, dtype=np.int64) for k, v in inputs.items()}
        result = evaluate(
            program,
            _MaskedAlgebra(mask),
            {p.name: vectors[p.name] for p in program.params},
            lambda vs: np.array([vs[i % len(vs)] & mask for i in range(n)], dtype=np.int64),
        )
        return [int(x) for x in result]

    def _add(self, inputs: dict[str, list[int]]) -> int:
        self.inputs.append(inputs)
        self.wants.append(self.reference(inputs))
        return len(self.inputs) - 1

    def start(self) -> None:
        """One random example, constrained at one output slot (a middle one: its
        neighbourhood is least likely to be special)."""
        e = self._add(self.random_inputs(4, 3))
        slots = sorted(self.wants[e])
        self.constrained.append((e, slots[len(slots) // 2]))

    def refute(self, program: Program, tries: int = 32) -> tuple[int, int] | None:
        """An (example, slot) pair on which ``program`` and the spec differ in the narrow
        arithmetic: on a known example first, else on new random ones with entries drawn
        from growing ranges (:data:`VALUE_RANGES`). It is recorded as constrained; ``None``
        if no such pair turned up."""
        known = len(self.inputs)
        kinds = [(4, 3), (4, None)] + [(h, None) for h in VALUE_RANGES[1:]]
        kinds += [(1 << self.width, None)]
        for e in range(known + tries * len(kinds)):
            if e >= known:
                self._add(self.random_inputs(*kinds[(e - known) // tries]))
            got = self.run(program, self.inputs[e])
            for slot, want in self.wants[e].items():
                if got[slot] != want and (e, slot) not in self.constrained:
                    self.constrained.append((e, slot))
                    return e, slot
        return None

    def apply(self, enc: SketchEncoding, start: int = 0) -> None:
        """Constrain ``enc`` on the recorded pairs from index ``start`` on."""
        for e, slot in self.constrained[start:]:
            while enc.examples_known <= e:
                enc.add_example(self.inputs[enc.examples_known])
            enc.constrain(e, {slot: self.wants[e][slot]})


class _MaskedAlgebra:
    """Slot vectors mod 2^width (width <= 31 keeps products inside int64)."""

    def __init__(self, mask: int) -> None:
        self.mask = mask

    def add(self, a: Slots, b: Slots) -> Slots:
        return (a + b) & self.mask

    def sub(self, a: Slots, b: Slots) -> Slots:
        return (a - b) & self.mask

    def mul(self, a: Slots, b: Slots) -> Slots:
        return (a * b) & self.mask

    def neg(self, a: Slots) -> Slots:
        return (-a) & self.mask

    def rot(self, a: Slots, k: int) -> Slots:
        return np.roll(a, -k)


def coefficient_bound(restrictions: Restrictions, components: int, constants: int) -> int:
    """An upper bound on the L1 norm of the integer polynomial any program of the sketch
    computes: inputs have norm 1; add/sub add norms, multiplies multiply them; ct*ct depth is
    bounded, so the bound is tracked per depth."""
    depth = restrictions.max_depth
    c = max(1, constants)
    best = [max(1, c)] * (depth + 1)  # best[d]: max norm of a value of depth <= d
    for _ in range(components):
        new = list(best)
        for d in range(depth + 1):
            cands = [best[d]]
            for op in restrictions.ops:
                arith = OPS[op]
                if op in (Opcode.ADD_CC, Opcode.SUB_CC):
                    cands.append(2 * best[d])
                elif op is Opcode.MUL_CC and d >= 1:
                    cands.append(best[d - 1] ** 2)
                elif op is Opcode.MUL_CP:
                    cands.append(best[d] * c)
                elif op in (Opcode.ADD_CP, Opcode.SUB_CP):
                    cands.append(best[d] + c)
                elif not arith.ct_ct_mult:
                    cands.append(best[d])
            new[d] = max(cands)
        best = [max(new[: d + 1]) for d in range(depth + 1)]
    return best[depth]


def spec_norm(ref: Reference) -> int:
    """The largest L1 norm (centred integer coefficients) of the spec's slot polynomials."""
    return max(
        (sum(min(c, T - c) for c in p.values()) for p in ref.polys.values()),
        default=0,
    )


def synthesize_flat(
    spec: Spec,
    *,
    deadline: float | None,
    options: Options,
    initial: Program | None = None,
    progress: Progress | None = None,
) -> tuple[Found | None, bool, str, SearchLog, Restrictions]:
    """The search for a single-stage spec. Returns the best kernel found (or ``None``),
    whether it is proven optimal, what that proof covers, the log, and the restrictions."""
    say = progress or (lambda _msg: None)
    ref = reference(spec)
    restrictions = derive(ref)
    space = space_for(spec, restrictions)
    ring_dim = max(RING_DIM[max(1, restrictions.max_depth)], 2 * spec.n)
    examples = NarrowExamples(spec, options.width, options.seed)
    examples.start()
    deps = dependencies(ref)
    log = SearchLog()
    if initial is not None:
        cost = objective(initial, ring_dim, options.table, options.goal)
        units = round(cost * COST_SCALE)
        log.best = Found(initial, units, len(initial.body))
        say(f"initial bound from {initial.name}: {_measures(initial, ring_dim, options)}")
    say(f"sketch: {restrictions.describe()}; {options.width}-bit examples")
    norm = spec_norm(ref)
    constant = max((abs(c) for c in restrictions.constants), default=1)
    sound = True
    stopped = False
    limit = spec.hints.components or options.max_components
    for size in range(1, limit + 1):
        if log.first_size is not None and size > log.first_size + options.extra_components:
            break
        sound &= coefficient_bound(restrictions, size, constant) + norm < T
        bound = ""
        if log.best:
            bound = f" below {_measures(log.best.program, ring_dim, options)}"
        say(f"L={size}: searching{bound}")
        try:
            exhausted = _cegis(
                spec, space, size, ring_dim, options, examples, deps, deadline, log, say
            )
        except KeyboardInterrupt:  # Ctrl-C: stop, keep the best verified kernel so far
            say("interrupted: returning the best verified kernel so far")
            exhausted = False
        if not exhausted:
            stopped = True
            break
        log.sizes_exhausted.append(size)
    best = log.best
    optimal = best is not None and not stopped and sound
    last = log.sizes_exhausted[-1] if log.sizes_exhausted else 0
    if optimal:
        scope = (
            f"no cheaper kernel with at most {last} components in the sketch "
            f"({restrictions.describe()})"
        )
    elif stopped:
        scope = "search stopped by the timeout before a proof"
    else:
        scope = "the coefficient bound is too large for the narrow search to be a proof"
    return best, optimal, scope, log, restrictions


def _cegis(
    spec: Spec,
    space: Space,
    size: int,
    ring_dim: int,
    options: Options,
    examples: NarrowExamples,
    deps: Dependencies,
    deadline: float | None,
    log: SearchLog,
    say: Progress,
) -> bool:
    """Exhaust sketch size ``size`` below the cost of ``log.best``, recording every better
    verified kernel in ``log``. True once the solver says UNSAT, False on timeout."""
    enc = SketchEncoding(
        space, size, options.width, options.table, ring_dim, options.seed, options.goal
    )
    examples.apply(enc)
    enc.require_dependencies(deps.needed, deps.leaf_vars)
    enc.require_degree(space.restrictions.ct_degree)
    if log.best is not None:
        enc.bound_cost(log.best.units)
    # With no kernel yet, look for one under rising cost caps: at a low cap the abstraction
    # refutes quickly, and the first kernel found is already cheap, instead of descending
    # from whatever expensive kernel the solver happens to find first.
    caps = iter(cost_levels(options, size) if log.best is None else [])
    cap = next(caps, None)
    fresh_bound = True
    while True:
        remaining = None if deadline is None else int((deadline - time.monotonic()) * 1000)
        if remaining is not None and remaining <= 0:
            return False
        extra = () if cap is None else (enc.cap(cap),)
        result = z3.sat
        if fresh_bound:
            # Cheap first: without arithmetic, most too-small or too-cheap sizes are UNSAT.
            result = enc.check(remaining, examples=False, extra=extra)
            fresh_bound = result != z3.sat
        if result == z3.sat:
            result = enc.check(remaining, extra=extra)
        if result == z3.unknown:
            return False
        if result == z3.unsat:
            if cap is not None:
                cap = next(caps, None)
                fresh_bound = True
                continue
            say(f"L={size}: exhausted")
            return True
        filled: Filled = enc.filled()
        program = to_quill(filled, space, spec.name)
        log.candidates += 1
        if verify(program, spec).ok:
            units = enc.model_cost()
            log.best = Found(program, units, size)
            if log.first_size is None:
                log.first_size = size
            say(
                f"L={size}: verified kernel: {_measures(program, ring_dim, options)}; "
                "looking for a cheaper one"
            )
            enc.bound_cost(units)
            cap = None
            fresh_bound = True
            continue
        log.counterexamples += 1
        say(f"L={size}: candidate {log.candidates} refuted; adding a counterexample")
        known = len(examples.constrained)
        if examples.refute(program) is None:
            enc.block(filled)
        else:
            examples.apply(enc, known)


def cost_levels(options: Options, size: int) -> list[int]:
    """Rising cost caps (in encoding units) for a first kernel of ``size`` components: one
    per key-switch count under the default objective, doubling latencies otherwise."""
    if options.goal is Objective.INSTRUCTIONS:
        step = round(KEY_SWITCH_WEIGHT_MS * COST_SCALE)
        return [step * k for k in range(1, 2 * size + 2)]
    cheapest = min(options.table.at(RING_DIM[1]).values())
    return [round(cheapest * COST_SCALE * 2**k) for k in range(1, 16)]


def _measures(program: Program, ring_dim: int, options: Options) -> str:
    """The measures the objective compares, for progress messages."""
    latency = f"{program_cost(program, ring_dim, options.table):.3f} ms"
    if options.goal is Objective.LATENCY:
        return latency
    return f"{key_switches(program)} key switches, {len(program.body)} instructions, {latency}"
