"""The applications benchmark (``eval/apps.py``) on a small crop: its code end to end, and its
report's arithmetic.

The end-to-end test runs ``python -m eval.apps``'s ``main`` as ``./dev eval`` does, on 72x80
of the photo (box blur only), reductions over 10^4 and 300 instances, two repetitions (both
orders of the interleaving), and checks that every result it reports is correct and that
``apps.md`` and ``apps.json`` are written, well formed, into the folder given. The report's
medians, ratios and goals are checked on made-up samples, without encryption.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # ``eval`` and ``examples`` live at the repository root
    sys.path.insert(0, str(ROOT))

from eval import apps  # noqa: E402
from eval.apps_report import AppsResults, goals, median, ratios, write_report  # noqa: E402
from eval.apps_runs import Sample, check_against_spec  # noqa: E402
from quill.spec import load_spec  # noqa: E402

pytestmark = pytest.mark.xdist_group("test_apps_bench")

CROP = (72, 80)
F = TypeVar("F", bound=Callable[..., Any])


def bench(test: F) -> F:
    """The marks of a test that runs the benchmark: the Z3 synthesizer, OpenFHE, server
    processes, several seconds."""
    for mark in (pytest.mark.slow, pytest.mark.openfhe, pytest.mark.subprocess):
        test = mark(test)
    marked: F = pytest.mark.search(test)
    return marked


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, Path, Any]:
    """(exit status, the report folder, the kernels folder, apps.json parsed strictly)."""
    out, kernels = tmp_path_factory.mktemp("report"), tmp_path_factory.mktemp("kernels")
    status = apps.main(
        ["--reps", "2", "--crop", "72x80", "--photo-kernel", "box_blur", "--reduction-n",
         "10000", "--instances", "300", "--out", str(out), "--kernels", str(kernels)]
    )  # fmt: skip

    def no_nan(word: str) -> None:
        raise ValueError(f"apps.json holds {word}: not strict JSON")

    data = json.loads((out / "apps.json").read_text(), parse_constant=no_nan)
    return status, out, kernels, data


@bench
def test_the_benchmark_reports_correct_results(report: tuple[int, Path, Path, Any]) -> None:
    status, _, _, data = report
    assert status == 0 and data["all_correct"] is True
    box = data["photo"]["box_blur"]
    assert len(box["ours"]) == len(box["theirs"]) == 2
    valid = (CROP[0] - 1) * (CROP[1] - 1)  # box blur: the last row and column are don't-care
    for run in box["ours"] + box["theirs"]:
        assert run["correct"] is True and run["checked"] == valid
        assert run["total_s"] > 0 and run["cpu_s"] > 0 and run["bundle_bytes"] > 0
    assert box["theirs"][0]["ring_dim"] == 8192  # OpenFHE's default at depth 1
    for name in ("dot_product", "hamming_distance"):
        runs = data["reductions"][name]["runs"]
        assert [r["correct"] for r in runs] == [True, True]
        tile = next(
            c for c in data["compiled"] if c["data_shape"] == [10_000] and c["kernel"] == name
        )
        chunks = -(-10_000 // int(tile["tile_params"].removeprefix("n=")))
        assert runs[0]["ciphertexts"] == -(-chunks // 2)  # two chunks a ciphertext, one per row
    inst = data["instance_runs"]
    assert all(r["correct"] and r["checked"] == 300 for r in inst["batched"] + inst["per_instance"])
    assert inst["per_instance"][0]["ciphertexts"] == 300
    assert inst["batched"][0]["ciphertexts"] < 300


@bench
def test_the_report_is_written_into_the_folder_given(report: tuple[int, Path, Path, Any]) -> None:
    _, out, _, data = report
    md = (out / "apps.md").read_text()
    assert md.startswith("# Applications at real size")
    headings = ["## The photo at 72x80", "## Reductions over n = 10,000", "## Goals"]
    headings += ["## 300 independent dot products of length 8", "## What differs"]
    for heading in headings:
        assert heading in md
    assert "**NO**" not in md
    rows = [line for line in md.splitlines() if line.startswith("| box_blur |")]
    assert len(rows) == 3 + 1  # ours, theirs, the ratios, the compilation
    assert len(data["load_average"]["start"]) == 3 and len(data["load_average"]["end"]) == 3
    assert data["photo_shape"] == list(CROP)
    # the cropped photo does not judge the whole-photo goals, the bundle goal it does
    judged = {g["goal"]: g["met"] for g in data["goals"]}
    assert judged["box_blur: ours at least 3x faster end to end"] is None
    assert judged["box_blur: a smaller key bundle"] in (True, False)


@bench
def test_kernels_are_reused_from_the_folder(report: tuple[int, Path, Path, Any]) -> None:
    _, _, kernels, data = report
    first = {(c["kernel"], tuple(c["data_shape"])): c for c in data["compiled"]}
    again, _ = apps.compile_kernel("box_blur", CROP, kernels, reuse=True)
    assert again.reused and again.module == first[("box_blur", CROP)]["module"]
    assert again.tile_params == first[("box_blur", CROP)]["tile_params"]
    fresh, _ = apps.compile_kernel("box_blur", CROP, kernels, reuse=False)
    assert not fresh.reused


def test_a_wrong_pixel_is_counted() -> None:
    spec = load_spec(ROOT / "kernels" / "box_blur.spec")
    image = np.arange(6 * 7, dtype=np.int64).reshape(6, 7) % 256
    right = np.zeros((6, 7), dtype=np.int64)
    right[:-1, :-1] = image[:-1, :-1] + image[:-1, 1:] + image[1:, :-1] + image[1:, 1:]
    mask = np.zeros((6, 7), dtype=bool)
    mask[-1, :] = mask[:, -1] = True
    output: Any = np.ma.masked_array(right, mask=mask)  # type: ignore[no-untyped-call]
    assert check_against_spec(spec, {"x": image}, output) == (30, 0)
    output[2, 3] += 1
    assert check_against_spec(spec, {"x": image}, output) == (30, 1)
    output.mask[0, 0] = True  # a pixel that matters, left masked: wrong too
    assert check_against_spec(spec, {"x": image}, output) == (30, 2)


def _sample(side: str, total: float, bundle: int, correct: bool = True) -> Sample:
    return Sample(
        side=side, ciphertexts=4, ring_dim=8192, param_set="s", log2_q=120.0,
        bundle_bytes=bundle, upload_bytes=1, download_bytes=1, keygen_s=0.0, encrypt_s=0.0,
        server_s=total, evaluate_s=total, decrypt_s=0.0, total_s=total, wall_s=total,
        cpu_s=total, checked=1, correct=correct,
    )  # fmt: skip


def _results(photo: dict[str, list[tuple[Sample, Sample]]], shape: tuple[int, int]) -> AppsResults:
    ok = _sample("batched", 1.0, 1)
    return AppsResults(
        machine={"date": "today"}, load_start=(1.0, 1.0, 1.0), load_end=(2.0, 2.0, 2.0),
        reps=len(next(iter(photo.values()))), photo_shape=shape, reduction_n=10,
        reduction_inputs=(("dot_product", 1),), instance_count=2, instance_n=8, compiled=(),
        photo=tuple((k, tuple(v)) for k, v in photo.items()),
        reductions=(("dot_product", (ok,)),), instances=((ok, ok),),
    )  # fmt: skip


times = st.floats(0.01, 100.0)


@given(ours=st.lists(times, min_size=1, max_size=4), factor=st.floats(0.5, 6.0))
def test_goals_follow_the_medians(ours: list[float], factor: float) -> None:
    pairs = [(_sample("ours", t, 10), _sample("theirs", t * factor, 20)) for t in ours]
    results = _results({"harris": pairs}, (512, 512))
    met = {g["goal"]: g["met"] for g in goals(results)}
    expected = median([p[1] for p in pairs])["total_s"] / median([p[0] for p in pairs])["total_s"]
    assert math.isclose(ratios(pairs)["total"], expected)
    assert met["harris: ours at least 3x faster end to end"] is (expected >= 3.0)
    assert met["harris: a smaller key bundle"] is True
    harris = median([p[0] for p in pairs])["total_s"]
    assert met["harris at 512x512 under 4 s end to end on one core"] is (harris < 4.0)


def test_a_wrong_run_makes_the_report_say_so(tmp_path: Path) -> None:
    pairs = [(_sample("ours", 1.0, 10, correct=False), _sample("theirs", 2.0, 5))]
    results = _results({"box_blur": pairs}, (512, 512))
    assert not results.all_correct
    md, js = write_report(results, tmp_path / "new")
    assert "**NO**" in md.read_text()
    data = json.loads(js.read_text())
    assert data["all_correct"] is False
    assert {g["goal"]: g["met"] for g in data["goals"]}["box_blur: a smaller key bundle"] is False


def test_interleaving_alternates_the_order() -> None:
    ran: list[str] = []

    def side(name: str) -> Callable[[], Sample]:
        def run() -> Sample:
            ran.append(name)
            return _sample(name, 1.0, 1)

        return run

    for rep in range(3):
        samples = apps.interleave(rep, [side("ours"), side("theirs")])
        assert [s.side for s in samples] == ["ours", "theirs"]
    assert ran == ["ours", "theirs", "theirs", "ours", "ours", "theirs"]
