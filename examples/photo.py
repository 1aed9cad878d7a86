"""A real photograph for the examples and the application benchmark, with nothing to download.

scikit-image ships its 512x512 grayscale ``camera`` test image (the "cameraman") inside the
package as ``skimage/data/camera.png``. :func:`camera` reads that file with Pillow through
:mod:`importlib.resources` instead of calling ``skimage.data.camera()``: the latter goes
through scikit-image's data registry, which may fetch files with ``pooch``; reading the PNG
ourselves cannot touch the network. :func:`quantize` keeps the top bits of each pixel, to
run a kernel on a smaller value range (less wrapping mod 65537 in products).
"""

from __future__ import annotations

import importlib.resources

import numpy as np
import numpy.typing as npt
from PIL import Image

CAMERA_SHAPE = (512, 512)


def camera() -> npt.NDArray[np.uint8]:
    """scikit-image's 512x512 grayscale ``camera`` photo, read from the file shipped in the
    package (``skimage/data/camera.png``). Raises FileNotFoundError naming the fix when
    scikit-image is not installed."""
    try:
        # files("skimage") imports only the top-level package (lazy, no data registry).
        path = importlib.resources.files("skimage") / "data" / "camera.png"
    except ModuleNotFoundError as e:
        raise FileNotFoundError(
            "the camera photo comes with scikit-image, which is not installed: "
            "pip install 'porcupine[examples]' (or pip install -r requirements.lock)"
        ) from e
    with importlib.resources.as_file(path) as file, Image.open(file) as img:
        if img.mode != "L":
            raise ValueError(f"{file}: expected an 8-bit grayscale PNG, got mode {img.mode!r}")
        pixels = np.asarray(img, dtype=np.uint8).copy()
    if pixels.shape != CAMERA_SHAPE:
        raise ValueError(f"{path}: expected a {CAMERA_SHAPE} image, got {pixels.shape}")
    return pixels


def quantize(image: npt.NDArray[np.integer], bits: int) -> npt.NDArray[np.int64]:
    """The top ``bits`` bits of each 8-bit pixel of ``image`` (values 0 .. 2**bits - 1):
    ``image >> (8 - bits)``. ValueError unless 1 <= bits <= 8 and every pixel is in 0..255."""
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8 (an 8-bit image), got {bits}")
    arr = np.asarray(image)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"expected an integer image, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError(
            f"expected 8-bit pixels in 0..255, got values {arr.min()}..{arr.max()}; "
            "scale the image to 8 bits first"
        )
    return arr.astype(np.int64) >> (8 - bits)
