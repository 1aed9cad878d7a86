"""The hand-written OpenFHE application of the application benchmark (``eval/handwritten_app.py``)
and the photo it runs on (``examples/photo.py``).

The encrypted runs are real: client here, server in its own process, OpenFHE's default
contexts; an 80x72 image gives 2x2 tiles with halos and a ragged edge. The tiling and the
hand-translated kernels are also checked without encryption, on many sizes, by running the
same kernel functions on a numpy stand-in for the crypto context (a rotation is a cyclic
shift of the 4096-slot tile, as in an N = 8192 row).
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # ``eval`` and ``examples`` live at the repository root
    sys.path.insert(0, str(ROOT))

from eval import handwritten_app as app  # noqa: E402
from examples.photo import camera, quantize  # noqa: E402

pytestmark = pytest.mark.xdist_group("test_handwritten_app")

T = app.T


class NumpyContext:
    """The CryptoContext calls the baseline kernels make, on plaintext slot vectors mod t."""

    def EvalRotate(self, x: npt.NDArray[np.int64], k: int) -> npt.NDArray[np.int64]:
        return np.roll(x, -k)  # OpenFHE's EvalRotate by k is a left shift by k

    def EvalAdd(self, a: Any, b: Any) -> Any:
        return (a + b) % T

    def EvalSub(self, a: Any, b: Any) -> Any:
        return (a - b) % T

    def EvalMult(self, a: Any, b: Any) -> Any:
        return (a * b) % T


def plain_run(name: str, image: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The application's tiling and stitching around the kernel of ``name`` run in numpy."""
    kernel = app.KERNELS[name]
    cc = NumpyContext()
    sixteen = np.full(app.TILE * app.TILE, 16, dtype=np.int64)
    fns = {"box_blur": app.box_blur, "gx": app.gx, "sobel": app.sobel}
    outputs = []
    for r, c, tile in app.cut_tiles(image, kernel):
        x = tile.ravel() % T
        y = app.harris(cc, x, sixteen) if name == "harris" else fns[name](cc, x)
        outputs.append((r, c, np.asarray(y).reshape(app.TILE, app.TILE)))
    return app.stitch((image.shape[0], image.shape[1]), kernel, outputs)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(app.KERNELS)),
    h=st.integers(4, 150),
    w=st.integers(4, 150),
    seed=st.integers(0, 2**32 - 1),
)
def test_tiling_and_kernels_match_the_reference(name: str, h: int, w: int, seed: int) -> None:
    image = np.random.default_rng(seed).integers(0, 256, size=(h, w), dtype=np.int64)
    result = plain_run(name, image)
    pixels, _ = app.verify(app.KERNELS[name], image, result)
    kernel = app.KERNELS[name]
    assert pixels == (h - kernel.halo) * (w - kernel.halo)


def test_verify_names_a_wrong_pixel() -> None:
    image = np.random.default_rng(0).integers(0, 256, size=(70, 70), dtype=np.int64)
    result = plain_run("sobel", image)
    result[40, 3] = (result[40, 3] + 1) % T
    with pytest.raises(app.WrongResult, match=r"1 of 4624 output pixels wrong; first at \(40, 3\)"):
        app.verify(app.KERNELS["sobel"], image, result)


def test_a_tile_left_out_is_caught() -> None:
    image = np.random.default_rng(1).integers(0, 256, size=(80, 72), dtype=np.int64)
    kernel = app.KERNELS["box_blur"]
    tiles = [(r, c, np.zeros((64, 64), dtype=np.int64)) for r, c, _ in app.cut_tiles(image, kernel)]
    with pytest.raises(app.WrongResult):
        app.verify(kernel, image, app.stitch((80, 72), kernel, tiles[:-1]))


def test_camera_photo_tiles() -> None:
    # 512 pixels: 9 tiles a side for every kernel (steps 63, 62, 62, 61).
    for kernel in app.KERNELS.values():
        origins = app.tile_origins(512, kernel)
        assert len(origins) == 9
        assert origins[-1] + app.TILE - kernel.after >= 512 - kernel.after


@pytest.mark.slow
@pytest.mark.openfhe
@pytest.mark.subprocess
@pytest.mark.parametrize("name", ["box_blur", "sobel"])
def test_two_process_run_is_pixel_exact(name: str) -> None:
    image = np.random.default_rng(7).integers(0, 256, size=(80, 72), dtype=np.int64)
    report = app.run(name, image)
    kernel = app.KERNELS[name]
    assert report.correct
    assert report.tiles == 4
    assert report.ring_dim == 8192
    assert report.pixels == (80 - kernel.halo) * (72 - kernel.halo)
    assert report.rotation_keys == len(kernel.rotations)
    assert report.bundle_bytes > 0 and report.upload_bytes > 0 and report.download_bytes > 0
    # Sobel on 8-bit pixels reaches 2 * 1020^2: most outputs wrap mod t; box blur never does.
    assert (report.wrapped_pixels > 0) == (name == "sobel")


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kernel"):
        app.run("blur", np.zeros((8, 8), dtype=np.int64))
    with pytest.raises(ValueError, match="larger than 2"):
        app.run("sobel", np.zeros((2, 40), dtype=np.int64))
    with pytest.raises(ValueError, match=r"0\.\.255"):
        app.run("gx", np.full((8, 8), 256, dtype=np.int64))
    with pytest.raises(ValueError, match="2-D integer"):
        app.run("gx", np.zeros((8, 8), dtype=np.float64))


def test_camera_reads_the_shipped_photo_without_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("camera() tried to use the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    image = camera()
    assert image.shape == (512, 512) and image.dtype == np.uint8
    assert image.min() == 0 and image.max() == 255  # a real photo, full range
    assert "pooch" not in sys.modules


@given(
    pixels=st.lists(st.integers(0, 255), min_size=1, max_size=64),
    bits=st.integers(1, 8),
)
def test_quantize_keeps_the_top_bits(pixels: list[int], bits: int) -> None:
    image = np.array(pixels, dtype=np.uint8)
    q = quantize(image, bits)
    assert q.dtype == np.int64
    assert q.max() < 2**bits
    assert np.array_equal(q, np.array([p // 2 ** (8 - bits) for p in pixels]))


def test_quantize_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match=r"1\.\.8"):
        quantize(np.zeros(4, dtype=np.uint8), 0)
    with pytest.raises(ValueError, match=r"0\.\.255"):
        quantize(np.array([300]), 4)
