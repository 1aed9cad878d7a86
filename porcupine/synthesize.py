"""The synthesizer's public API: ``synthesize(spec) -> SynthesisResult``.

A single-stage spec goes straight to the sketch search (:mod:`porcupine.search`). A
multi-step spec (one with ``stage`` definitions) is synthesized stage by stage, each stage
against the slots later steps read, then the last step over the stages as inputs; the
stages are inlined, common subexpressions merged, and the whole kernel verified against the
full spec before it is returned. Nothing unverified leaves this module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from porcupine.scale import LiftError, lift
from porcupine.search import Options, Progress, SynthesisError, synthesize_flat
from porcupine.verify import verify
from quill.cost import keygen_cost, objective, program_cost
from quill.ir import Param, Program
from quill.noise import Parameters, parameters
from quill.printer import format_program
from quill.spec import Spec
from quill.transform import inline, simplify

__all__ = ["Options", "SynthesisError", "SynthesisResult", "synthesize"]


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
    verified: bool
    optimal: bool
    optimal_scope: str  # what the optimality proof covers, or why there is none
    cost: float  # estimated latency (ms) at the ring dimension the kernel needs
    keygen_ms: float  # estimated time to generate its rotation keys
    objective: float  # what the search minimized (quill.cost.objective)
    params: Parameters
    seconds: float
    source: str  # "synthesized", or "initial" when nothing beat the initial kernel in time
    components: int
    restrictions: str
    candidates: int
    counterexamples: int
    stages: tuple[StageResult, ...] = field(default=())

    @property
    def rotation_keys(self) -> tuple[int, ...]:
        return self.program.rotation_amounts()

    def to_json(self) -> dict[str, Any]:
        """The summary ``porcupine synth --json`` prints."""
        p = self.program
        return {
            "kernel": self.kernel,
            "program": format_program(p),
            "verified": self.verified,
            "optimal": self.optimal,
            "optimal_scope": self.optimal_scope,
            "instructions": len(p.body),
            "rotations": p.rotations,
            "rotation_keys": list(self.rotation_keys),
            "ct_ct_mults": p.ct_ct_mults,
            "ct_pt_mults": sum(1 for i in p.body if i.opcode.value == "mul_cp"),
            "additions": sum(1 for i in p.body if i.opcode.value in _ADDITIVE),
            "mult_depth": self.params.ct_ct_depth,
            "bfv_mult_depth": self.params.mult_depth,
            "ring_dim": self.params.ring_dim,
            "cost": round(self.cost, 4),
            "keygen_ms": round(self.keygen_ms, 4),
            "objective": round(self.objective, 4),
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


DIRECT_SLOTS = 64
"""Specs with more slots are synthesized at their default size and lifted (porcupine.scale)."""

_ADDITIVE = {"add_cc", "sub_cc", "add_cp", "sub_cp", "neg"}


def synthesize(
    spec: Spec,
    *,
    timeout: float | None = None,
    options: Options | None = None,
    initial: Program | None = None,
    progress: Progress | None = None,
) -> SynthesisResult:
    """Find the cheapest kernel for ``spec`` that the sketch allows, proven equal to it.

    ``timeout`` (seconds) bounds the whole search; when it runs out the best verified kernel
    so far is returned with ``optimal=False``. ``initial``, a verified kernel (e.g. a
    hand-written baseline), seeds the cost bound. Raises :class:`SynthesisError` when no
    kernel is found.
    """
    options = options or Options()
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    if initial is not None and not verify(initial, spec).ok:
        raise SynthesisError(f"the initial kernel {initial.name} is not equal to {spec.name}")
    if spec.n > DIRECT_SLOTS and spec.at().n < spec.n:
        return _scaled(spec, start, timeout, options, progress)
    if spec.stages:
        return _multi_step(spec, start, deadline, options, progress)
    found, optimal, scope, log, restrictions = synthesize_flat(
        spec, deadline=deadline, options=options, initial=initial, progress=progress
    )
    if found is None:
        raise _nothing_found(spec, log.sizes_exhausted, deadline, restrictions.describe())
    source = "initial" if initial is not None and found.program is initial else "synthesized"
    return _result(
        spec,
        options,
        found.program,
        optimal,
        scope,
        start,
        source,
        found.components,
        restrictions.describe(),
        log.candidates,
        log.counterexamples,
    )


def _nothing_found(
    spec: Spec, exhausted: list[int], deadline: float | None, restrictions: str
) -> SynthesisError:
    if deadline is not None and time.monotonic() >= deadline:
        return SynthesisError(
            f"{spec.name}: no verified kernel within the timeout; allow more time (--timeout)"
        )
    most = max(exhausted, default=0)
    return SynthesisError(
        f"{spec.name}: no kernel with at most {most} components exists in the sketch "
        f"({restrictions}); raise `hint components`, or allow more ops or rotations with "
        "`hint ops` / `hint rotations`"
    )


def _result(
    spec: Spec,
    options: Options,
    program: Program,
    optimal: bool,
    scope: str,
    start: float,
    source: str,
    components: int,
    restrictions: str,
    candidates: int,
    counterexamples: int,
    stages: tuple[StageResult, ...] = (),
) -> SynthesisResult:
    verdict = verify(program, spec)
    if not verdict.ok:  # the search only keeps verified kernels; this guards composition
        raise SynthesisError(f"{spec.name}: composed kernel failed verification: {verdict}")
    params = parameters(program, spec.n)
    return SynthesisResult(
        kernel=spec.name,
        program=program,
        verified=True,
        optimal=optimal,
        optimal_scope=scope,
        cost=program_cost(program, params.ring_dim, options.table),
        keygen_ms=keygen_cost(program, params.ring_dim, options.table),
        objective=objective(program, params.ring_dim, options.table, options.goal),
        params=params,
        seconds=time.monotonic() - start,
        source=source,
        components=components,
        restrictions=restrictions,
        candidates=candidates,
        counterexamples=counterexamples,
        stages=stages,
    )


def _multi_step(
    spec: Spec, start: float, deadline: float | None, options: Options, progress: Progress | None
) -> SynthesisResult:
    """Synthesize each stage over the stages it reads, in dependency order, then the output
    over the stages; inline and simplify, and verify the whole against ``spec``."""
    say: Progress = progress or (lambda _m: None)
    params = tuple(Param(d.name, d.kind) for d in spec.inputs)
    steps = {s.name: spec.stage_spec(s.name).with_stages_as_inputs() for s in spec.stages}
    steps[spec.output.name] = spec.with_stages_as_inputs()
    composed: dict[str, Program] = {}  # step -> its program over the spec's own inputs
    stages: list[StageResult] = []
    candidates = counterexamples = components = 0
    restrictions = ""
    for name in _dependency_order(steps):
        step = steps[name]
        say(f"step {name}: {len(step.output_slots())} slots matter")
        found, optimal, _scope, log, restr = synthesize_flat(
            step, deadline=deadline, options=options, progress=progress
        )
        if found is None:
            raise _nothing_found(step, log.sizes_exhausted, deadline, restr.describe())
        stages.append(StageResult(name, found.program, optimal))
        reads = {d.name: composed[d.name] for d in step.inputs if d.name in composed}
        composed[name] = inline(found.program, reads, params, spec.name)
        candidates += log.candidates
        counterexamples += log.counterexamples
        components += found.components
        restrictions = restr.describe()
    scope = (
        "each step proven optimal on its own; the composition is not"
        if all(s.optimal for s in stages)
        else "not proven"
    )
    return _result(
        spec,
        options,
        simplify(composed[spec.output.name]),
        False,
        scope,
        start,
        "synthesized",
        components,
        restrictions,
        candidates,
        counterexamples,
        tuple(stages),
    )


def _dependency_order(steps: dict[str, Spec]) -> list[str]:
    """Step names such that every step comes after the stages it reads."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for d in steps[name].inputs:
            if d.name in steps:
                visit(d.name)
        order.append(name)

    for name in steps:
        visit(name)
    return order


