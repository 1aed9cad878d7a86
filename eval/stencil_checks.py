"""The exhaustive stencil checks no term of the bound makes (issue 24: smooth5, gaussian3).

Each line runs :func:`porcupine.search.stencil_circuits.stencil_circuit` on one plan the
lower bound prices below the spec's kernel: a plan with a multiply by any plaintext, which
path counting cannot exclude. False proves the plan holds no kernel (the scalar model holds
at the spec's size: :class:`~porcupine.search.stencil_circuits.Stencil`), None that the
search ran out of states (no claim), True that a program of the model computes it. These
take seconds to minutes, too long for the bound the search prices before its first query,
so they are decided here, offline, and eval/bounds.md reports them.

    python -m eval.stencil_checks            # every check below
    python -m eval.stencil_checks gaussian3  # only that spec's

Timings are wall-clock on whatever else the machine runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from porcupine.search.stencil_circuits import stencil_circuit, stencil_groups, stencil_of
from quill.spec import load_spec
from quill.verify import reference

CORPUS = Path(__file__).parent.parent / "kernels" / "corpus"

CHECKS = (
    ("smooth5", (4,), 4),  # 611 us: one hoisted group of four, 4 additions and a multiply
    ("smooth5", (4,), 5),  # 627 us: the same with 5 additions (the kernel: 632 us)
    ("gaussian3", (2, 2), 4),  # 811 us: two hoisted groups of two, 4 additions and a multiply
)
"""(spec, group sizes, additions) of each plan checked, with a multiply."""


def main(argv: list[str] | None = None) -> int:
    """Run the checks (those of the named specs only, if any) and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="only these specs' checks")
    parser.add_argument("--steps", type=int, default=100_000_000, help="states, at most")
    args = parser.parse_args(argv)
    for name, shape, adds in CHECKS:
        if args.names and name not in args.names:
            continue
        stencil = stencil_of(reference(load_spec(CORPUS / f"{name}.spec")))
        if stencil is None or not (stencil.one if len(shape) == 1 else stencil.many):
            print(f"{name} {shape} {adds} adds + multiply: the scalar model does not hold")
            continue
        for groups in stencil_groups(stencil, shape) or []:
            start = time.monotonic()
            found = stencil_circuit(stencil, groups, adds, True, args.steps)
            seconds = time.monotonic() - start
            print(f"{name} {groups} {adds} adds + multiply: {found} ({seconds:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
