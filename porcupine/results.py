"""What the synthesizer hands back: a verified kernel and what is known about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from porcupine.layouts import Packing
from porcupine.search import Options
from quill.cost import Measures
from quill.ir import Program
from quill.noise import Parameters
from quill.printer import format_program
from quill.stats import counts


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
            "parameter_set": self.params.param_set.name,
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
            "packing": self.packing.name if self.packing else "natural",
            "layouts": list(self.layouts),
        }


@dataclass(frozen=True)
class Partial:
    """A verified kernel on its way to a :class:`SynthesisResult` (inside the synthesizer)."""

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
