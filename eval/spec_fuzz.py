"""The random-spec bench: every spec a user might write ends in a verified kernel or a
located error, never an internal error (issue 24).

``count`` specs are drawn from one seed by the grammar of :mod:`eval.spec_grammar` (the
same pieces as the tests' Hypothesis strategy). Each runs as ``porcupine synth SPEC
--timeout T --json --emit python -o K.py`` in a process of its own, as a user runs it. The
outcome of each:

* **kernel**: exit 0, and the kernel checked here independently of the run: proven equal
  to the spec by :func:`quill.verify.verify` (through its packing, itself proven equal to
  the spec, when the spec asks for one) and equal to the spec's reference on random inputs
  by the interpreter. A kernel that fails either is a **wrong kernel**;
* **located error**: exit 2 with ``file:line:column:`` (the right answer to a spec that is
  not valid; the generator marks the ones written to be invalid); **unlocated error**: exit
  2 without a location;
* **internal error**: ``internal error`` on stderr, or a traceback, or an exit status
  outside the contract; **timeout without kernel** and **nothing found**: exit 1 (past
  ``--timeout``, or a search that ended empty); **hung**: the process outlived the
  timeout by a minute and was killed.

``--encrypted K`` runs K of the kernels (a seeded sample) encrypted on OpenFHE through their
emitted modules (``porcupine run SPEC --kernel K.py --reps 1``) and reports whether every
output was correct. Writes ``eval/spec_fuzz.md`` and ``.json``: the share with a verified
kernel, time percentiles, the counts by outcome and family, and every failure with its
spec text and message. Timings are wall clock of the whole process (start-up included) on
whatever machine runs this, with the load average beside them.

Run: ``.venv/bin/python -m eval.spec_fuzz --specs 500 --seed 0 --timeout 10
[--jobs 1] [--encrypted 30] [--out eval/spec_fuzz]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from eval.machine import load_average, machine_info
from eval.report import md_table
from eval.spec_grammar import FAMILIES, GeneratedSpec, seeded

ROOT = Path(__file__).resolve().parent.parent
LOCATED = re.compile(r"^porcupine: [^\n]*:\d+:\d+: ", re.MULTILINE)
OUTCOMES = (
    "kernel",
    "located error",
    "unlocated error",
    "internal error",
    "wrong kernel",
    "nothing found",
    "timeout without kernel",
    "hung",
)
FAILURES = frozenset(OUTCOMES) - {"kernel", "located error"}
"""Outcomes that are failures whatever the spec; a located error is one for a valid spec."""


@dataclass(frozen=True)
class Run:
    """One spec's synthesis: what came out, how long it took, and what was said."""

    index: int
    family: str
    valid: bool
    outcome: str
    seconds: float
    message: str
    text: str
    packing: str = ""
    synth_seconds: float | None = None  # the command's own figure: search, no start-up
    instructions: int = 0
    optimal: bool = False
    stopped: str | None = None
    encrypted: str = ""  # "correct", "WRONG: ...", or "" when not run encrypted

    @property
    def failed(self) -> bool:
        """Whether this outcome is a failure for this spec."""
        return self.outcome in FAILURES or (self.valid and self.outcome == "located error")


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PORCUPINE_DEBUG": "1"}


def _last_frame(stderr: str) -> str:
    """The innermost ``File "...", line N`` of a traceback, shortened to the repository."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', stderr)
    mine = [f for f in frames if str(ROOT) in f[0] and "/.venv/" not in f[0]]
    if not mine:
        return ""
    path, line, func = mine[-1]
    return f" [at {Path(path).relative_to(ROOT)}:{line} in {func}]"


def _said(stderr: str) -> str:
    """What the command said about how it ended: its ``porcupine:`` lines, not progress."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("porcupine:")]
    return "\n".join(lines[-3:]) or stderr.strip()[-600:]


def classify(code: int, stdout: str, stderr: str) -> tuple[str, str]:
    """An outcome of :data:`OUTCOMES` (``kernel`` before the independent check) and its
    message, from a finished ``synth`` run."""
    said = _said(stderr)
    if "internal error" in stderr or "Traceback" in stderr or code not in (0, 1, 2):
        lines = [ln for ln in stderr.splitlines() if "internal error" in ln]
        if not lines:  # a traceback Python printed itself ("Exception ignored in ..."), or a signal
            tail = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("[")]
            ignored = [ln for ln in tail if ln.startswith("Exception ignored")]
            said = (ignored or tail[-1:] or [""])[0]
            lines = [f"exit {code}, a traceback on stderr: {said} / {tail[-1] if tail else ''}"]
        return "internal error", lines[-1] + _last_frame(stderr)
    if code == 0:
        return "kernel", ""
    if code == 2:
        return ("located error" if LOCATED.search(stderr) else "unlocated error"), said
    if "--timeout" in said and "reached" in said:
        return "timeout without kernel", said
    return "nothing found", said