def _scaled(
    spec: Spec, start: float, timeout: float | None, options: Options, progress: Progress | None
) -> SynthesisResult:
    """Synthesize at the spec's default size, lift to ``spec``'s size, verify there."""
    say: Progress = progress or (lambda _m: None)
    small = spec.at()
    sizes = ", ".join(f"{k}={v}" for k, v in small.params)
    say(f"{spec.n} slots: synthesizing at the default size ({sizes}) and lifting")
    found = synthesize(small, timeout=timeout, options=options, progress=progress)
    try:
        lifted = lift(found.program, small, spec)
    except LiftError as e:
        raise SynthesisError(f"{spec.name}: the kernel found at {sizes} does not lift: {e}") from e
    say(f"lifted to {spec.n} slots; verifying exactly")
    if not verify(lifted, spec).ok:
        raise SynthesisError(
            f"{spec.name}: the kernel found at {sizes} is not correct at {spec.n} slots; "
            "synthesize at a size closer to the target (--param)"
        )
    scope = f"lifted from the {sizes} instance ({found.optimal_scope})"
    return _result(
        spec,
        options,
        lifted,
        False,
        scope,
        start,
        "lifted",
        found.components,
        found.restrictions,
        found.candidates,
        found.counterexamples,
        found.stages,
    )
