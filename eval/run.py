"""The evaluation: one command, three result files.

For every kernel ``kernels/NAME.spec`` that has a hand-written baseline
(``kernels/baselines/NAME.quill``): synthesize it from scratch with the default objective
(estimated latency; ``--runs`` timed runs) and ``--layout padded`` (the spec's packing, each
input zero padded where the spare slots make the kernel cheaper; ``--layout given`` for the
spec's packing alone; ``--keys-of-baseline`` to stay within the baseline's rotation keys),
count it, the baseline and the paper's published
kernel, and measure them encrypted on OpenFHE in one interleaved run (:mod:`eval.latency`):
(a) the three in one shared context, (b) ours at its own parameter set against the baseline
at OpenFHE's defaults for its depth, (c) the baseline at our set; key generation and the
rotation keys' number and size. Every decryption is checked against the spec. Writes
``results.md``, ``results.csv`` and ``speedup.png`` into ``--out`` (default ``eval/``).

Run: ``./dev eval`` or ``.venv/bin/python -m eval.run [--quick] [--out DIR] [--timeout S]
[--kernel-timeout NAME=S ...] [--layout given|padded] [--keys-of-baseline] [NAME ...]``.
Progress goes to stderr. Exit status 1 when a kernel's evaluation failed or a decryption
was wrong.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from eval.machine import load_average, machine_info
from eval.measure import KernelEval, Setup, default_objective, evaluate_kernel
from eval.published import paper_counts
from eval.report import write_all
from eval.summary import Summary
from eval.synthesize_suite import SUITE

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "kernels"
RESULTS = KERNELS / "results"
DEFAULT_OUT = Path(__file__).resolve().parent

QUICK_KERNELS = ("box_blur", "dot_product")


def suite(kernels_dir: Path) -> list[str]:
    """Every kernel with both a spec and a baseline, in the paper's order (``SUITE``)."""
    names = [
        p.stem
        for p in kernels_dir.glob("*.spec")
        if (kernels_dir / "baselines" / f"{p.stem}.quill").is_file()
    ]
    rank = {name: i for i, name in enumerate(SUITE)}
    return sorted(names, key=lambda n: (rank.get(n, len(SUITE)), n))


class Progress:
    """Progress lines on stderr: elapsed time, kernel, step."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def say(self, kernel: str, message: str) -> None:
        print(f"[{self.elapsed():7.1f} s] {kernel}: {message}", file=sys.stderr, flush=True)


def _kernel_timeout(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not sep or not name or seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected NAME=SECONDS, got {text!r}")
    return name, seconds


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (``--help`` lists it)."""
    p = argparse.ArgumentParser(prog="python -m eval.run", description=__doc__.split("\n\n")[0])
    p.add_argument("kernels", nargs="*", help="kernels to evaluate (default: all with a baseline)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="box_blur and dot_product, 5 latency rounds, 1 key generation round, 20 s timeout",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write (default eval/)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per synthesis (120)")
    p.add_argument(
        "--kernel-timeout",
        type=_kernel_timeout,
        action="append",
        default=[],
        metavar="NAME=S",
        help="a kernel's own timeout per synthesis (repeatable)",
    )
    p.add_argument("--runs", type=int, default=1, help="timed syntheses per kernel (1)")
    p.add_argument("--reps", type=int, default=None, help="interleaved latency rounds (100)")
    p.add_argument(
        "--keygen-reps", type=int, default=None, help="interleaved key-generation rounds (5)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the encrypted inputs")
    p.add_argument(
        "--keys-of-baseline",
        action="store_true",
        help="ours within each baseline's rotation-key count (--max-rotation-keys K per kernel)",
    )
    p.add_argument(
        "--layout",
        choices=["given", "padded"],
        default="padded",
        help="ours: the spec's packing (given), or zero padded where the spare slots make the "
        "kernel cheaper (padded, the default; no element moves)",
    )
    p.add_argument("--verbose", action="store_true", help="also show the search's progress")
    args = p.parse_args(argv)
    quick = args.quick
    args.reps = args.reps or (5 if quick else 100)
    args.keygen_reps = args.keygen_reps or (1 if quick else 5)
    args.timeout = args.timeout or (20.0 if quick else 120.0)
    args.kernels = args.kernels or (list(QUICK_KERNELS) if quick else suite(KERNELS))
    return args