def independent_check(text: str, result: dict[str, Any], seed: int) -> str:
    """The empty string when the kernel in ``result`` is proven equal to the spec and
    agrees with its reference on random inputs; else what is wrong."""
    from porcupine.layouts.choices import requested
    from porcupine.layouts.packing import check
    from quill.parser import parse_program
    from quill.spec import parse_spec
    from quill.verify import agrees_on_random, verify

    spec = parse_spec(text)
    program = parse_program(result["program"])
    target = spec
    if result.get("packing", "natural") != "natural":
        packing = requested(spec)
        if packing.name != result["packing"]:
            return f"packed as {result['packing']}, but the spec asks for {packing.name}"
        if not check(packing, spec):
            return f"the packing {packing.name} is not equal to the spec"
        target = packing.spec
    if not verify(program, target).ok:
        return "the kernel is not equal to the spec"
    if not agrees_on_random(program, target, draws=3, seed=seed):
        return "the kernel disagrees with the spec's reference on random inputs"
    return ""


def run_one(spec: GeneratedSpec, index: int, folder: Path, timeout: float) -> Run:
    """Synthesize one spec in a process of its own and classify what came out."""
    path = folder / f"spec_{index:04d}.spec"
    path.write_text(spec.text)
    module = folder / f"kernel_{index:04d}.py"
    argv = [sys.executable, "-m", "porcupine.cli", "synth", str(path), "--timeout", str(timeout),
            "--json", "--emit", "python", "-o", str(module), "--force"]  # fmt: skip
    start = time.monotonic()
    base = Run(index, spec.family, spec.valid, "hung", 0.0, "", spec.text)
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 60,
                             env=_env(), cwd=folder, stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired:
        return replace(base, seconds=time.monotonic() - start, message="killed")
    seconds = time.monotonic() - start
    outcome, message = classify(out.returncode, out.stdout, out.stderr)
    run = replace(base, outcome=outcome, seconds=seconds, message=message)
    if outcome != "kernel":
        return run
    try:
        result = json.loads(out.stdout)
        wrong = independent_check(spec.text, result, seed=index)
    except Exception as e:  # the check itself failed: report it, as a wrong kernel
        result, wrong = {}, f"the independent check failed: {type(e).__name__}: {e}"
    return replace(
        run,
        outcome="wrong kernel" if wrong else "kernel",
        message=wrong,
        packing=result.get("packing", ""),
        synth_seconds=result.get("seconds"),
        instructions=result.get("instructions", 0),
        optimal=bool(result.get("optimal", False)),
        stopped=result.get("stopped"),
    )


def run_encrypted(run: Run, folder: Path) -> str:
    """Run a kernel's emitted module encrypted against its spec: "correct" or what failed."""
    spec, module = folder / f"spec_{run.index:04d}.spec", folder / f"kernel_{run.index:04d}.py"
    argv = [sys.executable, "-m", "porcupine.cli", "run", str(spec), "--kernel", str(module),
            "--reps", "1"]  # fmt: skip
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=_env(),
                             cwd=folder, stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired:
        return "WRONG: did not finish in 600 s"
    if out.returncode == 0:
        return "correct"
    return f"WRONG: exit {out.returncode}: {_said(out.stderr)}"


def encrypt_sample(runs: list[Run], count: int, seed: int, folder: Path) -> list[Run]:
    """``runs`` with ``count`` of their kernels (a sample drawn from ``seed``) run encrypted
    from the spec and module files in ``folder``."""
    kernels = [r for r in runs if r.outcome == "kernel"]
    out = list(runs)
    for r in random.Random(seed).sample(kernels, min(count, len(kernels))):
        verdict = run_encrypted(r, folder)
        out[out.index(r)] = replace(r, encrypted=verdict)
        print(f"{r.index:4d} encrypted: {verdict}", file=sys.stderr, flush=True)
    return out


