"""The synthesizer's public API: ``synthesize(spec) -> SynthesisResult``.

A single-stage spec goes straight to the sketch search (:mod:`porcupine.search`). A
multi-step spec (with ``stage`` definitions) is synthesized step by step, each stage against
the slots later steps read, then the last step over the stages as inputs; the stages are
inlined, common subexpressions merged, and the whole kernel verified against the full spec.
A spec of more than :data:`DIRECT_SLOTS` slots is synthesized at its default size and
lifted (:mod:`porcupine.scale`), then verified at its own size. Nothing unverified leaves
this module; progress goes to the ``porcupine`` logger.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from porcupine.budget import Budget
from porcupine.scale import LiftError, lift
from porcupine.search import Engine, Found, Options, SearchResult, search
from quill.cost import Measures, measures, objective
from quill.ir import Param, Program
from quill.noise import Parameters, parameters
from quill.printer import format_program
from quill.spec import Spec
from quill.stats import counts
from quill.transform import inline, simplify
from quill.verify import verify

__all__ = [
    "Engine",
    "Found",
    "Options",
    "StageResult",
    "SynthesisError",
    "SynthesisResult",
    "synthesize",
]

log = logging.getLogger("porcupine")

DIRECT_SLOTS = 64
"""Specs with more slots are synthesized at their default size and lifted (porcupine.scale)."""


class SynthesisError(Exception):
    """The search ended without a verified kernel; the message says why and what to try."""


@dataclass(frozen=True)
class StageResult:
    name: str
    program: Program
    optimal: bool


@dataclass(frozen=True)
class SynthesisResult:
    """A verified kernel and what is known about it."""

    kernel: str
    program: Program
    optimal: bool
    optimal_scope: str  # what the optimality proof covers, or why there is none
    measures: Measures  # at the ring dimension the kernel needs
    params: Parameters
    options: Options
    seconds: float
    source: str  # "synthesized", "lifted", or "initial" when nothing beat the initial kernel
    components: int
    restrictions: str
    candidates: int
    counterexamples: int
    stopped: str | None = None  # "timeout" or "interrupted": the search did not finish
    stages: tuple[StageResult, ...] = field(default=())

    verified = True  # by construction: every path below verifies before returning

    @property
    def cost(self) -> float:
        """Estimated latency in milliseconds, as emitted."""
        return self.measures.latency_ms

    @property
    def keygen_ms(self) -> float:
        row = self.options.table.at(self.params.ring_dim)
        return self.measures.keys * row["rotation_keygen"]

    @property
    def rotation_keys(self) -> tuple[int, ...]:
        return counts(self.program).rotation_keys

    def to_json(self) -> dict[str, Any]:
        """The summary ``porcupine synth --json`` prints."""
        return {
            "kernel": self.kernel,
            "program": format_program(self.program),
            "verified": self.verified,
            "optimal": self.optimal,
            "optimal_scope": self.optimal_scope,
            "stopped": self.stopped,
            **counts(self.program).as_dict(),
            "bfv_mult_depth": self.params.mult_depth,
            "ring_dim": self.params.ring_dim,
            "objective": self.options.goal.value,
            "cost": round(self.cost, 4),
            "keygen_ms": round(self.keygen_ms, 4),
            "seconds": round(self.seconds, 3),
            "source": self.source,
            "components": self.components,
            "restrictions": self.restrictions,
            "candidates": self.candidates,
            "counterexamples": self.counterexamples,
            "stages": [
                {"name": s.name, "program": format_program(s.program), "optimal": s.optimal}
                for s in self.stages
            ],
        }


@dataclass(frozen=True)
class _Partial:
    """A verified kernel on its way to a result."""

    program: Program
    optimal: bool
    scope: str
    source: str
    components: int
    restrictions: str
    candidates: int
    counterexamples: int
    stopped: str | None
    stages: tuple[StageResult, ...] = ()


def synthesize(
    spec: Spec,
    *,
    timeout: float | None = None,
    budget: Budget | None = None,
    options: Options | None = None,
    initial: Program | None = None,
) -> SynthesisResult:
    """Find the cheapest kernel for ``spec`` that the sketch allows, proven equal to it.

    ``timeout`` (seconds) or ``budget`` bounds the whole search; when it runs out the best
    verified kernel so far is returned with ``optimal=False``. ``initial``, a kernel for
    ``spec`` (e.g. a hand-written baseline), is verified and then bounds the search: the
    result is never worse. Raises :class:`SynthesisError` when no kernel is found.
    """
    options = options or Options()
    budget = budget or Budget.seconds(timeout)
    start = time.monotonic()
    if initial is not None and not verify(initial, spec).ok:
        raise SynthesisError(f"the initial kernel {initial.name} is not equal to {spec.name}")
    if spec.n > DIRECT_SLOTS and spec.at().n < spec.n:
        partial = _lifted(spec, budget, options)
    elif spec.stages:
        partial = _multi_step(spec, budget, options)
    else:
        partial = _from_search(spec, search(spec, budget, options, initial), budget, initial)
    if initial is not None and partial.program is not initial:
        partial = _no_worse_than(partial, initial, spec, options)
    return _result(spec, options, partial, start)


def _from_search(
    spec: Spec, found: SearchResult, budget: Budget, initial: Program | None
) -> _Partial:
    if found.best is None:
        raise _nothing_found(spec, found, budget)
    source = "initial" if initial is not None and found.best.program is initial else "synthesized"
    return _Partial(
        found.best.program, found.optimal, found.scope, source, found.best.components,
        found.restrictions.describe(), found.candidates, found.counterexamples, found.stopped,
    )  # fmt: skip


def _no_worse_than(partial: _Partial, initial: Program, spec: Spec, options: Options) -> _Partial:
    """``partial``, or the (verified) initial kernel when that is cheaper."""
    ring = parameters(partial.program, spec.n).ring_dim
    if objective(initial, ring, options.table, options.goal) < objective(
        partial.program, ring, options.table, options.goal
    ):
        log.info("the initial kernel %s is cheaper than the one found; keeping it", initial.name)
        return _Partial(
            initial, False, "not proven", "initial", 0, partial.restrictions,
            partial.candidates, partial.counterexamples, partial.stopped, partial.stages,
        )  # fmt: skip
    return partial


def _result(spec: Spec, options: Options, partial: _Partial, start: float) -> SynthesisResult:
    params = parameters(partial.program, spec.n)
    return SynthesisResult(
        kernel=spec.name,
        program=partial.program,
        optimal=partial.optimal,
        optimal_scope=partial.scope,
        measures=measures(partial.program, params.ring_dim, options.table),
        params=params,
        options=options,
        seconds=time.monotonic() - start,
        source=partial.source,
        components=partial.components,
        restrictions=partial.restrictions,
        candidates=partial.candidates,
        counterexamples=partial.counterexamples,
        stopped=partial.stopped,
        stages=partial.stages,
    )


def _nothing_found(spec: Spec, found: SearchResult, budget: Budget) -> SynthesisError:
    if found.stopped == "interrupted":
        return SynthesisError(f"{spec.name}: interrupted before a verified kernel was found")
    if found.stopped == "timeout":
        return SynthesisError(
            f"{spec.name}: no verified kernel within the timeout; allow more time (--timeout)"
        )
    most = max(found.sizes_exhausted, default=0)
    return SynthesisError(
        f"{spec.name}: no kernel with at most {most} components exists in the sketch "
        f"({found.restrictions.describe()}); raise `hint components`, or allow more ops or "
        "rotations with `hint ops` / `hint rotations`"
    )


def _multi_step(spec: Spec, budget: Budget, options: Options) -> _Partial:
    """Synthesize each stage over the stages it reads, in dependency order, then the output
    over the stages; inline and simplify, and verify the whole against ``spec``."""
    params = tuple(Param(d.name, d.kind) for d in spec.inputs)
    steps = {s.name: spec.stage_spec(s.name).with_stages_as_inputs() for s in spec.stages}
    steps[spec.output.name] = spec.with_stages_as_inputs()
    composed: dict[str, Program] = {}  # step -> its program over the spec's own inputs
    stages: list[StageResult] = []
    candidates = counterexamples = components = 0
    restrictions = ""
    stopped: str | None = None
    for name in [s.name for s in spec.stages] + [spec.output.name]:  # stages are in order
        step = steps[name]
        log.info("step %s: %d slots matter", name, len(step.output_slots()))
        found = search(step, budget, options)
        if found.best is None:
            raise _nothing_found(step, found, budget)
        stages.append(StageResult(name, found.best.program, found.optimal))
        reads = {d.name: composed[d.name] for d in step.inputs if d.name in composed}
        composed[name] = inline(found.best.program, reads, params, spec.name)
        candidates += found.candidates
        counterexamples += found.counterexamples
        components += found.best.components
        restrictions = found.restrictions.describe()
        stopped = stopped or found.stopped
    program = simplify(composed[spec.output.name])
    verdict = verify(program, spec)
    if not verdict.ok:  # each step is verified; this guards the composition
        raise SynthesisError(f"{spec.name}: composed kernel failed verification: {verdict}")
    scope = (
        "each step proven optimal on its own; the composition is not"
        if all(s.optimal for s in stages)
        else "not proven"
    )
    return _Partial(
        program, False, scope, "synthesized", components, restrictions, candidates,
        counterexamples, stopped, tuple(stages),
    )  # fmt: skip


def _lifted(spec: Spec, budget: Budget, options: Options) -> _Partial:
    """Synthesize at the spec's default size, lift to ``spec``'s size, verify there."""
    small = spec.at()
    sizes = ", ".join(f"{k}={v}" for k, v in small.params)
    log.info("%d slots: synthesizing at the default size (%s) and lifting", spec.n, sizes)
    found = synthesize(small, budget=budget, options=options)
    try:
        program = lift(found.program, small, spec)
    except LiftError as e:
        raise SynthesisError(f"{spec.name}: the kernel found at {sizes} does not lift: {e}") from e
    log.info("lifted to %d slots; verifying exactly", spec.n)
    if not verify(program, spec).ok:
        raise SynthesisError(
            f"{spec.name}: the kernel found at {sizes} is not correct at {spec.n} slots; "
            "synthesize at a size closer to the target (--param)"
        )
    scope = f"lifted from the {sizes} instance ({found.optimal_scope})"
    return _Partial(
        program, False, scope, "lifted", found.components, found.restrictions,
        found.candidates, found.counterexamples, found.stopped, found.stages,
    )  # fmt: skip