def settings(args: argparse.Namespace) -> dict[str, str]:
    """The run's settings, for the report."""
    overrides = ", ".join(f"{n} {s:.0f} s" for n, s in args.kernel_timeout) or "none"
    return {
        "mode": "quick" if args.quick else "full",
        "kernels": ", ".join(args.kernels),
        "objective": default_objective().value,
        "layout of ours": args.layout
        + (
            " (the spec's; each input zero padded to up to 8x its slots where that makes the "
            "kernel cheaper: no element moves, the emitted module pads)"
            if args.layout == "padded"
            else " (the spec's)"
        ),
        "rotation keys of ours": "at most the baseline's (--max-rotation-keys per kernel)"
        if args.keys_of_baseline
        else "unbounded (keys break ties only)",
        "synthesis runs per kernel": str(args.runs),
        "timeout per synthesis": f"{args.timeout:.0f} s (per-kernel overrides: {overrides})",
        "interleaved latency rounds": str(args.reps),
        "key-generation rounds (plus the measured cells' own)": str(args.keygen_reps),
        "input seed": str(args.seed),
    }


def evaluate_all(
    args: argparse.Namespace, progress: Progress
) -> tuple[list[KernelEval], dict[str, str]]:
    """Evaluate every kernel; a kernel whose evaluation raises is recorded, not fatal."""
    setup = Setup(
        kernels_dir=KERNELS,
        runs=args.runs,
        reps=args.reps,
        keygen_reps=args.keygen_reps,
        timeout=args.timeout,
        timeouts=dict(args.kernel_timeout),
        seed=args.seed,
        verbose=args.verbose,
        layout=args.layout,
        baseline_keys=args.keys_of_baseline,
    )
    evals: list[KernelEval] = []
    failed: dict[str, str] = {}
    for name in args.kernels:
        try:
            evals.append(evaluate_kernel(name, setup, functools.partial(progress.say, name)))
        except Exception as e:  # one broken kernel must not cost the whole evaluation
            traceback.print_exc(file=sys.stderr)
            failed[name] = f"{type(e).__name__}: {e}"
    return evals, failed


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation and write the result files; 0 on success, 1 if a kernel failed."""
    args = parse_args(argv)
    progress = Progress()
    machine = machine_info()
    evals, failed = evaluate_all(args, progress)
    machine["load average at end (1/5/15 min)"] = load_average()
    summary = Summary(
        evals=evals,
        machine=machine,
        command=" ".join(["python -m eval.run", *(sys.argv[1:] if argv is None else argv)]),
        settings=settings(args),
        paper={name: paper_counts(name, RESULTS) for name in args.kernels},
        failed=failed,
    )
    summary.wall_s = progress.elapsed()
    paths = write_all(summary, args.out)
    progress.say("done", "wrote " + ", ".join(str(p) for p in paths))
    shown = {
        label: "n/a" if (mean := summary.geomean(ratio)) is None else f"{mean:.3f}x"
        for label, ratio in (("(a) kernel only", "a_baseline_over_ours"),
                             ("(b) end to end", "b_end_to_end"),
                             ("(c) parameter win", "c_parameter_win"))
    }  # fmt: skip
    wrong = summary.wrong()
    print(
        "geomean speedups over the baselines: "
        + ", ".join(f"{k} {v}" for k, v in shown.items())
        + f"; wrong decryptions: {len(wrong)}; suite synthesis {summary.synthesis_s():.1f} s; "
        f"total wall time {progress.elapsed():.1f} s",
        file=sys.stderr,
    )
    return 1 if failed or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
