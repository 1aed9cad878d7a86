"""The synthesizer's configuration: what the search optimizes and how it learns.

One record, :class:`Options`, passed from the command line (or a caller) through every step
of the pipeline (:mod:`porcupine.pipeline`) to the search (:mod:`porcupine.search`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from quill.cost import DEFAULT_TABLE, CostTable, Objective
from quill.verify import Reference


class Engine(str, Enum):
    """How the search learns from wrong candidates (see :mod:`porcupine.search.refine`)."""

    AUTO = "auto"  # exact for linear specs, examples once products appear (measured)
    EXACT = "exact"
    EXAMPLES = "examples"

    def resolve(self, ref: Reference) -> Engine:
        """The engine to run on ``ref``. Exact slot polynomials settle a linear stencil in
        one slot (3x3 blur: 13 s against 115 s with examples), but their products grow
        quadratically with the inputs a value reads, where narrow examples stay small
        (hamming distance: 6.5 s against 33 s; l2 distance: 4 s against 13 s)."""
        if self is not Engine.AUTO:
            return self
        return Engine.EXACT if ref.degree <= 1 else Engine.EXAMPLES


@dataclass(frozen=True)
class Options:
    """Knobs of the search."""

    table: CostTable = DEFAULT_TABLE
    goal: Objective = Objective.LATENCY
    max_components: int = 8  # sketch sizes tried, unless the spec hints otherwise
    extra_components: int = 1  # sizes searched past the first size with a kernel
    width: int = 8  # bits of the narrow arithmetic
    seed: int = 0
    engine: Engine = Engine.AUTO
    max_keys: int | None = None  # at most this many rotation keys
