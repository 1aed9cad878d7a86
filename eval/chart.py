"""The evaluation's chart: per-kernel speedups as grouped bars, with the goals marked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:purple")
GOAL_LINES = ((1.0, "black", "-", "1x"), (1.2, "tab:blue", ":", "(a) goal: 1.2x geomean"),
              (1.8, "tab:orange", "--", "(b) goal: 1.8x geomean"))  # fmt: skip


def write_chart(
    kernels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    means: Mapping[str, float | None],
    path: Path,
) -> None:
    """Grouped bars, one group per kernel and one bar per ``series`` (its geomean in the
    legend), with lines at 1x and at issue 11's goals; written as a PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(7.0, 1.0 * len(kernels) + 3.0), 5.5))
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        xs = [k + (i - (len(series) - 1) / 2) * width for k in range(len(kernels))]
        mean = means.get(label)
        shown = f"{label}: geomean {'n/a' if mean is None else f'{mean:.2f}x'}"
        bars = ax.bar(xs, [v or 0.0 for v in values], width, label=shown, color=COLORS[i % 4])
        texts = ["n/a" if v is None else f"{v:.2f}" for v in values]
        ax.bar_label(bars, texts, fontsize=6, padding=1, rotation=90)
    for y, color, style, label in GOAL_LINES:
        ax.axhline(y, color=color, linestyle=style, linewidth=1.0, label=label)
    ax.set_ylabel("speedup (above 1: ours faster)")
    ax.set_title("Encrypted latency on OpenFHE BFV, one thread, interleaved medians", fontsize=10)
    ax.set_xticks(range(len(kernels)), kernels, rotation=30, ha="right")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_ylim(0, max(2.5, ax.get_ylim()[1] * 1.35))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
