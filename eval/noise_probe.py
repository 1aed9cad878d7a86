"""Probe the noise model (:mod:`quill.noise`) under real OpenFHE, at every parameter set.

Two parts, both on worst-case inputs (every plaintext coefficient at +-(t-1)/2) and with the
noise measured exactly (raw decryption, :mod:`porcupine.backend.rawnoise`):

* ``--calibrate``: the model's primitive steps (fresh encryption, one key switch, the growth
  of ct*pt and ct*ct, and of ct*pt by a uniform constant c over log2 (c mod t)) over several
  keys and inputs, against each set's constants in :mod:`quill.params` (and
  :data:`quill.noise.CONST_MUL_BITS`). A constant below a measurement is a model that can
  undershoot.
* the edge probe (default): for every set and every pattern of
  :data:`porcupine.backend.noise_probe.PATTERNS` (squarings, ct*pt chains, multiplies by
  constants, rotations then multiplies, sums of 16 products, EvalSum), the longest chain
  the model accepts on the set, run encrypted: every one of the N slots must decrypt to the
  cleartext backend's value, and the measured noise must not exceed the prediction.
  ``--beyond`` also runs one step longer, to show how much the model leaves unused.

Run: ``.venv/bin/python -m eval.noise_probe [--calibrate] [--sets NAME ...] [--seeds K]``;
the edge probe at every set takes about ten minutes on two cores. Exit status 1 when a
decryption is wrong or the model undershoots.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from porcupine.backend.noise_probe import PATTERNS, ProbeRun, edge, primitives, run
from quill.noise import CONST_MUL_BITS, MARGIN_BITS
from quill.params import SETS, by_name


def calibrate(names: list[str], seeds: int) -> int:
    """Print the measured maxima of the primitives next to the constants; 1 if any
    constant is below its measurement."""
    fields = ["fresh", "key_switch", "mul_pt", "mul_cc"]
    print(f"{'set':<16}" + "".join(f"{f:>22}" for f in fields) + f"{'mul_const':>22}{'add_pt':>10}")
    print(f"{'':<16}" + "".join(f"{'measured / model':>22}" for _ in [*fields, "mul_const"]))
    low = []
    for name in names:
        s = by_name(name)
        samples = [primitives(s, seed) for seed in range(seeds)]
        most = {f: max(getattr(p, f) for p in samples) for f in fields}
        most["key_switch"] = max(most["key_switch"], *(p.relin_key_switch for p in samples))
        most["mul_const"] = max(p.mul_const for p in samples)
        add_pt = max(p.add_pt for p in samples)
        cells = []
        for f in [*fields, "mul_const"]:
            model = CONST_MUL_BITS if f == "mul_const" else getattr(s.noise, f)
            cells.append(f"{most[f]:>12.2f} / {model:<7.1f}")
            if model < most[f]:
                low.append(f"{name}.{f}: model {model} < measured {most[f]:.2f}")
        print(f"{name:<16}" + "".join(f"{c:>22}" for c in cells) + f"{add_pt:>10.2f}", flush=True)
    print("\nconstants below a measurement:" if low else "\nevery constant bounds its measurements")
    print("\n".join(f"  {m}" for m in low))
    return 1 if low else 0


def probe(names: list[str], seeds: int, beyond: bool, patterns: list[str] | None = None) -> int:
    """Print the edge probe's table (of ``patterns``, by default all); 1 on any wrong
    decryption or undershoot."""
    print(
        f"{'set':<16}{'pattern':<12}{'edge':>5}{'predicted':>11}{'measured':>10}{'slack':>7}"
        f"{'left':>7}{'wrong':>7}   longer chain: measured bits left, wrong slots"
    )
    runs: list[ProbeRun] = []
    for name in names:
        s = by_name(name)
        for pattern, (build, _) in PATTERNS.items():
            if patterns is not None and pattern not in patterns:
                continue
            length = edge(pattern, s)
            if length == 0:
                print(f"{name:<16}{pattern:<12}{'-':>5}  (the model accepts none)", flush=True)
                continue
            at_edge = [run(build(length), s, seed) for seed in range(seeds)]
            runs += at_edge
            worst = max(at_edge, key=lambda r: r.measured)
            wrong = sum(r.wrong_slots for r in at_edge)
            longer = ""
            if beyond:
                over = run(build(length + 1), s, 0)
                longer = f"   {over.budget:6.1f}, {over.wrong_slots}"
            print(
                f"{name:<16}{pattern:<12}{length:>5}{worst.predicted:>11.1f}{worst.measured:>10.1f}"
                f"{min(r.slack for r in at_edge):>7.1f}{min(r.budget for r in at_edge):>7.1f}"
                f"{wrong:>7}{longer}",
                flush=True,
            )
    wrong_runs = [r for r in runs if r.wrong_slots]
    under = [r for r in runs if r.slack < 0]
    closest = min(runs, key=lambda r: r.budget)
    tightest = min(runs, key=lambda r: r.slack)
    print(
        f"\n{len(runs)} encrypted runs at the edge of {len(names)} parameter sets; "
        f"wrong decryptions: {len(wrong_runs)}; the model undershot in {len(under)}.\n"
        f"Closest to failure: {closest.program} on {closest.param_set}, "
        f"{closest.budget:.1f} bits left (the model requires {MARGIN_BITS:.0f} over its "
        f"prediction). Tightest prediction: {tightest.program} on {tightest.param_set}, "
        f"{tightest.slack:.1f} bits above the measurement."
    )
    for r in wrong_runs + under:
        print(f"  PROBLEM: {dataclasses.asdict(r)}")
    return 1 if wrong_runs or under else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calibrate", action="store_true", help="measure the primitives")
    parser.add_argument("--sets", nargs="+", default=[s.name for s in SETS])
    parser.add_argument("--seeds", type=int, default=2, help="keys and inputs per probe")
    parser.add_argument("--beyond", action="store_true", help="also one step past the edge")
    parser.add_argument("--patterns", nargs="+", choices=list(PATTERNS), help="only these")
    args = parser.parse_args(argv)
    for name in args.sets:
        by_name(name)
    if args.calibrate:
        return calibrate(args.sets, args.seeds)
    return probe(args.sets, args.seeds, args.beyond, args.patterns)


if __name__ == "__main__":
    sys.exit(main())
