"""The evaluation harness (``eval/run.py``, ``eval/latency.py``, ``eval/report.py``).

One ``--quick`` run (box_blur and dot_product, synthesized and measured encrypted under real
OpenFHE, a few rounds) whose files are checked for content: rows, columns, and that every
ratio and geometric mean is what the latencies in the same file say. The goals' verdicts
are checked on synthetic measurements, a wrong decryption on a kernel that is wrong, and the
interleaving on recording sessions.
"""

from __future__ import annotations

import csv
import math
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before openfhe loads (see test_backend.py)

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # ``eval`` is a package at the repository root
    sys.path.insert(0, str(ROOT))

from eval import latency  # noqa: E402
from eval.latency import CELLS, Measured, Setting, measure  # noqa: E402
from eval.measure import KernelEval, SynthRuns, canonical  # noqa: E402
from eval.published import PAPER_COUNTS, paper_counts  # noqa: E402
from eval.report import csv_columns, goals_rows, write_all  # noqa: E402
from eval.run import QUICK_KERNELS, main, parse_args, suite  # noqa: E402
from eval.summary import RATIOS, Summary, geomean  # noqa: E402
from quill.params import by_name  # noqa: E402
from quill.parser import load_program, parse_program  # noqa: E402
from quill.spec import load_spec  # noqa: E402

# Its module-scoped fixtures are built once: its tests share one xdist worker.
pytestmark = pytest.mark.xdist_group("test_eval")

