"""What the synthesizer hands back: a verified kernel and what is known about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from porcupine.layouts.packing import Packing
from porcupine.options import Options
from porcupine.outcomes import PassApplied, Source, Stop
from quill.cost import Measures
from quill.ir import Program
from quill.noise import Parameters
from quill.printer import format_program
from quill.spec import Spec
from quill.stats import counts


@dataclass(frozen=True, kw_only=True)
class StageResult:
    """One step of a multi-step spec: its kernel, and whether the search proved it optimal."""

    name: str
    program: Program
    optimal: bool


@dataclass(frozen=True, kw_only=True)
class SynthesisResult:
    """A verified kernel and what is known about it."""

    kernel: str
    program: Program
    optimal: bool
    optimal_scope: str  # what the proof of the kernel the passes started from covers, or
    # why there is none; the passes applied since are in `passes`
    measures: Measures  # at the ring dimension the kernel needs
    params: Parameters
    options: Options
    seconds: float
    source: Source
    components: int
    restrictions: str
    candidates: int
    counterexamples: int
    stopped: Stop | None = None  # the budget ended the search before it finished
    stages: tuple[StageResult, ...] = field(default=())
    passes: tuple[PassApplied, ...] = ()  # in the order applied, at the smallest instance too
    packing: Packing | None = None  # the client packing, when not the natural one
    layouts: tuple[dict[str, Any], ...] = ()  # every packing --layout search tried

    verified = True  # by construction: every path below verifies before returning

    @property
    def cost(self) -> float:
        """Estimated latency in milliseconds, as emitted."""
        return self.measures.latency_ms

    @property
    def keygen_ms(self) -> float:
        row = self.options.table.at(self.params.param_set)
        return self.measures.keys * row["rotation_keygen"]

    @property
    def rotation_keys(self) -> tuple[int, ...]:
        return counts(self.program).rotation_keys

    def to_json(self) -> dict[str, Any]:
        """The facts, as JSON values. ``porcupine synth --json`` prints these with the
        optimality scope written out, passes included (:func:`porcupine.cli.report.as_json`);
        here ``optimal_scope`` is the field and the passes are records."""
        return {
            "kernel": self.kernel,
            "program": format_program(self.program),
            "verified": self.verified,
            "optimal": self.optimal,
            "optimal_scope": self.optimal_scope,
            "stopped": None if self.stopped is None else self.stopped.value,
            **counts(self.program).as_dict(),
            "bfv_mult_depth": self.params.mult_depth,
            "ring_dim": self.params.ring_dim,
            "parameter_set": self.params.param_set.name,
            "objective": self.options.goal.value,
            "cost": round(self.cost, 4),
            "keygen_ms": round(self.keygen_ms, 4),
            "seconds": round(self.seconds, 3),
            "source": self.source.value,
            "components": self.components,
            "restrictions": self.restrictions,
            "candidates": self.candidates,
            "counterexamples": self.counterexamples,
            "stages": [
                {"name": s.name, "program": format_program(s.program), "optimal": s.optimal}
                for s in self.stages
            ],
            "packing": self.packing.name if self.packing else "natural",
            "layouts": list(self.layouts),
            "passes": [p.to_json() for p in self.passes],
        }


@dataclass(frozen=True, kw_only=True)
class Partial:
    """A verified kernel on its way to a :class:`SynthesisResult` (inside the pipeline)."""

    program: Program
    optimal: bool
    scope: str  # what the proof covers, or why there is none (SynthesisResult.optimal_scope)
    source: Source
    components: int = 0
    restrictions: str = ""
    candidates: int = 0
    counterexamples: int = 0
    stopped: Stop | None = None
    stages: tuple[StageResult, ...] = ()
    passes: tuple[PassApplied, ...] = ()


@dataclass(frozen=True, kw_only=True)
class InstanceKernel:
    """A kernel already synthesized for ``spec``, handed to the synthesis of another size of
    the same spec: when ``spec`` is that size's smallest instance, the pipeline's instance
    step lifts ``result`` instead of searching again (:func:`porcupine.app_plan.compile_for`
    synthesizes a spec at its own size and at the tile it chooses)."""

    spec: Spec
    result: SynthesisResult
