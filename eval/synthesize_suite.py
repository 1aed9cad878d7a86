"""Synthesize the Porcupine benchmark suite from scratch and compare with the paper.

For each kernel spec in ``kernels/`` (or the ones named), run :func:`synthesize` under the
paper's objective (fewest key switches, then instructions; see ``PAPER``) with no
initial kernel, so the result is the synthesizer's own, and write
``kernels/results/NAME.json``: the result's ``to_json()`` object plus

* ``spec`` and ``size`` (the spec's parameters and slot count);
* ``published``: the counts of the paper's kernel (``kernels/published/NAME.quill``, checked
  here against the table of ``shared/reference/porcupine-kernels.md``; sobel and harris have
  no published counts, so theirs are those of a composition of the published kernels);
* ``baseline``: the same counts of the hand-written kernel in ``kernels/baselines/``;
* ``comparison``: synthesized minus published, per count, and a verdict.

A kernel for which nothing is found within the time budget gets no file (an older one is
left alone) and is reported. ``kernels/README.md`` is regenerated from all result files
after every run, so its table cannot drift from them.

Run: ``.venv/bin/python -m eval.synthesize_suite [--timeout S] [NAME ...]``;
``--readme`` only regenerates the README.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.published import COUNT_KEYS, PAPER_COUNTS
from porcupine.files import write_atomically
from porcupine.synthesize import Options, SynthesisError, synthesize
from quill import stats
from quill.cost import Objective, program_cost
from quill.ir import Program
from quill.noise import parameters
from quill.parser import load_program
from quill.spec import Spec, load_spec
from quill.verify import verify

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "kernels"
RESULTS = KERNELS / "results"
README = KERNELS / "README.md"

SUITE = (
    "box_blur",
    "dot_product",
    "hamming_distance",
    "l2_distance",
    "linear_regression",
    "polynomial_regression",
    "gx",
    "gy",
    "roberts_cross",
    "sobel",
    "harris",
)
"""The kernels of porcupine-kernels.md, in its order; each has ``kernels/NAME.spec``."""

PAPER = Options(goal=Objective.INSTRUCTIONS)
"""The paper's measure (key switches, then instructions): these results are compared with
its counts. Latency, the compiler's default objective, is compared in ``eval.measure``."""

COUNTS = COUNT_KEYS
"""The counts compared, under the key names of ``SynthesisResult.to_json()``."""

PAPER_SOBEL_DEPTH = 1
"""porcupine-kernels.md gives sobel's depth only, harris nothing (both multi-step); the
other kernels' counts are :data:`eval.published.PAPER_COUNTS`."""


def paper_counts(name: str) -> dict[str, int]:
    """The counts the paper's table states for ``name`` (a subset of :data:`COUNTS`)."""
    if name == "sobel":
        return {"mult_depth": PAPER_SOBEL_DEPTH}
    return dict(PAPER_COUNTS.get(name, {}))


def counts(program: Program, spec: Spec) -> dict[str, Any]:
    """The compared counts of ``program``, its rotation keys, and its estimated latency
    (ms) at the ring dimension its noise needs (as ``SynthesisResult.cost``)."""
    params = parameters(program, spec.n)
    c = stats.counts(program)
    return {
        "instructions": c.instructions,
        "rotations": c.rotations,
        "additions": c.additions,
        "ct_pt_mults": c.ct_pt_mults,
        "ct_ct_mults": c.ct_ct_mults,
        "mult_depth": params.ct_ct_depth,
        "rotation_keys": list(c.rotation_keys),
        "cost": round(program_cost(program, params.param_set), 4),
    }


def reference_kernel(kind: str, name: str, spec: Spec) -> dict[str, Any]:
    """Counts of ``kernels/KIND/NAME.quill`` (KIND: published or baselines), which must be
    proven equal to ``spec``."""
    path = KERNELS / kind / f"{name}.quill"
    program = load_program(path)
    verdict = verify(program, spec)
    if not verdict.ok:
        raise AssertionError(f"{path} is not equal to {spec.name}: {verdict.counterexample}")
    return {"kernel": str(path.relative_to(ROOT)), **counts(program, spec)}


def published_block(name: str, spec: Spec) -> dict[str, Any]:
    """The ``published`` block: the published kernel's counts, checked against the paper's."""
    block = reference_kernel("published", name, spec)
    stated = paper_counts(name)
    wrong = {k: (v, block[k]) for k, v in stated.items() if block[k] != v}
    if wrong:
        raise AssertionError(f"{block['kernel']} differs from the paper's counts: {wrong}")
    complete = set(stated) >= set(COUNTS)
    block["source"] = (
        "Porcupine (Cowan et al., PLDI 2021): the paper's kernel and counts"
        if complete
        else "composed from the paper's kernels (the paper gives "
        + (f"only {', '.join(sorted(stated))}" if stated else "no counts")
        + ")"
    )
    block["from_paper"] = sorted(stated)
    return block


def comparison(result: dict[str, Any], published: dict[str, Any]) -> dict[str, Any]:
    """Synthesized minus published, per count and cost, and a one-word verdict."""
    delta: dict[str, Any] = {k: result[k] - published[k] for k in COUNTS}
    delta["cost"] = round(result["cost"] - published["cost"], 4)
    worse = [k for k in (*COUNTS, "cost") if delta[k] > 0]
    better = [k for k in (*COUNTS, "cost") if delta[k] < 0]
    verdict = "mixed" if worse and better else "worse" if worse else "better" if better else "equal"
    return {"delta": delta, "verdict": verdict, "worse_in": worse, "better_in": better}