def rerun(runs: list[Run], timeout: float) -> list[Run]:
    """The failed ``runs`` synthesized again (with the code as it is now), one at a time."""
    out = []
    with tempfile.TemporaryDirectory(prefix="spec_fuzz_") as tmp:
        for r in runs:
            if r.failed:
                again = run_one(
                    GeneratedSpec(r.family, r.text, r.valid), r.index, Path(tmp), timeout
                )
                print(f"{r.index:4d} again: {again.outcome}", file=sys.stderr, flush=True)
                out.append(again)
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def bench(
    count: int, seed: int, timeout: float, jobs: int, encrypted: int, log: Path | None = None
) -> dict[str, Any]:
    """Run the bench; the figures and every run, as written to the JSON file. Each run is
    also appended to ``log`` (JSON lines) as it ends, so that a bench cut short can still be
    reported (``--from-log``)."""
    specs = seeded(count, seed)
    load_before = load_average()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="spec_fuzz_") as tmp:
        folder = Path(tmp)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_one, s, i, folder, timeout) for i, s in enumerate(specs)]
            runs = []
            for f in futures:
                runs.append(f.result())
                r = runs[-1]
                if log is not None:
                    with log.open("a") as out:
                        out.write(json.dumps(asdict(r)) + "\n")
                mark = "FAIL " if r.failed else ""
                print(f"{r.index:4d} {r.family:12s} {r.seconds:6.1f} s  {mark}{r.outcome}",
                      file=sys.stderr, flush=True)  # fmt: skip
        runs = encrypt_sample(runs, encrypted, seed, folder)
    return summarize(runs, seed, timeout, jobs, time.monotonic() - start, load_before)


def summarize(
    runs: list[Run], seed: int, timeout: float, jobs: int, wall: float, load_before: str
) -> dict[str, Any]:
    """The bench's figures from its runs."""
    times = [r.seconds for r in runs]
    synth_times = [r.synth_seconds for r in runs if r.synth_seconds is not None]
    valid = [r for r in runs if r.valid]
    with_kernel = [r for r in valid if r.outcome == "kernel"]
    # A kernel is "in time" when the whole process, start-up included, took at most the
    # timeout; the command's own --timeout bounds it from its start, after start-up.
    in_time = [r for r in with_kernel if r.seconds <= timeout]
    enc = [r for r in runs if r.encrypted]
    return {
        "seed": seed,
        "specs": len(runs),
        "timeout": timeout,
        "jobs": jobs,
        "wall_seconds": round(wall, 1),
        "load_before": load_before,
        "load_after": load_average(),
        "machine": machine_info(),
        "valid_specs": len(valid),
        "valid_with_kernel": len(with_kernel),
        "valid_with_kernel_in_time": len(in_time),
        "invalid_specs": len(runs) - len(valid),
        "counts": dict(Counter(r.outcome for r in runs)),
        "by_family": {f: dict(Counter(r.outcome for r in runs if r.family == f)) for f in FAMILIES},
        "percentiles": {
            name: round(percentile(times, q), 2)
            for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
        },
        "synth_percentiles": {
            name: round(percentile(synth_times, q), 2)
            for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
        },
        "encrypted": {"run": len(enc), "correct": sum(r.encrypted == "correct" for r in enc)},
        "runs": [asdict(r) for r in runs],
    }


