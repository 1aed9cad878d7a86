"""Does the cost model predict what the backend measures? Predicted vs measured latency.

For every suite kernel and each of its variants (ours: ``kernels/results/NAME.json``'s
``program``; the paper's ``kernels/published/NAME.quill``; the hand-written
``kernels/baselines/NAME.quill``), at every parameter set the chooser may pick for it (every
set the noise model proves safe whose predicted latency is within ``--window`` times that of
the chooser's pick; sets predicted further away are not candidates unless the model is off
by more than that factor, which the ratios below would show), this prints

* the predicted latency, :func:`quill.cost.program_cost` with the table in use;
* the measured latency: the median of the emitted kernel's OpenFHE calls (its ``evaluate``,
  as ``eval/latency.py`` times it), every (variant, set) cell of a kernel taking turns, the
  order reversed every round, at raised priority where permitted, one thread; each cell's
  decryption is checked against the spec once before timing (a wrong one is reported and
  not timed);
* their ratio measured / predicted;

and per variant whether the chooser's pick (:func:`quill.noise.parameters`) is the
measured-fastest of the candidate sets (a pick within ``--same`` of the fastest counts as a
tie: two medians that close are within the machine's run-to-run noise).

The summary states the tolerance (``--tolerance``): the share of cells whose ratio is within
it, the geomean and range of the ratios, and the picks that are not the fastest.

Run: ``.venv/bin/python -m eval.cost_check [--reps R] [--costs FILE] [-o FILE.md] [NAME ...]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eval.latency import raised_priority
from eval.synthesize_suite import SUITE
from porcupine.backend import EmitOptions, emitted_module
from porcupine.backend.openfhe_run import Session
from quill.cost import DEFAULT_TABLE, CostTable, load_table, program_cost
from quill.ir import Program
from quill.noise import accepts, parameters
from quill.params import SETS, ParameterSet
from quill.parser import load_program, parse_program
from quill.relin import place_relinearizations
from quill.spec import Spec, load_spec

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "kernels"
VARIANTS = ("ours", "published", "baseline")


@dataclass
class Cell:
    kernel: str
    variant: str
    param_set: str
    predicted_ms: float
    picked: bool
    measured_ms: float | None = None
    wrong: bool = False

    @property
    def ratio(self) -> float | None:
        if self.measured_ms is None:
            return None
        return self.measured_ms / self.predicted_ms


def programs(name: str) -> dict[str, Program]:
    """The variants of kernel ``name`` that exist."""
    out: dict[str, Program] = {}
    result = KERNELS / "results" / f"{name}.json"
    if result.is_file():
        out["ours"] = parse_program(json.loads(result.read_text())["program"])
    for variant, folder in (("published", "published"), ("baseline", "baselines")):
        path = KERNELS / folder / f"{name}.quill"
        if path.is_file():
            out[variant] = load_program(path)
    return out


def candidates(
    program: Program, slots: int, table: CostTable, window: float
) -> tuple[ParameterSet, list[ParameterSet]]:
    """The chooser's pick and the safe sets predicted within ``window`` times its latency."""
    pick = parameters(program, slots, table).param_set
    lowered = place_relinearizations(program)
    limit = program_cost(program, pick, table) * window
    safe = [
        s
        for s in SETS
        if s.name in table.latency_ms
        and accepts(s, lowered, slots)
        and program_cost(program, s, table) <= limit
    ]
    return pick, safe


def measure_kernel(
    name: str, table: CostTable, reps: int, window: float, seed: int, say: Any
) -> list[Cell]:
    spec: Spec = load_spec(KERNELS / f"{name}.spec")
    variants = programs(name)
    cells: list[Cell] = []
    by_set: dict[str, list[tuple[Cell, Program]]] = {}
    for variant, program in variants.items():
        pick, safe = candidates(program, spec.n, table, window)
        for s in safe:
            cell = Cell(name, variant, s.name, program_cost(program, s, table), s == pick)
            cells.append(cell)
            by_set.setdefault(s.name, []).append((cell, program))
    inputs = spec.random_inputs(np.random.default_rng(seed))
    timed: list[tuple[Cell, Any, Any, dict[str, Any]]] = []
    sessions = []
    for set_name, members in by_set.items():
        param_set = next(s for s in SETS if s.name == set_name)
        modules = [
            emitted_module(p, spec, EmitOptions(param_set=param_set, table=table))
            for _, p in members
        ]
        session = Session(modules)
        sessions.append(session)
        for (cell, _), module in zip(members, modules, strict=True):
            args = session.arguments(module, inputs)
            _, bad = session.check(module, spec, inputs, args)
            if bad:
                cell.wrong = True
                say(f"{name} {cell.variant} at {set_name}: WRONG decryption, not timed")
                continue
            timed.append((cell, module, session.cc, args))
    say(f"{name}: {len(timed)} cells, {reps} interleaved rounds")
    times: dict[int, list[float]] = {id(c): [] for c, *_ in timed}
    order = list(timed)
    for _cell, module, cc, args in order:  # warm each cell once
        module.evaluate(cc, **args)
    gc.collect()
    gc.disable()
    try:
        with raised_priority():
            for _ in range(reps):
                for cell, module, cc, args in order:
                    start = time.perf_counter()
                    module.evaluate(cc, **args)
                    times[id(cell)].append((time.perf_counter() - start) * 1e3)
                order.reverse()
    finally:
        gc.enable()
    for cell, *_ in timed:
        cell.measured_ms = statistics.median(times[id(cell)])
    return cells


