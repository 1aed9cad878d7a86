"""Write an evaluation's results: ``results.csv``, ``results.md`` and ``speedup.png``."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.measure import LABELS, VARIANTS, Counts, KernelEval
from eval.published import COUNT_KEYS, PAPER_GEOMEAN_SPEEDUP
from quill.printer import format_program

COUNT_FIELDS = ("instructions", "rotations", "rotation_keys", "ct_ct_mults", "depth", "cost_ms")
"""The per-variant counts in the CSV and the counts table."""

SPEEDUP_VARIANTS = ("synth", "published", "synth_latency")
"""Variants whose speedup over the baseline is reported, ours first."""

GOAL_SPEEDUP = 1.25
GOAL_SYNTHESIS_S = 120.0
GOAL_EVALUATION_S = 15 * 60.0


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

    def speedups(self, variant: str, *, hoisting: bool = True) -> list[float]:
        """``variant``'s speedups over the baselines, for the kernels where both were timed."""
        found = (ev.speedup(variant, hoisting=hoisting) for ev in self.evals)
        return [s for s in found if s is not None]

    def geomean(self, variant: str, *, hoisting: bool = True) -> float | None:
        """Geometric-mean speedup of ``variant`` over the baselines, where measured."""
        return geomean(self.speedups(variant, hoisting=hoisting))

    def kernels(self) -> int:
        """How many kernels were to be evaluated (failed ones included)."""
        return len(self.evals) + len(self.failed)

    def synthesis_s(self) -> float:
        """The whole suite's synthesis time: the sum of per-kernel medians (default
        objective)."""
        return sum(ev.synth.median_s or 0.0 for ev in self.evals)


def geomean(values: Iterable[float]) -> float | None:
    """The geometric mean of positive ``values`` (None if there are none)."""
    logs = [math.log(v) for v in values]
    return math.exp(sum(logs) / len(logs)) if logs else None


