"""``porcupine run SPEC --input NAME=FILE``: data of any size through an emitted kernel, client
and server in two processes, every output element checked against the spec; and
``porcupine synth --for SHAPE``, the kernel compiled for data of that size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, assert_clean, porcupine
from PIL import Image

pytestmark = [
    pytest.mark.xdist_group("cli_app"),
    pytest.mark.subprocess,
    pytest.mark.openfhe,
    pytest.mark.slow,
]

BLUR = str(ROOT / "kernels" / "box_blur.spec")

RANGED = """spec ranged_blur
param w = 4
param h = 4
slots w * h
input x: ct image(h, w) in 0..15
output y[i][j]: image(h, w) = x[i][j] + x[i + 1][j + 1]
    where i < h - 1, j < w - 1
"""


@pytest.fixture(scope="module")
def blur(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Box blur emitted at 8x8 by the command line."""
    path = tmp_path_factory.mktemp("kernel") / "blur8.py"
    out = porcupine(
        "synth", BLUR, "--param", "w=8", "--param", "h=8", "--emit", "python", "-o", str(path)
    )
    assert_clean(out, 0)
    return path


def _png(path: Path, array: np.ndarray, mode: str = "L") -> str:
    Image.fromarray(array.astype(np.uint8), mode=mode).save(path)
    return str(path)


def test_a_png_of_any_size_runs_in_two_processes_and_is_checked(blur: Path, tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, size=(37, 23))
    out_png, out_npy = tmp_path / "out.png", tmp_path / "out.npy"
    for output in (out_png, out_npy):
        run = porcupine(
            "run", BLUR, "--kernel", str(blur), "--input", f"x={_png(tmp_path / 'in.png', image)}",
            "--output", str(output),
        )  # fmt: skip
        assert_clean(run, 0)
        assert "correct: all 792 output elements that matter" in run.stdout  # 36 x 22
        assert "separate processes" in run.stdout and "upload" in run.stdout
    saved = np.load(out_npy)
    want = image[:-1, :-1] + image[1:, :-1] + image[:-1, 1:] + image[1:, 1:]
    assert saved.shape == image.shape and np.array_equal(saved[:-1, :-1], want)
    assert Image.open(out_png).size == (23, 37)


def test_without_a_kernel_one_is_compiled_for_the_data(tmp_path: Path) -> None:
    data = np.random.default_rng(1).integers(0, 256, size=(40, 70))
    np.save(tmp_path / "x.npy", data)
    run = porcupine("run", BLUR, "--input", f"x={tmp_path / 'x.npy'}")
    assert_clean(run, 0)
    assert "on data of shape (40, 70) (stencil): tile" in run.stderr  # what it chose, and why
    assert "options (cheapest first)" in run.stderr
    assert "correct: all 2691 output elements" in run.stdout


def test_synth_for_a_shape_emits_the_chosen_tile(tmp_path: Path) -> None:
    path = tmp_path / "k.py"
    out = porcupine("synth", BLUR, "--for", "300x200", "--emit", "python", "-o", str(path))
    assert_clean(out, 0)
    assert "on data of shape (300, 200)" in out.stderr
    text = path.read_text()
    assert 'TILE_KIND = "stencil"' in text and "SPEC_PARAMS" in text
    refused = porcupine("synth", BLUR, "--for", "300x200", "--param", "w=8")
    assert_clean(refused, 2, "--for chooses the tile")


def _npy(path: Path, array: np.ndarray) -> str:
    np.save(path, array)
    return str(path)


BAD = {
    "rgb": (lambda p: _png(p / "rgb.png", np.zeros((9, 9, 3)), "RGB"), "one grayscale channel"),
    "float": (lambda p: _npy(p / "f.npy", np.ones((9, 9)) / 2), "float64"),
    "empty": (lambda p: _npy(p / "e.npy", np.zeros((0, 9), dtype=int)), "empty"),
    "small": (lambda p: _npy(p / "s.npy", np.ones((1, 9), dtype=int)), "too few"),
    "rank": (lambda p: _npy(p / "v.npy", np.ones(9, dtype=int)), "has 1 axes"),
    "missing": (lambda p: str(p / "missing.png"), "no such file"),
    "suffix": (lambda p: str(p / "data.txt"), "a .npy or .png file"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_are_refused_before_any_work(blur: Path, tmp_path: Path, case: str) -> None:
    make, message = BAD[case]
    out = tmp_path / "out.npy"
    run = porcupine(
        "run", BLUR, "--kernel", str(blur), "--input", f"x={make(tmp_path)}", "--output", str(out)
    )
    assert_clean(run, 2, message)
    assert not out.exists()


def test_values_outside_the_declared_range_are_refused(tmp_path: Path) -> None:
    spec = tmp_path / "ranged.spec"
    spec.write_text(RANGED)
    np.save(tmp_path / "x.npy", np.full((6, 6), 16))
    run = porcupine("run", str(spec), "--input", f"x={tmp_path / 'x.npy'}")
    assert_clean(run, 2, "values in 0..15")


def test_inputs_the_spec_does_not_have_are_refused(blur: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "y.npy", np.ones((9, 9), dtype=int))
    run = porcupine("run", BLUR, "--kernel", str(blur), "--input", f"y={tmp_path / 'y.npy'}")
    assert_clean(run, 2, "no input ['y']")


def test_the_readme_two_party_example_runs(tmp_path: Path) -> None:
    kernel = tmp_path / "blur.py"
    made = porcupine("synth", BLUR, "--for", "40x30", "--emit", "python", "-o", str(kernel))
    assert_clean(made, 0)
    example = [sys.executable, str(ROOT / "examples" / "two_party.py"), str(kernel)]
    run = subprocess.run(
        [*example, "--height", "40", "--width", "30"], capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr
    assert "box_blur: 40x30 image, exact" in run.stdout
