"""The photo application (``examples/photo_app.py``): a crop of the camera photo through box
blur and Sobel, compiled for the crop's size, client here and server in its own process,
pixel-exact; and its pieces without encryption (the pixel check, the crop, the exact Harris
response it uses to say where the residue wraps)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # ``examples`` lives at the repository root
    sys.path.insert(0, str(ROOT))

from examples import photo_app  # noqa: E402
from examples.photo import camera  # noqa: E402
from quill.spec import load_spec  # noqa: E402
from quill.spec_array import reference_array  # noqa: E402

T = photo_app.T


@pytest.mark.slow
@pytest.mark.openfhe
@pytest.mark.subprocess
@pytest.mark.search
def test_crop_through_box_blur_and_sobel_is_pixel_exact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = photo_app.main(
        ["--kernels", "box_blur", "sobel", "--crop", "80x100", "--out", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    # Compiled here, for the crop's size, and the compiler's choice printed.
    for name in ("box_blur", "sobel"):
        assert (tmp_path / f"{name}_80x100.py").is_file()
        assert f"{name} on data of shape (80, 100) (stencil): tile" in out
    assert out.count("pixel-exact: all") == 2
    assert "WRONG" not in out
    # 79x99 box sums and 78x98 Sobel pixels matter: every one was checked.
    assert "all 7821 output pixels that matter" in out
    assert "all 7644 output pixels that matter" in out
    crop = photo_app.crop(camera(), "80x100")
    with Image.open(tmp_path / "input.png") as image:
        assert np.array_equal(np.asarray(image), crop)
    for name in ("box_blur", "sobel"):
        with Image.open(tmp_path / f"{name}.png") as image:
            assert image.mode == "L" and image.size == (100, 80)
    with Image.open(tmp_path / "figure.png") as image:
        assert image.width > 200  # input and two outputs side by side


def test_box_blur_picture_is_the_mean_of_the_decrypted_sums() -> None:
    values = np.array([[0, 4, 1020], [7, 8, 0]], dtype=np.int64)
    matters = np.array([[True, True, True], [True, True, False]])
    run = photo_app.KernelRun(
        name="box_blur", bits=8, tile=(2, 3), ring_dim=2048, parameter_set="s", tiles=1,
        bundle_bytes=0, upload_bytes=0, download_bytes=0, keys_s=0, encrypt_s=0, server_s=0,
        evaluate_s=0, decrypt_s=0, verdict=photo_app.Verdict(5, 0, None), values=values,
        matters=matters,
    )  # fmt: skip
    assert photo_app.picture(run).tolist() == [[0, 1, 255], [1, 2, 0]]


@settings(max_examples=30, deadline=None)
@given(
    st.integers(2, 6),
    st.integers(2, 6),
    st.integers(0, 2**32 - 1),
    st.booleans(),
    st.data(),
)
def test_check_finds_every_wrong_or_missing_pixel(
    h: int, w: int, seed: int, drop: bool, data: st.DataObject
) -> None:
    rng = np.random.default_rng(seed)
    reference = rng.integers(0, T, (h, w), dtype=np.int64)
    matters = rng.random((h, w)) < 0.7
    matters[0, 0] = True
    decrypted: Any = np.ma.masked_array(reference.copy(), mask=~matters)  # type: ignore[no-untyped-call]
    assert photo_app.check(decrypted, reference, matters) == photo_app.Verdict(
        int(matters.sum()), 0, None
    )
    picks = np.argwhere(matters)
    i, j = (int(v) for v in picks[data.draw(st.integers(0, len(picks) - 1))])
    if drop:  # the kernel left a pixel that matters undefined
        decrypted[i, j] = np.ma.masked
    else:
        decrypted[i, j] = (reference[i, j] + data.draw(st.integers(1, T - 1))) % T
    verdict = photo_app.check(decrypted, reference, matters)
    assert verdict.wrong == 1 and not verdict.exact
    assert verdict.first is not None and verdict.first[0] == (i, j)


def test_pixels_that_do_not_matter_are_not_checked() -> None:
    reference = np.array([[1, 2], [3, 4]], dtype=np.int64)
    matters = np.array([[True, False], [False, False]])
    mask = [[False, True], [False, False]]
    decrypted: Any = np.ma.masked_array([[1 + T, 9], [9, 9]], mask=mask)  # type: ignore[no-untyped-call]
    assert photo_app.check(decrypted, reference, matters) == photo_app.Verdict(1, 0, None)


def _image(h: int, w: int, bits: int, seed: int) -> npt.NDArray[np.int64]:
    return np.random.default_rng(seed).integers(0, 2**bits, (h, w), dtype=np.int64)


@settings(max_examples=25, deadline=None)
@given(st.integers(6, 12), st.integers(6, 12), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_harris_exact_is_the_spec_response_before_reduction(
    h: int, w: int, bits: int, seed: int
) -> None:
    image = _image(h, w, bits, seed)
    spec = load_spec(str(ROOT / "kernels" / "harris.spec"))
    reference = reference_array(spec.origin.source, {"h": h, "w": w}, {"x": image})
    exact = photo_app.harris_exact(image)
    m = reference.matters
    assert np.array_equal(exact[m] % T, reference.values[m])


def test_centred_residues_are_the_values_that_fit() -> None:
    values = np.array([0, 1, T // 2, T // 2 + 1, T - 1], dtype=np.int64)
    assert photo_app.centred(values).tolist() == [0, 1, 32768, -32768, -1]


@pytest.mark.parametrize("size", ["80", "0x10", "3x100", "80x513", "axb"])
def test_crop_refuses_sizes_that_do_not_fit(size: str) -> None:
    with pytest.raises(ValueError, match="--crop"):
        photo_app.crop(camera(), size)


def test_crop_is_the_central_window() -> None:
    photo = camera()
    assert np.array_equal(photo_app.crop(photo, "80x100"), photo[216:296, 206:306])
    assert photo_app.crop(photo, None) is photo
