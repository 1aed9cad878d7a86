"""Blur an image under homomorphic encryption with an emitted Porcupine kernel.

The application side of Porcupine: it uses nothing but ``openfhe``, ``numpy`` and the
emitted kernel module (by default ``build/box_blur.py``, made by ``./dev demo`` or by
``porcupine emit kernels/published/box_blur.quill --spec kernels/box_blur.spec -o
build/box_blur.py``). It makes a small test image of the size the kernel was compiled
for, encrypts it, blurs it encrypted (2x2 box sum), decrypts, prints both as text grids
and checks the result against the same blur computed in the clear.

    .venv/bin/python examples/blur_image.py [KERNEL.py]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np

DEFAULT_KERNEL = Path(__file__).resolve().parent.parent / "build" / "box_blur.py"


def load_kernel(path: Path) -> ModuleType:
    """Import the emitted kernel module at ``path``."""
    spec = importlib.util.spec_from_file_location("box_blur_kernel", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import does (the module defines dataclasses)
    spec.loader.exec_module(module)
    return module


def test_image(shape: tuple[int, int]) -> np.ndarray:
    """A checkerboard of 2x2 tiles over a gentle gradient: edges the blur must soften."""
    rows, cols = np.indices(shape)
    checker = ((rows // 2 + cols // 2) % 2) * 100
    return checker + 3 * rows + cols


def plain_blur(image: np.ndarray) -> np.ndarray:
    """The 2x2 box sum in the clear, y[i][j] = x[i..i+1][j..j+1], where the window fits
    (the last row and column stay 0)."""
    out = np.zeros_like(image)
    out[:-1, :-1] = image[:-1, :-1] + image[:-1, 1:] + image[1:, :-1] + image[1:, 1:]
    return out


def grid(values: np.ndarray) -> str:
    """An image as aligned text; masked (don't-care) pixels print as a dot."""
    mask = np.ma.getmaskarray(values)
    data = np.ma.getdata(values)
    text = np.where(mask, ".", data.astype(str))
    width = max(len(t) for t in text.ravel())
    return "\n".join("  " + " ".join(t.rjust(width) for t in row) for row in text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kernel", nargs="?", type=Path, default=DEFAULT_KERNEL)
    args = parser.parse_args(argv)
    if not args.kernel.is_file():
        print(
            f"no kernel module at {args.kernel}: make one with `./dev demo`, or with\n"
            "  porcupine emit kernels/published/box_blur.quill --spec kernels/box_blur.spec "
            f"-o {args.kernel}",
            file=sys.stderr,
        )
        return 2
    kernel = load_kernel(args.kernel)
    (name,) = kernel.INPUTS  # the box blur takes one encrypted image
    image = test_image(kernel.INPUT_LAYOUTS[name].shape)

    start = time.perf_counter()
    cc, keys = kernel.make_context()
    setup = time.perf_counter() - start
    encrypted = kernel.encrypt(cc, keys, name, image)
    times = []
    for _ in range(3):  # the first call also builds OpenFHE's lazy tables
        start = time.perf_counter()
        blurred = kernel.kernel(cc, **{name: encrypted})
        times.append(time.perf_counter() - start)
    elapsed = sorted(times)[1]
    result = kernel.decode(cc, keys, blurred)

    expected = plain_blur(image) % kernel.PLAINTEXT_MODULUS
    matters = ~np.ma.getmaskarray(result)
    same = np.array_equal(np.ma.getdata(result)[matters], expected[matters])
    print(f"image {image.shape[0]}x{image.shape[1]}, N = {cc.GetRingDimension()}:")
    print(grid(image))
    print(f"\nblurred under encryption ({elapsed * 1e3:.1f} ms, median of 3; keys {setup:.2f} s);")
    print("'.' marks pixels without a full 2x2 window (don't-care):")
    print(grid(result))
    print(
        f"\nequal to the blur in the clear on all {int(matters.sum())} pixels that matter: {same}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
