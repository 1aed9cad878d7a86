"""Write an evaluation's results: ``results.csv``, ``results.md`` and ``speedup.png``."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

from eval.chart import write_chart
from eval.latency import CELLS, KEY_CELLS, SETTINGS
from eval.measure import VARIANTS, KernelEval, canonical
from eval.published import COUNT_KEYS
from eval.summary import RATIOS, Summary, num
from quill.printer import format_program

COUNT_FIELDS = ("instructions", "rotations", "rotation_keys", "ct_ct_mults", "depth", "cost_ms")
"""The per-variant counts in the CSV and the counts table."""

GOAL_KERNEL_MIN = 1.00  # (a): every kernel at least this against its baseline
GOAL_KERNEL_GEOMEAN = 1.2  # (a): geomean
GOAL_END_TO_END_GEOMEAN = 1.8  # (b): geomean
GOAL_EVALUATION_S = 15 * 60.0

KEY_LABELS = {
    "b_ours": "ours, own set",
    "b_baseline": "baseline, defaults",
    "c_baseline": "baseline, our set",
}

# --- CSV -------------------------------------------------------------------------------


def csv_columns() -> list[str]:
    """The header of ``results.csv``."""
    columns = ["kernel", "slots", "timeout_s", "synth_s", "optimal", "outcome"]
    for variant in VARIANTS:
        columns += [f"{variant}_{f}" for f in COUNT_FIELDS]
        columns.append(f"{variant}_own_set")
    columns += [f"{cell}_ms" for cell in CELLS]
    columns += list(RATIOS)
    for setting in SETTINGS:
        columns += [f"{setting}_param_set", f"{setting}_ring_dim", f"{setting}_log2_q"]
        columns.append(f"{setting}_digit_size")
    columns.append("defaults_depth")
    for cell in KEY_CELLS:
        columns += [f"{cell}_keygen_ms", f"{cell}_rotation_keygen_ms", f"{cell}_relin_keygen_ms"]
        columns += [f"{cell}_rotation_keys", f"{cell}_rotation_key_bytes"]
    return [*columns, "wrong_decryptions", "notes"]


def csv_row(ev: KernelEval) -> dict[str, str]:
    """One kernel's row of ``results.csv``."""
    m = ev.measured
    row = {
        "kernel": ev.name,
        "slots": str(ev.slots),
        "timeout_s": num(ev.timeout, 1),
        "synth_s": num(ev.synth.median_s, 3),
        "optimal": str(ev.synth.optimal).lower(),
        "outcome": ev.synth.outcome(),
        "wrong_decryptions": str(len(ev.wrong)),
        "notes": "; ".join([*ev.wrong, *ev.notes]),
    }
    for variant in VARIANTS:
        counts = ev.counts(variant)
        for f in COUNT_FIELDS:
            row[f"{variant}_{f}"] = num(getattr(counts, f)) if counts else ""
        row[f"{variant}_own_set"] = counts.param_set if counts else ""
    row |= {f"{cell}_ms": num(m.ms.get(cell)) for cell in CELLS}
    row |= {name: num(ratio(ev)) for name, ratio in RATIOS.items()}
    for setting in SETTINGS:
        s = m.settings.get(setting)
        row[f"{setting}_param_set"] = s.param_set if s else ""
        row[f"{setting}_ring_dim"] = num(s.ring_dim) if s else ""
        row[f"{setting}_log2_q"] = num(s.log2_q, 1) if s else ""
        row[f"{setting}_digit_size"] = num(s.digit_size) if s else ""
    defaults = m.settings.get("defaults")
    row["defaults_depth"] = num(defaults.depth) if defaults else ""
    for cell in KEY_CELLS:
        k = m.keygen.get(cell)
        row[f"{cell}_keygen_ms"] = num(k.evaluation_ms if k else None, 3)
        row[f"{cell}_rotation_keygen_ms"] = num(k.rotation_ms if k else None, 3)
        row[f"{cell}_relin_keygen_ms"] = num(k.relin_ms if k else None, 3)
        row[f"{cell}_rotation_keys"] = num(k.rotation_keys if k else None)
        row[f"{cell}_rotation_key_bytes"] = num(k.rotation_key_bytes if k else None)
    return row


