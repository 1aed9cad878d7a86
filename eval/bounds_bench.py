"""Do searches end? The specs whose searches ran to their budget under the default
objective (issue 24), and, with ``--all``, every corpus and layout spec at 10 s.

Each spec is synthesized by the ``porcupine`` command as a user runs it (``synth SPEC
--timeout T --json``, one process each, one thread), and the table gives its seconds,
whether it ended with a proof, its kernel's cost and counts, and the lower bound over every
kernel (:func:`porcupine.search.bounds.lower_bound` at 0 components) against that kernel's
latency at the search's parameter set: where the two are equal, the kernel is optimal over
every kernel; where they differ, the gap is what no bound here closes.

    python -m eval.bounds_bench                 # the listed specs, 60 s each
    python -m eval.bounds_bench --all -o eval/bounds.md   # and every corpus and layout spec at 10 s
    python -m eval.bounds_bench smooth5 harris_flat       # only these (printed, not written)

With ``-o`` onto a file holding the markers :data:`START` and :data:`END`, only the text
between them is replaced (eval/bounds.md keeps its account of the bound around the tables).

Timings are wall-clock on whatever else the machine runs: re-run on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from porcupine.search.bounds import floor_for, lower_bound
from porcupine.search.cegis import ring_for
from porcupine.search.restrictions import derive
from quill.cost import DEFAULT_TABLE, Objective, objective, row_us
from quill.parser import parse_program
from quill.spec import load_spec
from quill.verify import reference

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "kernels"
START = "<!-- bounds_bench: start -->"
END = "<!-- bounds_bench: end -->"

LISTED = ("blur5", "smooth5", "blur3_cyclic", "conv1d", "variance", "gaussian3", "prewitt")
"""The specs issue 24 names (the first three written for it into kernels/corpus)."""


@dataclass(frozen=True)
class Run:
    """One ``synth`` run and the bound against its kernel."""

    name: str
    timeout: float
    seconds: float | None
    optimal: bool
    stopped: str | None
    cost_ms: float | None
    instructions: int | None
    kernel_us: int | None  # the kernel's latency at the search's parameter set
    bound_us: int | None  # the lower bound over every kernel there
    scope: str
    error: str = ""


def run(spec_path: Path, timeout: float) -> Run:
    """Synthesize ``spec_path`` with the command, and price the bound against the result."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "porcupine.cli", "synth", str(spec_path)]
    cmd += ["--timeout", str(timeout), "--json", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout + 120)
    name = spec_path.stem
    if done.returncode != 0 or not done.stdout.strip():
        error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Run(name, timeout, None, False, None, None, None, None, None, "", error)
    result = json.loads(done.stdout)
    spec = load_spec(spec_path)
    ref = reference(spec)
    restrictions = derive(ref)
    ring = ring_for(restrictions, spec.n)
    program = parse_program(result["program"])
    kernel = objective(program, ring, DEFAULT_TABLE, Objective.LATENCY)[0]
    bound = lower_bound(
        floor_for(ref, restrictions), 0, row_us(DEFAULT_TABLE, ring), Objective.LATENCY
    )[0]
    return Run(
        name,
        timeout,
        result["seconds"],
        result["optimal"],
        result.get("stopped"),
        result["cost"],
        result["instructions"],
        kernel,
        bound,
        result["optimal_scope"],
    )


def table(runs: list[Run]) -> str:
    """The runs as a markdown table."""
    lines = [
        "| spec | timeout | seconds | optimal | stopped | cost (ms) | instructions | "
        "kernel / bound (us, search's set) | scope |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        if r.error:
            lines.append(f"| {r.name} | {r.timeout:g} | error: {r.error} | | | | | | |")
            continue
        versus = f"{r.kernel_us} / {r.bound_us}"
        lines.append(
            f"| {r.name} | {r.timeout:g} | {r.seconds:.1f} | {r.optimal} | {r.stopped or ''} | "
            f"{r.cost_ms} | {r.instructions} | {versus} | {r.scope} |"
        )
    return "\n".join(lines)


def _spliced(path: Path, text: str) -> str:
    """``text`` between the markers of the file at ``path`` when it has them, else alone."""
    old = path.read_text() if path.exists() else ""
    if START in old and END in old and old.index(START) < old.index(END):
        head, rest = old.split(START, 1)
        return f"{head}{START}\n\n{text}\n{END}{rest.split(END, 1)[1]}"
    return text


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and, with ``-o``, write) its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every corpus and layout spec too")
    parser.add_argument("--timeout", type=float, default=60.0, help="for the listed specs")
    parser.add_argument("-o", "--output", type=Path, help="write the table here")
    parser.add_argument(
        "names", nargs="*", help="only these specs (corpus or layout names), printed only"
    )
    args = parser.parse_args(argv)
    if args.names:
        return _only(args.names, args.timeout)
    runs: list[Run] = []
    for n in LISTED:
        runs.append(run(KERNELS / "corpus" / f"{n}.spec", args.timeout))
        print(table([runs[-1]]).splitlines()[-1], flush=True)
    others: list[Run] = []
    if args.all:
        paths = sorted((KERNELS / "corpus").glob("*.spec")) + sorted(
            (KERNELS / "layouts").glob("*.spec")
        )
        for p in paths:
            if p.stem not in LISTED:
                others.append(run(p, 10.0))
                print(table([others[-1]]).splitlines()[-1], flush=True)
    text = "### Specs issue 24 lists (default objective, latency)\n\n" + table(runs) + "\n"
    if others:
        text += "\n### Every other corpus and layout spec at 10 s\n\n" + table(others) + "\n"
    if args.output is not None:
        args.output.write_text(_spliced(args.output, text))
    print(text)
    return 0


def _only(names: list[str], timeout: float) -> int:
    """Run the specs ``names`` (the listed ones at ``timeout``, the rest at 10 s) and print
    their rows; a name that is no corpus or layout spec is a usage error."""
    runs = []
    for name in names:
        paths = [KERNELS / d / f"{name}.spec" for d in ("corpus", "layouts")]
        path = next((p for p in paths if p.exists()), None)
        if path is None:
            print(f"bounds_bench: no corpus or layout spec {name!r}", file=sys.stderr)
            return 2
        runs.append(run(path, timeout if name in LISTED else 10.0))
        print(table([runs[-1]]).splitlines()[-1], flush=True)
    print(table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