KERNELS = ROOT / "kernels"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of one ``--quick`` evaluation (3 latency rounds)."""
    out = tmp_path_factory.mktemp("eval")
    assert main(["--quick", "--reps", "3", "--out", str(out)]) == 0
    return out


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "results.csv").open() as f:
        return {row["kernel"]: row for row in csv.DictReader(f)}


@pytest.mark.slow
@pytest.mark.openfhe
@pytest.mark.subprocess
@pytest.mark.search
def test_writes_the_three_files(quick_run: Path) -> None:
    for name in ("results.csv", "results.md", "speedup.png"):
        assert (quick_run / name).stat().st_size > 0, name
    assert (quick_run / "speedup.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.openfhe
@pytest.mark.subprocess
@pytest.mark.search
def test_csv_has_a_row_per_kernel_and_a_geomean(quick_run: Path) -> None:
    with (quick_run / "results.csv").open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == csv_columns()
        kernels = [row["kernel"] for row in reader]
    assert kernels == [*QUICK_KERNELS, "geomean"]


@pytest.mark.openfhe
@pytest.mark.subprocess
@pytest.mark.search
def test_every_cell_is_measured_and_every_ratio_is_its_latencies(quick_run: Path) -> None:
    for name, row in _rows(quick_run).items():
        if name == "geomean":
            continue
        ms = {cell: float(row[f"{cell}_ms"]) for cell in CELLS}
        assert all(v > 0 for v in ms.values()), (name, ms)
        want = {
            "a_baseline_over_ours": ms["a_baseline"] / ms["a_ours"],
            "a_published_over_ours": ms["a_published"] / ms["a_ours"],
            "b_end_to_end": ms["b_baseline"] / ms["b_ours"],
            "c_parameter_win": ms["b_baseline"] / ms["c_baseline"],
            "kernel_win_at_our_set": ms["c_baseline"] / ms["b_ours"],
        }
        for ratio, value in want.items():
            assert math.isclose(float(row[ratio]), value, rel_tol=1e-3), (name, ratio)
        product = float(row["c_parameter_win"]) * float(row["kernel_win_at_our_set"])
        assert math.isclose(product, float(row["b_end_to_end"]), rel_tol=1e-3), name
        assert row["wrong_decryptions"] == "0" and row["outcome"] != "none found"


@pytest.mark.openfhe
@pytest.mark.subprocess
@pytest.mark.search
def test_geomean_row_is_the_geometric_mean(quick_run: Path) -> None:
    rows = _rows(quick_run)
    for column in RATIOS:
        values = [float(rows[k][column]) for k in QUICK_KERNELS]
        want = math.sqrt(values[0] * values[1])
        assert math.isclose(float(rows["geomean"][column]), want, rel_tol=1e-3), column


@pytest.mark.openfhe
@pytest.mark.subprocess
@pytest.mark.search
def test_contexts_are_the_chosen_sets_and_openfhe_defaults(quick_run: Path) -> None:
    rows = _rows(quick_run)
    for name in QUICK_KERNELS:
        row = rows[name]
        # Both baselines have no ct*ct product: the hand-writer's SetMultiplicativeDepth(1).
        assert (row["defaults_depth"], row["defaults_ring_dim"]) == ("1", "8192"), name
        assert math.isclose(float(row["defaults_log2_q"]), 120.0, abs_tol=0.1), name
        assert row["defaults_digit_size"] == "0"
        # Ours runs on the set the noise model picks for it, smaller than the defaults.
        assert row["ours_param_set"] == row["ours_own_set"] != "", name
        assert int(row["ours_ring_dim"]) < 8192, name
        # Every context built is exactly the set it is named after.
        for setting in ("shared", "ours"):
            built = by_name(row[f"{setting}_param_set"])
            assert int(row[f"{setting}_ring_dim"]) == built.ring_dim, (name, setting)
            assert math.isclose(float(row[f"{setting}_log2_q"]), built.log2_q, abs_tol=0.05)
            assert int(row[f"{setting}_digit_size"]) == built.digit_size, (name, setting)


@pytest.mark.openfhe
@pytest.mark.subprocess
@pytest.mark.search
def test_keys_are_counted_and_sized(quick_run: Path) -> None:
    rows = _rows(quick_run)
    blur, dot = rows["box_blur"], rows["dot_product"]
    assert (blur["baseline_rotation_keys"], blur["published_rotation_keys"]) == ("3", "2")
    assert (blur["baseline_instructions"], blur["published_instructions"]) == ("6", "4")
    assert dot["baseline_rotation_keys"] == "3"
    for row in (blur, dot):
        for cell in ("b_ours", "b_baseline", "c_baseline"):
            assert int(row[f"{cell}_rotation_key_bytes"]) > 0, cell
            assert float(row[f"{cell}_keygen_ms"]) > 0, cell
        # The same keys are smaller in our (smaller) set than in OpenFHE's defaults.
        assert int(row["c_baseline_rotation_key_bytes"]) < int(row["b_baseline_rotation_key_bytes"])
        # One size per key within a context: bytes scale with the number of keys.
        per_key = [
            int(row[f"{cell}_rotation_key_bytes"]) / int(row[f"{cell}_rotation_keys"])
            for cell in ("b_ours", "c_baseline")
        ]
        assert math.isclose(per_key[0], per_key[1], rel_tol=0.01), per_key


@pytest.mark.openfhe
@pytest.mark.subprocess
@pytest.mark.search
def test_markdown_reports_goals_and_tables(quick_run: Path) -> None:
    text = (quick_run / "results.md").read_text()
    for needle in ("cores: ", "cpu: ", "python: 3.10", "openfhe: ", "z3: ", "date: "):
        assert needle in text, needle
    headings = ("## Goals", "## (a) Kernel only", "## (b) End to end", "## Keys and key")
    for heading in (*headings, "## Synthesis", "## Counts", "## Notes", "## The synthesized"):
        assert heading in text, heading
    geo = f"{float(_rows(quick_run)['geomean']['b_end_to_end']):.2f}x"
    assert "| **geomean** |" in text and f"**{geo}**" in text
    assert "SetMultiplicativeDepth" in text and "(A quick run" in text
    for name in QUICK_KERNELS:
        assert f"| {name} | " in text


# --- synthetic measurements -------------------------------------------------------------


def _kernel(name: str, ms: dict[str, float], keys: dict[str, int], wrong: int = 0) -> KernelEval:
    program = parse_program(f"kernel {name}(x: ct) {{\n  y = add(x, x)\n  return y\n}}\n")
    measured = Measured(ms=ms, rotation_keys=keys)
    measured.wrong = [f"(b) ours decrypted WRONGLY at slot {i}" for i in range(wrong)]
    runs = SynthRuns(program, (1.0,), True, "", "search")
    return KernelEval(name, 8, 10.0, {"ours": program, "baseline": program}, runs, measured)


def _ms(a: float, b: float, c: float) -> dict[str, float]:
    """Cells giving (a) = a, (b) = b and (c) = c, with ours at 1 ms."""
    return {
        "a_ours": 1.0,
        "a_baseline": a,
        "a_published": 2.0,
        "b_ours": 1.0,
        "b_baseline": b,
        "c_baseline": b / c,
    }


def _summary(evals: list[KernelEval]) -> Summary:
    return Summary(evals, {}, "test", {"mode": "full"}, {}, wall_s=60.0)


def _verdicts(summary: Summary) -> list[str]:
    return [row[-1] for row in goals_rows(summary)]


def test_goals_met_when_every_figure_clears_its_bar() -> None:
    evals = [
        _kernel("k1", _ms(1.1, 2.0, 1.5), {"ours": 2, "baseline": 3}),
        _kernel("k2", _ms(1.4, 2.0, 1.5), {"ours": 3, "baseline": 3}),
    ]
    summary = _summary(evals)
    assert all(v == "**met**" for v in _verdicts(summary)), goals_rows(summary)
    mean = summary.geomean("a_baseline_over_ours")
    assert mean is not None and math.isclose(mean, math.sqrt(1.1 * 1.4))
    assert math.isclose(summary.geomean("kernel_win_at_our_set") or 0, 2.0 / 1.5)


def test_goals_not_met_are_reported_with_the_culprits() -> None:
    evals = [
        _kernel("slow", _ms(0.9, 1.5, 1.2), {"ours": 4, "baseline": 3}, wrong=1),
        _kernel("fast", _ms(1.3, 1.7, 1.2), {"ours": 1, "baseline": 3}),
    ]
    summary = _summary(evals)
    rows = goals_rows(summary)
    verdicts = [row[-1] for row in rows]
    assert verdicts[:5] == ["**not met**"] * 5 and verdicts[5] == "**met**"
    assert "slow 0.90x" in rows[0][2] and "slow (4 > 3)" in rows[3][2] and rows[4][2] == "1"


def test_goals_not_met_when_a_kernel_is_missing(tmp_path: Path) -> None:
    evals = [_kernel("k1", _ms(1.5, 2.0, 1.5), {"ours": 1, "baseline": 3}, wrong=1)]
    summary = _summary(evals)
    summary.failed["k2"] = "RuntimeError: boom"
    assert _verdicts(summary)[:4] == ["**not met**"] * 4
    evals[0].measured.settings["ours"] = Setting("n4096_q60_w20", 4096, 60.0, 20)
    write_all(summary, tmp_path)
    text = (tmp_path / "results.md").read_text()
    assert "**FAILURE** k2: evaluation failed: RuntimeError: boom" in text
    assert "**FAILURE** k1: (b) ours decrypted WRONGLY at slot 0" in text


def test_geomean_helper() -> None:
    assert geomean([]) is None
    result = geomean([2.0, 8.0])
    assert result is not None and math.isclose(result, 4.0)


# --- the encrypted measurement ----------------------------------------------------------


@pytest.mark.openfhe
def test_a_wrong_kernel_is_reported_and_not_timed() -> None:
    spec = load_spec(KERNELS / "box_blur.spec")
    baseline = load_program(KERNELS / "baselines/box_blur.quill")
    wrong = parse_program(
        "kernel box_blur(x: ct) {\n  r = rot(x, 1)\n  y = add(x, r)\n  return y\n}\n"
    )
    got = measure({"ours": wrong, "baseline": baseline}, spec, reps=2, keygen_reps=1)
    assert any(w.startswith("(a) ours") for w in got.wrong), got.wrong
    assert any(w.startswith("(b) ours") for w in got.wrong), got.wrong
    assert set(got.ms) == {"a_baseline", "b_baseline", "c_baseline"}
    assert got.samples == {"a_baseline": 2, "b_baseline": 2, "c_baseline": 2}
    assert got.rotation_keys == {"ours": 1, "baseline": 3}
    assert got.keygen["b_ours"].samples == 2 and got.keygen["b_baseline"].rotation_keys == 3


class _Recorder:
    """A session that records the order its cells run in."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def run(self, module: Any, args: Any) -> tuple[None, float]:
        self.log.append(module)
        return None, float(len(self.log))


