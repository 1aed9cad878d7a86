"""The evaluation harness (``eval/run.py``): one quick run, then its files are checked.

``main(["--quick", "--out", DIR])`` synthesizes box_blur and dot_product, runs them
encrypted under real OpenFHE and writes results.csv, results.md and speedup.png; the
checks are about content: rows, columns, and that the speedups and their geometric mean
are what the latencies in the same file say.
"""

from __future__ import annotations

import csv
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before openfhe loads (see test_backend.py)

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # ``eval`` is a package at the repository root
    sys.path.insert(0, str(ROOT))

from eval.measure import SynthRuns, canonical, latency_objective  # noqa: E402
from eval.published import PAPER_COUNTS, paper_counts  # noqa: E402
from eval.report import csv_columns, geomean  # noqa: E402
from eval.run import QUICK_KERNELS, main, parse_args, suite  # noqa: E402
from quill.parser import load_program, parse_program  # noqa: E402
from quill.spec import load_spec  # noqa: E402

LATENCY_VARIANTS = ("baseline", "published", "synth", "synth_latency")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of one ``--quick`` evaluation."""
    out = tmp_path_factory.mktemp("eval")
    assert main(["--quick", "--out", str(out)]) == 0
    return out


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "results.csv").open() as f:
        return {row["kernel"]: row for row in csv.DictReader(f)}


def test_writes_the_three_files(quick_run: Path) -> None:
    for name in ("results.csv", "results.md", "speedup.png"):
        assert (quick_run / name).stat().st_size > 0, name
    assert (quick_run / "speedup.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_csv_has_a_row_per_kernel_and_a_geomean(quick_run: Path) -> None:
    with (quick_run / "results.csv").open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == csv_columns()
        kernels = [row["kernel"] for row in reader]
    assert kernels == [*QUICK_KERNELS, "geomean"]


def test_speedup_is_baseline_over_synthesized_latency(quick_run: Path) -> None:
    rows = _rows(quick_run)
    for name in QUICK_KERNELS:
        row = rows[name]
        for variant in LATENCY_VARIANTS:
            assert float(row[f"{variant}_ms"]) > 0, (name, variant)
            assert float(row[f"{variant}_ms_unhoisted"]) > 0, (name, variant)
        for variant in ("synth", "published", "synth_latency"):
            for suffix in ("", "_unhoisted"):
                want = float(row[f"baseline_ms{suffix}"]) / float(row[f"{variant}_ms{suffix}"])
                got = float(row[f"speedup_{variant}{suffix}"])
                assert math.isclose(got, want, rel_tol=1e-3), (name, variant, suffix)
        assert row["optimal"] in ("true", "false")
        assert float(row["synth_s_median"]) > 0
        assert float(row["baseline_keygen_ms"]) > 0


def test_geomean_row_is_the_geometric_mean(quick_run: Path) -> None:
    rows = _rows(quick_run)
    for column in ("speedup_synth", "speedup_published", "speedup_synth_unhoisted"):
        speedups = [float(rows[k][column]) for k in QUICK_KERNELS]
        want = math.sqrt(speedups[0] * speedups[1])
        assert math.isclose(float(rows["geomean"][column]), want, rel_tol=1e-3), column


def test_counts_match_the_known_kernels(quick_run: Path) -> None:
    rows = _rows(quick_run)
    blur = rows["box_blur"]
    assert (blur["baseline_instructions"], blur["baseline_rotations"]) == ("6", "3")
    assert (blur["published_instructions"], blur["published_rotations"]) == ("4", "2")
    assert int(blur["synth_instructions"]) <= 4 and int(blur["synth_rotations"]) <= 2
    dot = rows["dot_product"]
    assert dot["synth_rotations"] == "3" and dot["synth_depth"] == "0"


def test_markdown_reports_machine_goals_and_tables(quick_run: Path) -> None:
    text = (quick_run / "results.md").read_text()
    for needle in ("cores: ", "cpu: ", "python: 3.10", "openfhe: ", "z3: ", "date: "):
        assert needle in text, needle
    headings = ("## Goals", "## Encrypted latency", "no rotation hoisted", "## Synthesis")
    for heading in (*headings, "## Counts", "## Notes", "## The synthesized kernels"):
        assert heading in text, heading
    assert "## Against the paper's published kernels" in text
    geo = f"{float(_rows(quick_run)['geomean']['speedup_synth']):.2f}x"
    assert "| **geomean** |" in text and f"**{geo}**" in text
    for name in QUICK_KERNELS:
        assert f"| {name} | " in text


def test_geomean_helper() -> None:
    assert geomean([]) is None
    result = geomean([2.0, 8.0])
    assert result is not None and math.isclose(result, 4.0)


def test_suite_is_the_kernels_with_a_baseline() -> None:
    kernels = ROOT / "kernels"
    names = suite(kernels)
    assert names[:2] == list(QUICK_KERNELS)
    assert all((kernels / "baselines" / f"{n}.quill").is_file() for n in names)


def test_paper_counts_fall_back_to_the_table(tmp_path: Path) -> None:
    assert paper_counts("box_blur", tmp_path) == PAPER_COUNTS["box_blur"]
    assert PAPER_COUNTS["box_blur"]["instructions"] == 4
    assert paper_counts("sobel", tmp_path) == {}


def test_canonical_form_ignores_value_names() -> None:
    a = parse_program("kernel k(x: ct) {\n  r = rot(x, 4)\n  s = add(x, r)\n  return s\n}\n")
    b = parse_program("kernel k(x: ct) {\n  u = rot(x, 4)\n  v = add(x, u)\n  return v\n}\n")
    c = parse_program("kernel k(x: ct) {\n  u = rot(x, 1)\n  v = add(x, u)\n  return v\n}\n")
    assert canonical(a) == canonical(b) != canonical(c)


def test_command_line_defaults_and_per_kernel_timeouts() -> None:
    quick = parse_args(["--quick", "--kernel-timeout", "dot_product=5"])
    assert (quick.runs, quick.reps, quick.kernels) == (1, 5, list(QUICK_KERNELS))
    assert quick.kernel_timeout == [("dot_product", 5.0)]
    full = parse_args(["--timeout", "30", "gx"])
    assert (full.runs, full.reps, full.timeout, full.kernels) == (3, 30, 30.0, ["gx"])
    with pytest.raises(SystemExit):
        parse_args(["--kernel-timeout", "gx"])


def test_latency_objective_falls_back_to_its_seed() -> None:
    # Harris is multi-step: its search cannot finish in 1 s, and does not take the seed.
    spec = load_spec(ROOT / "kernels" / "harris.spec")
    seed = SynthRuns(load_program(ROOT / "kernels/published/harris.quill"), (1.0,), False, "", "")
    runs = latency_objective(spec, seed, 1.0, lambda _m: None, lambda _m: None)
    assert runs.program is seed.program and runs.source == "initial"
    assert runs.outcome() == "not proven optimal, the seed kernel"