def _num(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


# --- CSV -------------------------------------------------------------------------------


def csv_columns() -> list[str]:
    """The header of ``results.csv``."""
    columns = ["kernel", "slots", "ring_dim", "timeout_s", "synth_runs", "synth_s_median"]
    columns += ["synth_s_runs", "optimal", "outcome", "source"]
    columns += ["synth_latency_s", "synth_latency_outcome"]
    for variant in VARIANTS:
        columns += [f"{variant}_{f}" for f in COUNT_FIELDS]
        columns += [f"{variant}_ms", f"{variant}_ms_unhoisted", f"{variant}_keygen_ms"]
    columns += [f"speedup_{v}" for v in SPEEDUP_VARIANTS]
    columns += [f"speedup_{v}_unhoisted" for v in SPEEDUP_VARIANTS]
    return [*columns, "notes"]


def csv_row(ev: KernelEval) -> dict[str, str]:
    """One kernel's row of ``results.csv``."""
    row = {
        "kernel": ev.name,
        "slots": str(ev.slots),
        "ring_dim": _num(ev.ring_dim),
        "timeout_s": _num(ev.timeout, 1),
        "synth_runs": str(len(ev.synth.seconds)),
        "synth_s_median": _num(ev.synth.median_s, 3),
        "synth_s_runs": ";".join(_num(s, 3) for s in ev.synth.seconds),
        "optimal": str(ev.synth.optimal).lower(),
        "outcome": ev.synth.outcome(),
        "source": ev.synth.source,
        "synth_latency_s": _num(ev.synth_latency.median_s, 3),
        "synth_latency_outcome": ev.synth_latency.outcome(),
        "notes": "; ".join(ev.notes),
    }
    for variant in VARIANTS:
        counts = ev.counts(variant)
        for f in COUNT_FIELDS:
            row[f"{variant}_{f}"] = _num(getattr(counts, f)) if counts else ""
        row[f"{variant}_ms"] = _num(ev.latency_ms.get(variant))
        row[f"{variant}_ms_unhoisted"] = _num(ev.unhoisted_ms.get(variant))
        row[f"{variant}_keygen_ms"] = _num(ev.keygen_ms.get(variant))
    for variant in SPEEDUP_VARIANTS:
        row[f"speedup_{variant}"] = _num(ev.speedup(variant))
        row[f"speedup_{variant}_unhoisted"] = _num(ev.speedup(variant, hoisting=False))
    return row


def write_csv(summary: Summary, path: Path) -> None:
    """One row per kernel, then a ``geomean`` row with the geometric-mean speedups."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=csv_columns(), restval="")
        writer.writeheader()
        for ev in summary.evals:
            writer.writerow(csv_row(ev))
        means = {f"speedup_{v}": _num(summary.geomean(v)) for v in SPEEDUP_VARIANTS}
        means |= {
            f"speedup_{v}_unhoisted": _num(summary.geomean(v, hoisting=False))
            for v in SPEEDUP_VARIANTS
        }
        writer.writerow({"kernel": "geomean", **means})


# --- Markdown --------------------------------------------------------------------------


def md_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _fixed(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def goals_section(summary: Summary) -> list[str]:
    """The three goals with what was measured, whichever way they fall."""
    mean = summary.geomean("synth")
    synth_s = summary.synthesis_s()
    timed_out = [ev.name for ev in summary.evals if not ev.synth.optimal]
    rows = [
        [
            "geomean encrypted-latency speedup over the baselines (ours, default objective)",
            f">= {GOAL_SPEEDUP:.2f}x",
            f"{_x(mean)} (over {len(summary.speedups('synth'))} of {summary.kernels()} kernels)",
            _met(mean is not None and mean >= GOAL_SPEEDUP),
        ],
        [
            "whole suite synthesized (sum of per-kernel medians, default objective)",
            f"< {GOAL_SYNTHESIS_S:.0f} s",
            f"{synth_s:.1f} s",
            _met(synth_s < GOAL_SYNTHESIS_S and not summary.failed),
        ],
        [
            "full evaluation (this command, wall time)",
            f"< {GOAL_EVALUATION_S / 60:.0f} min",
            f"{summary.wall_s / 60:.1f} min ({summary.wall_s:.0f} s)",
            _met(summary.wall_s < GOAL_EVALUATION_S),
        ],
    ]
    lines = ["## Goals", "", *md_table(["goal", "target", "measured", "verdict"], rows), ""]
    unhoisted = summary.geomean("synth", hoisting=False)
    lines += [
        "With no rotation hoisted in any kernel (every rotation a full key switch, as in the "
        f"paper's SEAL kernels) the geomean speedup of ours is {_x(unhoisted)}; see "
        "the latency tables.",
        "",
    ]
    if summary.settings.get("mode") == "quick":
        lines += ["(A quick run: the goals are about the full evaluation, not this subset.)", ""]
    if timed_out:
        lines.append(
            "Not proven optimal (a timeout, or a sketch the proof does not cover): "
            + ", ".join(timed_out)
            + "; see the synthesis table."
        )
        lines.append("")
    return lines


def latency_section(summary: Summary) -> list[str]:
    """Encrypted latency of every variant and the speedups over the baseline."""
    headers = ["kernel", "N"] + [f"{LABELS[v]} ms" for v in VARIANTS]
    headers += [f"speedup {LABELS[v]}" for v in SPEEDUP_VARIANTS]
    headers += ["keygen ms (baseline / ours / latency obj.)"]
    rows = []
    for ev in summary.evals:
        keygen = " / ".join(
            _fixed(ev.keygen_ms.get(v), 1) for v in ("baseline", "synth", "synth_latency")
        )
        rows.append(
            [ev.name, _num(ev.ring_dim) or "—"]
            + [_fixed(ev.latency_ms.get(v)) for v in VARIANTS]
            + [_x(ev.speedup(v)) for v in SPEEDUP_VARIANTS]
            + [keygen]
        )
    rows.append(
        ["**geomean**", ""]
        + [""] * len(VARIANTS)
        + [f"**{_x(summary.geomean(v))}**" for v in SPEEDUP_VARIANTS]
        + [""]
    )
    reps = summary.settings.get("latency runs", "?")
    nice = min((ev.latency_nice for ev in summary.evals), default=0)
    priority = (
        f" The timed runs ran at raised priority (nice {nice}) to be preempted less by other "
        "processes on the machine."
        if nice
        else ""
    )
    return [
        "## Encrypted latency (OpenFHE BFV, t = 65537, 128-bit security, one thread)",
        "",
        "Per kernel, all variants run interleaved in ONE context (the union of their rotation "
        "keys, the largest multiplicative depth any needs, so one ring dimension N), after one "
        f"checked decryption each; median of {reps} runs per variant, kernel call only. "
        "Speedup = baseline latency / variant latency (above 1: faster than the baseline). "
        "Key generation (key pair, relinearization and rotation keys) is timed per variant "
        f"in a context of its own.{priority}",
        "",
        *md_table(headers, rows),
        "",
    ]


def unhoisted_section(summary: Summary) -> list[str]:
    """Latency and speedups with no rotation hoisted: the published kernels' setting."""
    variants, faster = ("baseline", "published", "synth"), ("synth", "published")
    headers = ["kernel"] + [f"{LABELS[v]} ms" for v in variants]
    headers += [f"speedup {LABELS[v]}" for v in faster]
    rows = [
        [ev.name]
        + [_fixed(ev.unhoisted_ms.get(v)) for v in variants]
        + [_x(ev.speedup(v, hoisting=False)) for v in faster]
        for ev in summary.evals
    ]
    means = [f"**{_x(summary.geomean(v, hoisting=False))}**" for v in faster]
    rows.append(["**geomean**"] + [""] * len(variants) + means)
    return [
        "### The same kernels with no rotation hoisted",
        "",
        "The backend hoists rotations of one ciphertext by several amounts (one "
        "`EvalFastRotationPrecompute`, then cheap `EvalFastRotation`s) wherever the cost table "
        "says it pays, and that favours the baselines, which rotate the input by every offset. "
        "Here every kernel is emitted with plain `EvalRotate`s (a second context, same "
        "procedure).",
        "",
        *md_table(headers, rows),
        "",
    ]


def synthesis_section(summary: Summary) -> list[str]:
    """Synthesis times and optimality, both objectives."""
    rows = [
        [
            ev.name,
            _fixed(ev.synth.median_s, 2),
            ", ".join(f"{s:.2f}" for s in ev.synth.seconds),
            ev.synth.outcome(),
            ev.synth.source,
            _fixed(ev.synth_latency.median_s, 2),
            ev.synth_latency.outcome(),
            f"{ev.timeout:.0f}",
        ]
        for ev in summary.evals
    ]
    headers = ["kernel", "median s", "runs (s)", "outcome", "source"]
    headers += ["latency obj. s", "latency obj. outcome", "timeout s"]
    return [
        "## Synthesis",
        "",
        "Each run is `synthesize(spec, timeout=...)` from scratch (no initial kernel), "
        "with the default (instruction) objective. The latency objective is run once, "
        "seeded with that kernel as its initial cost bound (source `initial`: nothing "
        "faster was found). "
        "`optimal` means Z3 proved no cheaper kernel exists in the sketch; a run that hits "
        "its timeout reports its best verified kernel as `not proven optimal` (the notes say "
        "why), or `none found` if it had none, and then is not repeated.",
        "",
        *md_table(headers, rows),
        "",
    ]


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def counts_section(summary: Summary) -> list[str]:
    """The static counts of every variant of every kernel."""
    headers = ["kernel", "variant", "instr.", "rot.", "rot. keys", "ct*ct", "depth", "est. ms"]
    rows = []
    for ev in summary.evals:
        for variant in VARIANTS:
            counts = ev.counts(variant)
            if counts is not None:
                rows.append([ev.name, LABELS[variant], *_count_cells(counts)])
    return [
        "## Counts",
        "",
        "Depth is the ct*ct multiplicative depth; est. ms is the cost model's latency "
        "(`quill.cost.program_cost`, hoisted rotations priced) at the ring dimension the "
        "kernel's own noise needs.",
        "",
        *md_table(headers, rows),
        "",
    ]


def _count_cells(c: Counts) -> list[str]:
    ints = (c.instructions, c.rotations, c.rotation_keys, c.ct_ct_mults, c.depth)
    return [str(v) for v in ints] + [f"{c.cost_ms:.3f}"]


PAPER_HEADERS = {
    "instructions": "instr.",
    "rotations": "rot.",
    "additions": "add/sub/neg",
    "ct_pt_mults": "ct*pt",
    "ct_ct_mults": "ct*ct",
    "mult_depth": "depth",
}


def paper_section(summary: Summary) -> list[str]:
    """The paper's counts beside ours (default objective), as "paper / ours"."""
    rows = []
    for ev in summary.evals:
        ours = ev.counts("synth")
        paper = summary.paper.get(ev.name, {})
        mine = _paper_keyed(ours) if ours else {}
        rows.append(
            [ev.name]
            + [f"{paper.get(k, '—')} / {mine.get(k, '—')}" for k in COUNT_KEYS]
            + [_verdict(paper, mine)]
        )
    headers = ["kernel", *(PAPER_HEADERS[k] for k in COUNT_KEYS), "ours vs paper"]
    return [
        "## Against the paper's published kernels (paper / ours)",
        "",
        "The paper's counts (Porcupine, Cowan et al., PLDI 2021; "
        "`shared/reference/porcupine-kernels.md`) beside our synthesized kernel's; "
        "— where the paper gives none (sobel and harris are composed kernels).",
        "",
        *md_table(headers, rows),
        "",
    ]


def _paper_keyed(c: Counts) -> dict[str, int]:
    return {
        "instructions": c.instructions,
        "rotations": c.rotations,
        "additions": c.additions,
        "ct_pt_mults": c.ct_pt_mults,
        "ct_ct_mults": c.ct_ct_mults,
        "mult_depth": c.depth,
    }


def _verdict(paper: dict[str, int], ours: dict[str, int]) -> str:
    shared = [k for k in paper if k in ours]
    if not shared:
        return "—"
    worse = [PAPER_HEADERS[k] for k in shared if ours[k] > paper[k]]
    better = [PAPER_HEADERS[k] for k in shared if ours[k] < paper[k]]
    parts = [
        f"{word} {', '.join(keys)}" for word, keys in (("fewer", better), ("more", worse)) if keys
    ]
    return "; ".join(parts) or "equal"


def kernels_section(summary: Summary) -> list[str]:
    """The synthesized kernels themselves."""
    lines = ["## The synthesized kernels", ""]
    for ev in summary.evals:
        for variant in ("synth", "synth_latency"):
            program = ev.programs.get(variant)
            if program is not None:
                lines += [
                    f"{ev.name}, {LABELS[variant]}:",
                    "",
                    "```",
                    format_program(program).rstrip(),
                    "```",
                    "",
                ]
    return lines


def notes_section(summary: Summary) -> list[str]:
    """Everything that went wrong or deserves a remark, per kernel."""
    items = [f"- {name}: evaluation failed: {error}" for name, error in summary.failed.items()]
    items += [f"- {ev.name}: {note}" for ev in summary.evals for note in ev.notes]
    return ["## Notes", "", *(items or ["- none"]), ""]


def header_section(summary: Summary) -> list[str]:
    """Title, command, machine and settings."""
    machine = [f"- {key}: {value}" for key, value in summary.machine.items()]
    settings = [f"- {key}: {value}" for key, value in summary.settings.items()]
    return [
        "# Evaluation: synthesized kernels vs hand-written baselines",
        "",
        f"Written by `{summary.command}`; total wall time {summary.wall_s:.1f} s.",
        "Baselines are `kernels/baselines/*.quill` (what an HE programmer writes without a "
        "synthesizer), published kernels `kernels/published/*.quill` (the paper's), ours "
        "synthesized from `kernels/*.spec` in this run. The chart is `speedup.png`, the "
        "numbers `results.csv`.",
        "",
        "## Machine",
        "",
        *machine,
        "",
        "## Settings",
        "",
        *settings,
        "",
    ]


def write_markdown(summary: Summary, path: Path) -> None:
    """``results.md``: goals, latency, synthesis, counts, paper comparison, kernels, notes."""
    sections = (
        header_section,
        goals_section,
        latency_section,
        unhoisted_section,
        synthesis_section,
        counts_section,
        paper_section,
        notes_section,
        kernels_section,
    )
    lines = [line for section in sections for line in section(summary)]
    path.write_text("\n".join(lines).rstrip() + "\n")


# --- chart -----------------------------------------------------------------------------


CHART_STYLE = {
    "synth": ("ours", "tab:blue"),
    "synth_latency": ("ours, latency objective", "tab:cyan"),
    "published": ("published (the paper's kernel)", "tab:orange"),
}


def _speedup_panel(ax: Any, summary: Summary, variants: Sequence[str], hoisting: bool) -> None:
    """Grouped bars of ``variants``' speedups per kernel on ``ax``, with the lines at 1x
    and at the paper's geomean."""
    width = 0.8 / len(variants)
    for i, variant in enumerate(variants):
        label, color = CHART_STYLE[variant]
        xs = [k + (i - (len(variants) - 1) / 2) * width for k in range(len(summary.evals))]
        speedups = [ev.speedup(variant, hoisting=hoisting) for ev in summary.evals]
        legend = f"{label}: geomean {_x(summary.geomean(variant, hoisting=hoisting))}"
        bars = ax.bar(xs, [s or 0.0 for s in speedups], width, label=legend, color=color)
        texts = ["n/a" if s is None else f"{s:.2f}" for s in speedups]
        ax.bar_label(bars, texts, fontsize=6, padding=1, rotation=90)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.axhline(
        PAPER_GEOMEAN_SPEEDUP,
        color="tab:red",
        linestyle="--",
        linewidth=1.2,
        label=f"the paper's geomean speedup ({PAPER_GEOMEAN_SPEEDUP:.2f}x, PLDI 2021)",
    )
    ax.set_ylabel("speedup over the baseline")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_ylim(0, max(2.0, ax.get_ylim()[1] * 1.3))


def write_chart(summary: Summary, path: Path) -> None:
    """Speedup over the baseline per kernel: as emitted (top), and with no rotation
    hoisted (bottom), each with the paper's geomean marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [ev.name for ev in summary.evals]
    fig, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(max(7.0, 1.0 * len(names) + 2.5), 8.5)
    )
    _speedup_panel(top, summary, ("synth", "synth_latency", "published"), hoisting=True)
    top.set_title(
        "Encrypted latency on OpenFHE BFV, relative to hand-written baselines\n"
        "as emitted: rotations of one ciphertext hoisted where that pays",
        fontsize=10,
    )
    _speedup_panel(bottom, summary, ("synth", "published"), hoisting=False)
    bottom.set_title("no rotation hoisted in any kernel (plain EvalRotate)", fontsize=10)
    bottom.set_xticks(range(len(names)), names, rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(summary: Summary, out: Path) -> list[Path]:
    """Write the three result files into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.csv", out / "results.md", out / "speedup.png"]
    write_csv(summary, paths[0])
    write_markdown(summary, paths[1])
    write_chart(summary, paths[2])
    return paths