def test_cells_take_turns_in_alternating_order() -> None:
    log: list[str] = []
    cells = [latency._Cell(name, name, None) for name in ("p", "q", "r")]  # type: ignore[arg-type]
    for cell in cells:
        cell.session = _Recorder(log)  # type: ignore[assignment]
    times = latency._interleaved(cells, 3)
    assert log == ["p", "q", "r", "r", "q", "p", "p", "q", "r"]
    assert times == {"p": [1.0, 6.0, 7.0], "q": [2.0, 5.0, 8.0], "r": [3.0, 4.0, 9.0]}


# --- command line and helpers -----------------------------------------------------------


def test_suite_is_the_kernels_with_a_baseline() -> None:
    names = suite(KERNELS)
    assert names[:2] == list(QUICK_KERNELS)
    assert all((KERNELS / "baselines" / f"{n}.quill").is_file() for n in names)


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
    assert (quick.runs, quick.reps, quick.keygen_reps, quick.kernels) == (
        1,
        5,
        1,
        list(QUICK_KERNELS),
    )
    assert quick.kernel_timeout == [("dot_product", 5.0)]
    full = parse_args(["--timeout", "30", "gx"])
    assert (full.runs, full.reps, full.keygen_reps, full.timeout) == (1, 100, 5, 30.0)
    assert full.kernels == ["gx"]
    with pytest.raises(SystemExit):
        parse_args(["--kernel-timeout", "gx"])