def report(fig: dict[str, Any]) -> str:
    """The Markdown report of :func:`bench`'s figures."""
    runs = [Run(**r) for r in fig["runs"]]
    valid, kernels = fig["valid_specs"], fig["valid_with_kernel"]
    share = 100 * kernels / valid if valid else 0.0
    in_time = 100 * fig["valid_with_kernel_in_time"] / valid if valid else 0.0
    p, q = fig["percentiles"], fig["synth_percentiles"]
    lines = [
        "# Random-spec bench (issue 24)",
        "",
        f"`python -m eval.spec_fuzz --specs {fig['specs']} --seed {fig['seed']} --timeout "
        f"{fig['timeout']:g} --jobs {fig['jobs']}`: {fig['specs']} specs drawn by "
        "`eval/spec_grammar.py`, each synthesized by `porcupine synth --timeout "
        f"{fig['timeout']:g} --json` in its own process ({fig['jobs']} at a time); every "
        "kernel re-verified here against the spec and checked on random inputs.",
        "",
        f"Machine: {fig['machine'].get('cpu', '')} ({fig['machine'].get('cores', '?')} cores), "
        f"load average {fig['load_before']} before, {fig['load_after']} after; "
        f"{fig['wall_seconds']:.0f} s in all. Times are wall clock of the whole process "
        "(Python start-up included) on a shared machine: noisy.",
        "",
        f"- **Valid specs with a verified kernel: {kernels} / {valid} ({share:.1f}%)**, "
        f"with the whole process (start-up included) within {fig['timeout']:g} s: "
        f"{fig['valid_with_kernel_in_time']} ({in_time:.1f}%).",
        f"- Specs written to be invalid (packing clauses that cannot hold): "
        f"{fig['invalid_specs']}; each should end in a located error (exit 2) or a kernel.",
        f"- Time per spec, the whole process: p50 {p['p50']:.1f} s, p90 {p['p90']:.1f} s, "
        f"p99 {p['p99']:.1f} s, max {p['max']:.1f} s. The synthesis alone (the kernel's "
        f"`seconds`): p50 {q['p50']:.2f} s, p90 {q['p90']:.2f} s, p99 {q['p99']:.2f} s, max "
        f"{q['max']:.2f} s.",
    ]
    enc = fig["encrypted"]
    if enc["run"]:
        lines.append(f"- Encrypted (OpenFHE, emitted module, `porcupine run`): {enc['correct']} "
                     f"/ {enc['run']} kernels correct.")  # fmt: skip
    if fig.get("note"):
        lines += ["", fig["note"]]
    lines += ["", "## Outcomes", ""]
    families = list(fig["by_family"])
    rows = [
        [o, str(fig["counts"].get(o, 0)), *(str(fig["by_family"][f].get(o, 0)) for f in families)]
        for o in OUTCOMES
    ]
    lines += md_table(["outcome", "all", *families], rows)
    if "reruns" in fig:
        again = [Run(**r) for r in fig["reruns"]]
        lines += ["", "## The failures synthesized again, with the code now", ""]
        lines += md_table(
            ["spec", "first", "again", "seconds", "message"],
            [[f"#{r.index}", f"{first.outcome}", r.outcome, f"{r.seconds:.1f}",
              r.message.replace("\n", " ").replace("|", "/")[:160]]
             for r, first in zip(again, [x for x in runs if x.failed], strict=True)],
        )  # fmt: skip
    failures = [r for r in runs if r.failed or r.encrypted.startswith("WRONG")]
    lines += ["", f"## Failures ({len(failures)})", ""]
    if not failures:
        lines.append("None.")
    for r in failures:
        why = r.message if r.failed else r.encrypted
        lines += [
            f"### #{r.index} {r.family}: {r.outcome} ({r.seconds:.1f} s)",
            "",
            "```",
            r.text.rstrip(),
            "```",
            "",
            "```",
            why.strip() or r.encrypted,
            "```",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench; exit 1 when any run failed."""
    ap = argparse.ArgumentParser(
        prog="python -m eval.spec_fuzz", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--specs", type=int, default=500, help="how many specs (default 500)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0, help="synth --timeout per spec")
    ap.add_argument("--jobs", type=int, default=1, help="specs synthesized at once")
    ap.add_argument("--encrypted", type=int, default=0, help="kernels to run encrypted")
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "spec_fuzz")
    ap.add_argument("--from-log", type=Path, help="report the runs of a bench cut short")
    ap.add_argument("--files", type=Path, help="with --from-log: where its runs left files")
    again = "with --from-log: synthesize its failures again, with the code now"
    ap.add_argument("--rerun-failures", action="store_true", help=again)
    ap.add_argument("--note", default="", help="a line for the report (how it was run)")
    args = ap.parse_args(argv)
    if args.from_log is not None:
        runs = [Run(**json.loads(line)) for line in args.from_log.read_text().splitlines()]
        if args.encrypted and args.files is not None:  # the spec and module files it left
            runs = encrypt_sample(runs, args.encrypted, args.seed, args.files)
        fig = summarize(runs, args.seed, args.timeout, args.jobs, 0.0, "n/a")
        if args.rerun_failures:
            fig["reruns"] = [asdict(r) for r in rerun(runs, args.timeout)]
    else:
        log = args.out.with_suffix(".log.jsonl")
        log.unlink(missing_ok=True)
        fig = bench(args.specs, args.seed, args.timeout, args.jobs, args.encrypted, log)
    args.out.with_suffix(".json").write_text(json.dumps(fig, indent=1) + "\n")
    fig["note"] = args.note
    text = report(fig)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 1 if any(Run(**r).failed for r in fig["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
