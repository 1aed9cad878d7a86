"""The synthesizer's failures (kept apart so every module that synthesizes can name them)."""

from __future__ import annotations

from quill.ir import Program
from quill.noise import NoiseBudgetExceeded


class SynthesisError(Exception):
    """The search ended without a usable kernel; the message says why and what to try."""


class NoiseBudgetError(SynthesisError):
    """The kernel found is correct but needs more noise budget than any parameter set the
    noise model covers: OpenFHE would decrypt its result wrongly."""

    def __init__(self, program: Program, cause: NoiseBudgetExceeded) -> None:
        super().__init__(f"{program.name} is correct but exceeds the noise budget: {cause}")
        self.program, self.cause = program, cause