def size_of(spec: Spec) -> dict[str, int]:
    """The spec's parameters and slot count."""
    return {**dict(spec.params), "slots": spec.n}


def run_one(name: str, timeout: float) -> dict[str, Any] | None:
    """Synthesize ``name`` from scratch and build its result record (``None``: not found)."""
    spec = load_spec(KERNELS / f"{name}.spec")
    published = published_block(name, spec)
    baseline = reference_kernel("baselines", name, spec)
    try:
        result = synthesize(spec, timeout=timeout, options=PAPER)
    except SynthesisError as e:
        print(f"{name}: nothing found: {e}", file=sys.stderr)
        return None
    record = result.to_json()
    record["spec"] = f"kernels/{name}.spec"
    record["size"] = size_of(spec)
    record["published"] = published
    record["baseline"] = baseline
    record["comparison"] = comparison(record, published)
    return record


def load_results() -> dict[str, dict[str, Any]]:
    """Every result file present, by kernel name, in suite order."""
    out: dict[str, dict[str, Any]] = {}
    for name in SUITE:
        path = RESULTS / f"{name}.json"
        if path.is_file():
            out[name] = json.loads(path.read_text())
    return out


def _size_text(size: dict[str, int]) -> str:
    if "w" in size and "h" in size:
        return f"{size['h']}x{size['w']} ({size['slots']} slots)"
    if "n" in size:
        return f"n = {size['n']}"
    return f"{size['slots']} slots"


def _cells(c: dict[str, Any]) -> str:
    return (
        f"{c['instructions']} | {c['rotations']} | {c['additions']} | {c['ct_pt_mults']} | "
        f"{c['ct_ct_mults']} | {c['mult_depth']} | {c['cost']:.2f}"
    )


def table(results: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: per kernel, published vs synthesized vs baseline counts."""
    head = "instr | rot | add | ct*pt | ct*ct | depth | cost ms"
    lines = [
        f"| kernel | size | kernel of | {head} | optimal | synth s |",
        "|---|---|---|" + "---|" * 9,
    ]
    for name, r in results.items():
        optimal = "yes" if r["optimal"] else "no"
        seconds = f"{r['seconds']:.1f}"
        pub = "published" if r["published"]["source"].startswith("Porcupine") else "composed"
        rows = [(pub, r["published"]), ("synthesized", r), ("baseline", r["baseline"])]
        for i, (label, c) in enumerate(rows):
            first = (f"**{name}**", _size_text(r["size"])) if i == 0 else ("", "")
            extra = (optimal, seconds) if label == "synthesized" else ("", "")
            lines.append(
                f"| {first[0]} | {first[1]} | {label} | {_cells(c)} | {' | '.join(extra)} |"
            )
    return "\n".join(lines)


def readme_text(results: dict[str, dict[str, Any]]) -> str:
    """``kernels/README.md`` for ``results``."""
    missing = [n for n in SUITE if n not in results]
    note = f"\nNo result yet for: {', '.join(missing)}.\n" if missing else ""
    return f"""# Kernels

The Porcupine benchmark kernels (Cowan et al., PLDI 2021), at the default sizes of their
specs.

| where | what |
| --- | --- |
| `NAME.spec` | what the kernel computes, in plaintext |
| `published/NAME.quill` | the paper's kernel in Quill (sobel, harris: composed of them) |
| `baselines/NAME.quill` | what an HE programmer writes without a synthesizer |
| `results/NAME.json` | our synthesizer's kernel, found from scratch, with the counts of all three |

Every kernel here is proven equal to its spec (`tests/test_suite.py`). Counts: instructions,
rotations, additions (add/sub/neg, ciphertext or plaintext), ct*pt and ct*ct multiplies,
ct*ct multiplicative depth, and the estimated latency at the ring dimension the kernel's
noise needs (`quill.cost`, default table; rotations of one ciphertext priced hoisted when
that is cheaper, which is why some baselines are cheaper than their instruction counts
suggest). "optimal" means the search proved no cheaper kernel exists in its sketch; for the
multi-step kernels (sobel, harris) each step is synthesized on its own and the composition
is not claimed optimal.

This file is generated by `eval/synthesize_suite.py` from `results/*.json`; do not edit it.
{note}
{table(results)}
"""


def write_readme() -> None:
    write_atomically(README, readme_text(load_results()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="kernels (default: all)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per kernel")
    parser.add_argument("--readme", action="store_true", help="only regenerate the README")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in SUITE]
    if unknown:
        parser.error(f"unknown kernels {unknown}; the suite is {', '.join(SUITE)}")
    failed: list[str] = []
    if not args.readme:
        for name in args.names or SUITE:
            print(f"{name}: synthesizing (timeout {args.timeout:g} s)", file=sys.stderr)
            record = run_one(name, args.timeout)
            if record is None:
                failed.append(name)
                continue
            write_atomically(RESULTS / f"{name}.json", json.dumps(record, indent=2) + "\n")
            c = record["comparison"]
            print(
                f"{name}: {record['instructions']} instructions, cost {record['cost']:.3f} ms, "
                f"optimal {record['optimal']}, {record['seconds']:.1f} s; vs published: "
                f"{c['verdict']}",
                file=sys.stderr,
            )
    write_readme()
    print(table(load_results()))
    if failed:
        print(f"nothing found for: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
