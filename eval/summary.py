"""A whole evaluation's results: the kernels measured, the ratios reported, their means."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from eval.measure import KernelEval

RATIOS: dict[str, Callable[[KernelEval], float | None]] = {
    "a_baseline_over_ours": lambda ev: ev.kernel_speedup("baseline"),
    "a_published_over_ours": lambda ev: ev.kernel_speedup("published"),
    "b_end_to_end": KernelEval.end_to_end,
    "c_parameter_win": KernelEval.parameter_win,
    "kernel_win_at_our_set": KernelEval.kernel_win_at_ours,
}
"""Every ratio reported per kernel and as a geometric mean (above 1: ours wins)."""


@dataclass
class Summary:
    """A whole evaluation: the kernels measured and how the run went."""

    evals: list[KernelEval]
    machine: dict[str, str]
    command: str
    settings: dict[str, str]
    paper: dict[str, dict[str, int]]  # kernel -> the paper's counts
    failed: dict[str, str] = field(default_factory=dict)  # kernel -> error
    wall_s: float = 0.0

    def values(self, ratio: str) -> list[float]:
        """``ratio`` of every kernel where it was measured."""
        found = (RATIOS[ratio](ev) for ev in self.evals)
        return [v for v in found if v is not None]

    def geomean(self, ratio: str) -> float | None:
        """The geometric mean of ``ratio`` over the kernels where it was measured."""
        return geomean(self.values(ratio))

    def kernels(self) -> int:
        """How many kernels were to be evaluated (failed ones included)."""
        return len(self.evals) + len(self.failed)

    def wrong(self) -> list[str]:
        """Every wrong decryption of the run, named by kernel."""
        return [f"{ev.name}: {w}" for ev in self.evals for w in ev.wrong]

    def more_keys(self) -> list[str]:
        """Kernels where ours needs more rotation keys than the baseline."""
        out = []
        for ev in self.evals:
            keys = ev.measured.rotation_keys
            if "ours" in keys and "baseline" in keys and keys["ours"] > keys["baseline"]:
                out.append(f"{ev.name} ({keys['ours']} > {keys['baseline']})")
        return out

    def synthesis_s(self) -> float:
        """The whole suite's synthesis time: the sum of per-kernel medians."""
        return sum(ev.synth.median_s or 0.0 for ev in self.evals)


def geomean(values: Iterable[float]) -> float | None:
    """The geometric mean of positive ``values`` (None if there are none)."""
    logs = [math.log(v) for v in values]
    return math.exp(sum(logs) / len(logs)) if logs else None


def num(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"