def _geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def report(
    cells: Sequence[Cell], tolerance: float, same: float, table: CostTable
) -> tuple[str, dict[str, Any]]:
    """A markdown report and a summary object."""
    lines = [
        "# Cost model check: predicted vs measured kernel latency",
        "",
        f"Written by `python -m eval.cost_check`. Table: {table.source}.",
        "Predicted: `quill.cost.program_cost`; measured: median of the emitted kernel's "
        "OpenFHE calls, every cell of a kernel interleaved. `*` marks the chooser's pick "
        "(`quill.noise.parameters`).",
        "",
        "| kernel | variant | set | predicted ms | measured ms | measured / predicted |",
        "|---|---|---|---|---|---|",
    ]
    for c in cells:
        mark = " *" if c.picked else ""
        shown = "WRONG" if c.wrong else f"{c.measured_ms:.3f}" if c.measured_ms else "-"
        ratio = f"{c.ratio:.2f}" if c.ratio else "-"
        lines.append(
            f"| {c.kernel} | {c.variant} | {c.param_set}{mark} | {c.predicted_ms:.3f} | "
            f"{shown} | {ratio} |"
        )
    ratios = [c.ratio for c in cells if c.ratio]
    within = [r for r in ratios if abs(r - 1) <= tolerance]
    picks: list[str] = []
    not_fastest: list[str] = []
    groups: dict[tuple[str, str], list[Cell]] = {}
    for c in cells:
        groups.setdefault((c.kernel, c.variant), []).append(c)
    for (kernel, variant), group in groups.items():
        measured = [c for c in group if c.measured_ms]
        picked = [c for c in measured if c.picked]
        if not measured or not picked:
            continue
        fastest = min(measured, key=lambda c: c.measured_ms or 0.0)
        pick = picked[0]
        assert pick.measured_ms is not None and fastest.measured_ms is not None
        slower = pick.measured_ms / fastest.measured_ms
        verdict = "fastest" if slower <= 1 + same else f"{slower:.2f}x the fastest"
        picks.append(
            f"- {kernel} {variant}: picks {pick.param_set}, {verdict}"
            + (
                ""
                if fastest is pick
                else f" (fastest {fastest.param_set}, "
                f"{fastest.measured_ms:.3f} ms vs {pick.measured_ms:.3f} ms)"
            )
        )
        if slower > 1 + same:
            not_fastest.append(f"{kernel} {variant}")
    wrong = [f"{c.kernel} {c.variant} {c.param_set}" for c in cells if c.wrong]
    summary: dict[str, Any] = {
        "cells": len(ratios),
        "tolerance": tolerance,
        "within_tolerance": len(within),
        "geomean_ratio": _geomean(ratios) if ratios else None,
        "min_ratio": min(ratios) if ratios else None,
        "max_ratio": max(ratios) if ratios else None,
        "picks": len(picks),
        "picks_not_fastest": not_fastest,
        "wrong": wrong,
    }
    lines += [
        "",
        "## Summary",
        "",
        f"- tolerance: measured within +-{tolerance:.0%} of predicted: "
        f"{len(within)} of {len(ratios)} cells",
        f"- measured / predicted: geomean {summary['geomean_ratio']:.2f}, "
        f"range {summary['min_ratio']:.2f} to {summary['max_ratio']:.2f}"
        if ratios
        else "- nothing measured",
        f"- the chooser's pick is the measured-fastest candidate (ties within {same:.0%}): "
        f"{len(picks) - len(not_fastest)} of {len(picks)}"
        + (f"; not: {', '.join(not_fastest)}" if not_fastest else ""),
        f"- wrong decryptions: {len(wrong)}",
        "",
        "## Picks",
        "",
        *picks,
        "",
    ]
    return "\n".join(lines), summary


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kernels", nargs="*", help="suite kernels (default: all)")
    ap.add_argument("--reps", type=int, default=30, help="interleaved rounds (default 30)")
    ap.add_argument("--costs", help="cost table to predict with (default: the package's)")
    ap.add_argument(
        "--window",
        type=float,
        default=2.0,
        help="candidate sets: safe, predicted within this factor of the pick",
    )
    ap.add_argument(
        "--tolerance",
        type=float,
        default=0.25,
        help="stated tolerance of measured / predicted (default 0.25)",
    )
    ap.add_argument(
        "--same",
        type=float,
        default=0.03,
        help="a pick this close to the fastest is a tie (default 0.03)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", help="also write the markdown report here")
    ap.add_argument("--json", help="also write the cells and summary as JSON here")
    args = ap.parse_args(argv)
    table = load_table(args.costs) if args.costs else DEFAULT_TABLE
    names = args.kernels or [n for n in SUITE if (KERNELS / f"{n}.spec").is_file()]

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    cells: list[Cell] = []
    for name in names:
        cells += measure_kernel(name, table, args.reps, args.window, args.seed, say)
    text, summary = report(cells, args.tolerance, args.same, table)
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"summary": summary, "cells": [vars(c) for c in cells]}, indent=1) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