def write_csv(summary: Summary, path: Path) -> None:
    """One row per kernel, then a ``geomean`` row with the geometric means of the ratios."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=csv_columns(), restval="")
        writer.writeheader()
        for ev in summary.evals:
            writer.writerow(csv_row(ev))
        writer.writerow({"kernel": "geomean"} | {r: num(summary.geomean(r)) for r in RATIOS})


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


def _same(ev: KernelEval) -> bool:
    """Whether ours is the baseline up to names (then their ratio is timing noise)."""
    ours, baseline = ev.programs.get("ours"), ev.programs.get("baseline")
    return ours is not None and baseline is not None and canonical(ours) == canonical(baseline)


def goals_rows(summary: Summary) -> list[list[str]]:
    """The done-when of issue 11 (and the run's own time), each with what was measured."""
    n = summary.kernels()
    a = summary.values("a_baseline_over_ours")
    below = [
        f"{ev.name} {_x(ev.kernel_speedup())}" + (" (the baseline's kernel)" if _same(ev) else "")
        for ev in summary.evals
        if (s := ev.kernel_speedup()) is not None and s < GOAL_KERNEL_MIN
    ]
    a_all = len(a) == n and not below
    a_mean, b_mean = summary.geomean("a_baseline_over_ours"), summary.geomean("b_end_to_end")
    b_count = len(summary.values("b_end_to_end"))
    more, wrong = summary.more_keys(), summary.wrong()
    keyed = sum(1 for ev in summary.evals if {"ours", "baseline"} <= set(ev.measured.rotation_keys))
    lowest = f"lowest {_x(min(a))}" if a else "none measured"
    return [
        [
            "(a) kernel only, every kernel vs its hoisted baseline",
            f">= {GOAL_KERNEL_MIN:.2f}x",
            f"{lowest}; {len(a)} of {n} measured"
            + (f"; below: {', '.join(below)}" if below else ""),
            _met(a_all),
        ],
        [
            "(a) kernel only, geomean vs the baselines",
            f">= {GOAL_KERNEL_GEOMEAN:.2f}x",
            f"{_x(a_mean)} over {len(a)} of {n} kernels",
            _met(a_mean is not None and a_mean >= GOAL_KERNEL_GEOMEAN and len(a) == n),
        ],
        [
            "(b) end to end (ours at its set vs the baseline at OpenFHE's defaults), geomean",
            f">= {GOAL_END_TO_END_GEOMEAN:.2f}x",
            f"{_x(b_mean)} over {b_count} of {n} kernels",
            _met(b_mean is not None and b_mean >= GOAL_END_TO_END_GEOMEAN and b_count == n),
        ],
        [
            "no kernel needs more rotation keys than its baseline",
            "0 kernels",
            f"{len(more)} of {keyed}" + (f": {', '.join(more)}" if more else ""),
            _met(not more and keyed == n),
        ],
        [
            "no wrong decryption in this run (every cell checked against the spec)",
            "0",
            str(len(wrong)),
            _met(not wrong and not summary.failed),
        ],
        [
            "full evaluation (this command, wall time)",
            f"< {GOAL_EVALUATION_S / 60:.0f} min",
            f"{summary.wall_s / 60:.1f} min ({summary.wall_s:.0f} s)",
            _met(summary.wall_s < GOAL_EVALUATION_S),
        ],
    ]


def goals_section(summary: Summary) -> list[str]:
    """Issue 11's done-when with what was measured, whichever way it falls."""
    lines = ["## Goals (issue 11, done when)", ""]
    lines += md_table(["goal", "target", "measured", "verdict"], goals_rows(summary))
    lines += [
        "",
        f"Also: the published kernels in the shared context run at "
        f"{_x(summary.geomean('a_published_over_ours'))} of ours (geomean of published / "
        f"ours); (c) the parameter win alone is {_x(summary.geomean('c_parameter_win'))} "
        f"and the kernel win at our set {_x(summary.geomean('kernel_win_at_our_set'))} "
        "(their product is (b)). The noise probe at every parameter set is a separate "
        "command, `python -m eval.noise_probe`.",
        "",
    ]
    if summary.settings.get("mode") == "quick":
        lines += ["(A quick run: the goals are about the full evaluation, not this subset.)", ""]
    return lines


def kernel_only_section(summary: Summary) -> list[str]:
    """(a): the three variants in one shared context."""
    headers = ["kernel", "shared set", "ours ms", "published ms", "baseline ms"]
    headers += ["baseline / ours", "published / ours"]
    rows = []
    for ev in summary.evals:
        m, s = ev.measured, ev.measured.settings.get("shared")
        rows.append(
            [ev.name, f"{s.param_set} ({s.describe()})" if s else "—"]
            + [_fixed(m.ms.get(f"a_{v}")) for v in VARIANTS]
            + [_x(ev.kernel_speedup("baseline")), _x(ev.kernel_speedup("published"))]
        )
    rows.append(
        ["**geomean**", "", "", "", ""]
        + [
            f"**{_x(summary.geomean(r))}**"
            for r in ("a_baseline_over_ours", "a_published_over_ours")
        ]
    )
    return [
        "## (a) Kernel only: one shared context",
        "",
        "Ours, the paper's published kernel and the hand-written baseline (rotations of one "
        "ciphertext hoisted where the cost table says it pays, as the backend emits every "
        "kernel) in ONE context: the cheapest parameter set all three fit "
        "(`quill.noise.shared_parameters`), with the union of their keys. Median ms of the "
        "kernel's OpenFHE calls; ratio above 1: ours is faster.",
        "",
        *md_table(headers, rows),
        "",
    ]


def end_to_end_section(summary: Summary) -> list[str]:
    """(b) and (c): ours at its own set, the baseline at the defaults and at our set."""
    headers = ["kernel", "our set", "defaults (depth)", "ours ms", "baseline @defaults ms"]
    headers += [
        "baseline @our set ms",
        "(b) end to end",
        "(c) parameter win",
        "kernel win @our set",
    ]
    rows = []
    for ev in summary.evals:
        m = ev.measured
        own, d = m.settings.get("ours"), m.settings.get("defaults")
        rows.append(
            [
                ev.name,
                f"{own.param_set} ({own.describe()})" if own else "—",
                f"{d.describe()} ({d.depth})" if d else "—",
                _fixed(m.ms.get("b_ours")),
                _fixed(m.ms.get("b_baseline")),
                _fixed(m.ms.get("c_baseline")),
                _x(ev.end_to_end()),
                _x(ev.parameter_win()),
                _x(ev.kernel_win_at_ours()),
            ]
        )
    means = ("b_end_to_end", "c_parameter_win", "kernel_win_at_our_set")
    rows.append(
        ["**geomean**", "", "", "", "", ""] + [f"**{_x(summary.geomean(r))}**" for r in means]
    )
    return [
        "## (b) End to end and (c) the parameter win",
        "",
        "(b): ours in its own parameter set (`quill.noise.parameters`, the context its emitted "
        "module builds) against the baseline in OpenFHE's default context for its depth "
        "(`CCParamsBFVRNS` with `SetMultiplicativeDepth(d)`, t = 65537, HEStd_128_classic, "
        "everything else OpenFHE's: what a hand-writer does; d is the baseline's ct*ct depth, "
        "at least 1, since OpenFHE's depth-0 context cannot rotate). (c): the baseline at our "
        "parameter set; baseline @defaults / baseline @our set is the parameter win, baseline "
        "@our set / ours the kernel win, and their product is (b). Each cell has its own "
        "context and keys; all cells of a kernel, (a)'s included, take turns in one loop.",
        "",
        *md_table(headers, rows),
        "",
    ]


def keys_section(summary: Summary) -> list[str]:
    """Rotation keys (count, serialized size) and key-generation time per setting."""
    headers = ["kernel", "rotation keys (ours / published / baseline)"]
    headers += [f"bytes, {KEY_LABELS[c]}" for c in KEY_CELLS]
    headers += [f"keygen ms, {KEY_LABELS[c]} (rot. + relin.)" for c in KEY_CELLS]
    rows = []
    for ev in summary.evals:
        m = ev.measured
        keys = " / ".join(str(m.rotation_keys.get(v, "—")) for v in VARIANTS)
        sizes = [f"{k.rotation_key_bytes:,}" if (k := m.keygen.get(c)) else "—" for c in KEY_CELLS]
        times = [
            f"{k.evaluation_ms:.1f} ({k.rotation_ms:.1f} + {k.relin_ms:.1f})"
            if (k := m.keygen.get(c))
            else "—"
            for c in KEY_CELLS
        ]
        rows.append([ev.name, keys, *sizes, *times])
    samples = max(
        (k.samples for ev in summary.evals for k in ev.measured.keygen.values()), default=0
    )
    return [
        "## Keys and key generation",
        "",
        "Rotation keys each variant needs (EvalSum's included) and, per setting, the rotation "
        "keys' size serialized in OpenFHE's BINARY format "
        "(`SerializeEvalAutomorphismKeyString`) and the time to generate the evaluation keys "
        "(rotation keys + relinearization key; the key pair itself is not counted). Median of "
        f"{samples} generations per setting, interleaved, each with a fresh key pair.",
        "",
        *md_table(headers, rows),
        "",
    ]


def synthesis_section(summary: Summary) -> list[str]:
    """Synthesis times and optimality."""
    rows = [
        [
            ev.name,
            _fixed(ev.synth.median_s, 2),
            ", ".join(f"{s:.2f}" for s in ev.synth.seconds),
            ev.synth.outcome(),
            f"{ev.timeout:.0f}",
        ]
        for ev in summary.evals
    ]
    return [
        "## Synthesis",
        "",
        "Each run is `synthesize(spec, timeout=...)` from scratch with the default objective "
        "(estimated latency on the backend, quill.cost). `optimal` means Z3 proved no "
        "cheaper kernel exists in the sketch; a run that hits its timeout reports its best "
        "verified kernel as `not proven optimal` (the notes say why).",
        "",
        *md_table(["kernel", "median s", "runs (s)", "outcome", "timeout s"], rows),
        "",
    ]


def counts_section(summary: Summary) -> list[str]:
    """The static counts of every variant of every kernel."""
    headers = ["kernel", "variant", "instr.", "rot.", "rot. keys", "ct*ct", "depth"]
    headers += ["own set", "est. ms"]
    rows = []
    for ev in summary.evals:
        for variant in VARIANTS:
            c = ev.counts(variant)
            if c is not None:
                ints = (c.instructions, c.rotations, c.rotation_keys, c.ct_ct_mults, c.depth)
                rows.append([ev.name, variant, *map(str, ints), c.param_set, f"{c.cost_ms:.3f}"])
    return [
        "## Counts",
        "",
        "Depth is the ct*ct multiplicative depth; own set the cheapest parameter set its "
        "noise allows, and est. ms the cost model's latency there (`quill.cost.program_cost`).",
        "",
        *md_table(headers, rows),
        "",
    ]


PAPER_HEADERS = {
    "instructions": "instr.",
    "rotations": "rot.",
    "additions": "add/sub/neg",
    "ct_pt_mults": "ct*pt",
    "ct_ct_mults": "ct*ct",
    "mult_depth": "depth",
}


def paper_section(summary: Summary) -> list[str]:
    """The paper's counts beside ours, as "paper / ours"."""
    rows = []
    for ev in summary.evals:
        c = ev.counts("ours")
        paper = summary.paper.get(ev.name, {})
        mine = (
            dict(zip(COUNT_KEYS, (c.instructions, c.rotations, c.additions, c.ct_pt_mults,
                                  c.ct_ct_mults, c.depth), strict=True))
            if c
            else {}
        )  # fmt: skip
        rows.append([ev.name] + [f"{paper.get(k, '—')} / {mine.get(k, '—')}" for k in COUNT_KEYS])
    return [
        "## Against the paper's published kernels (paper / ours)",
        "",
        "The paper's counts (Porcupine, PLDI 2021; `shared/reference/porcupine-kernels.md`) "
        "beside ours. The paper minimized instructions on SEAL; ours minimizes latency on "
        "OpenFHE, so more instructions (e.g. hoisted rotations of the input) can be faster.",
        "",
        *md_table(["kernel", *(PAPER_HEADERS[k] for k in COUNT_KEYS)], rows),
        "",
    ]


def kernels_section(summary: Summary) -> list[str]:
    """The synthesized kernels themselves."""
    lines = ["## The synthesized kernels", ""]
    for ev in summary.evals:
        if (program := ev.programs.get("ours")) is not None:
            lines += [f"{ev.name}:", "", "```", format_program(program).rstrip(), "```", ""]
    return lines


def notes_section(summary: Summary) -> list[str]:
    """Failures first (wrong decryptions, failed kernels), then remarks per kernel."""
    items = [f"- **FAILURE** {w}" for w in summary.wrong()]
    items += [f"- **FAILURE** {name}: evaluation failed: {e}" for name, e in summary.failed.items()]
    items += [f"- {ev.name}: {note}" for ev in summary.evals for note in ev.notes]
    return ["## Notes", "", *(items or ["- none"]), ""]


def header_section(summary: Summary) -> list[str]:
    """Title, command, machine and settings."""
    machine = [f"- {key}: {value}" for key, value in summary.machine.items()]
    settings = [f"- {key}: {value}" for key, value in summary.settings.items()]
    nice = min((ev.measured.nice for ev in summary.evals), default=0)
    return [
        "# Evaluation: synthesized kernels vs hand-written OpenFHE code",
        "",
        f"Written by `{summary.command}`; total wall time {summary.wall_s:.1f} s.",
        "Baselines are `kernels/baselines/*.quill` (what an HE programmer writes without a "
        "synthesizer; rotations of the input hoisted), published kernels "
        "`kernels/published/*.quill` (the paper's), ours synthesized from `kernels/*.spec` in "
        "this run. Every timing is one thread, the median over interleaved rounds (the "
        "variants alternate run by run, so machine noise hits all alike), of the kernel's "
        "OpenFHE calls (the emitted `evaluate`); every output was decrypted and checked "
        "against the spec first." + (f" Timed at raised priority (nice {nice})." if nice else ""),
        "The chart is `speedup.png`, the numbers `results.csv`.",
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
    """``results.md``: goals, (a), (b)/(c), keys, synthesis, counts, paper, notes, kernels."""
    sections = (
        header_section,
        goals_section,
        kernel_only_section,
        end_to_end_section,
        keys_section,
        synthesis_section,
        counts_section,
        paper_section,
        notes_section,
        kernels_section,
    )
    lines = [line for section in sections for line in section(summary)]
    path.write_text("\n".join(lines).rstrip() + "\n")


def write_all(summary: Summary, out: Path) -> list[Path]:
    """Write the three result files into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.csv", out / "results.md", out / "speedup.png"]
    write_csv(summary, paths[0])
    write_markdown(summary, paths[1])
    write_chart(
        [ev.name for ev in summary.evals],
        {label: [RATIOS[r](ev) for ev in summary.evals] for label, r in CHART_SERIES.items()},
        {label: summary.geomean(r) for label, r in CHART_SERIES.items()},
        paths[2],
    )
    return paths


CHART_SERIES = {
    "(a) kernel only: baseline / ours, shared context": "a_baseline_over_ours",
    "(b) end to end: baseline at OpenFHE defaults / ours at its set": "b_end_to_end",
    "(c) parameter win: baseline at defaults / baseline at our set": "c_parameter_win",
}
