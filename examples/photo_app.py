"""A real photo through three encrypted kernels, client and server in separate processes.

An HE application as a user of Porcupine writes it. For each kernel (box blur, Sobel,
Harris; ``kernels/NAME.spec``):

1. **Compile** it for the photo's size: ``porcupine synth kernels/NAME.spec --for 512x512
   --emit python -o build/photo/NAME.py`` (run here as a subprocess when the module does not
   exist yet, or with ``--rebuild``); the compiler chooses the tile and ring and says so.
2. **Client** (this process, the only one with the secret key): import the emitted module,
   make keys, write the public bundle, encrypt the photo (any size: the module cuts it into
   tiles with halos) into a request file.
3. **Server** (a second process, started with ``python build/photo/NAME.py serve BUNDLE
   REQUEST RESPONSE``, one OpenMP thread): it gets the bundle and the request, never the
   secret key, and writes the response file.
4. **Client** again: decrypt the response (the whole output, stitched), check every output
   pixel that matters against the spec's plaintext reference at the photo's size
   (``quill.spec_array.reference_array``, values mod 65537), and write PNGs.

Inputs: box blur sees the 8-bit photo; Sobel 4-bit pixels (then gx^2 + gy^2 <= 2 * 60^2 =
7200, below 32768: the edge map does not wrap mod 65537); Harris 2-bit pixels. Harris'
response ``16 (sxx syy - sxy^2) - (sxx + syy)^2`` is a degree-4 polynomial of the pixels: it
wraps mod 65537 for real images (on the camera photo: 0.9% of pixels at 2 bits, 64% at 8
bits; none at 1 bit, but then the face and the skyline are gone), so 2 bits is the most
readable. Each kernel is exact mod 65537 all the same; the pictures show:

- ``input.png``: the 8-bit photo (or crop).
- ``box_blur.png``: the 2x2 box sum divided by 4 (rounded down): the 2x2 mean, 0..255.
- ``sobel.png``: sqrt(gx^2 + gy^2), the gradient magnitude, scaled so that its 99th
  percentile is 255 (the strongest 1% clipped to white).
- ``harris.png``: the response as a centred residue c in -32768..32768 (the true value where
  it does not wrap), shown on a signed log scale: 128 + sign(c) * 127 * ln(1 + |c|) /
  ln(1 + 32768). Mid-grey is 0 (flat), brighter is positive (corner-like), darker negative
  (edge-like).

Pixels the spec leaves undefined (the borders a stencil cannot reach) are black (mid-grey
for Harris). ``docs/photo.png`` puts the four side by side.

    .venv/bin/python examples/photo_app.py [--kernels box_blur sobel harris] [--rebuild]
        [--crop HxW] [--out DIR] [--figure PNG]

Exit status 0 when every kernel is pixel-exact, 1 when a pixel differs, 2 when a kernel
cannot be compiled or served.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: ``examples`` lives at the repository root
    sys.path.insert(0, str(ROOT))

from examples.photo import CAMERA_SHAPE, camera, quantize  # noqa: E402
from quill.spec import load_spec  # noqa: E402
from quill.spec_array import reference_array  # noqa: E402
from quill.spec_shapes import shape_params  # noqa: E402

T = 65537
KERNELS = ("box_blur", "sobel", "harris")
INPUT_BITS = {"box_blur": 8, "sobel": 4, "harris": 2}
LABELS = {
    "box_blur": "box blur (8-bit): 2x2 mean",
    "sobel": "Sobel (4-bit): sqrt(gx^2 + gy^2)",
    "harris": "Harris (2-bit): signed log; light corner, dark edge",
}
SERVER_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread per process (see README)


class AppError(Exception):
    """A kernel that cannot be compiled or served: the message says why (exit status 2)."""


@dataclass(frozen=True)
class Verdict:
    """The decrypted output against the plaintext reference, pixel by pixel."""

    checked: int  # output pixels that matter
    wrong: int
    first: tuple[tuple[int, ...], int, int] | None  # (pixel, reference, decrypted)

    @property
    def exact(self) -> bool:
        return self.wrong == 0 and self.checked > 0


@dataclass(frozen=True)
class KernelRun:
    """One kernel on the photo: what the compiler chose, bytes, seconds, the check."""

    name: str
    bits: int
    tile: tuple[int, ...]
    ring_dim: int
    parameter_set: str
    tiles: int  # ciphertexts in the request (one input)
    bundle_bytes: int
    upload_bytes: int
    download_bytes: int
    keys_s: float  # context, keys and the bundle written (client)
    encrypt_s: float  # the request written (client)
    server_s: float  # the server process, start to exit
    evaluate_s: float  # of which: every tile read, evaluated and written (the server's figure)
    decrypt_s: float  # the response decrypted and stitched (client)
    verdict: Verdict
    values: npt.NDArray[np.int64]  # the decrypted output, residues mod T (0 where undefined)
    matters: npt.NDArray[np.bool_]  # where the spec defines the output

    def report(self) -> str:
        """The figures, a few lines for people."""
        mib = 1 << 20
        tile = "x".join(map(str, self.tile))
        v = self.verdict
        check = (
            f"pixel-exact: all {v.checked} output pixels that matter equal the reference"
            if v.exact
            else f"WRONG: {v.wrong} of {v.checked} output pixels differ from the reference"
            + (f" (first at {v.first[0]}: reference {v.first[1]}, decrypted {v.first[2]})"
               if v.first else "")
        )  # fmt: skip
        return "\n".join(
            [
                f"  tile {tile}, ring N = {self.ring_dim} ({self.parameter_set}), "
                f"{self.tiles} tiles",
                f"  bytes: bundle {self.bundle_bytes / mib:.2f} MiB, upload "
                f"{self.upload_bytes / mib:.2f} MiB, download {self.download_bytes / mib:.2f} MiB",
                f"  seconds: keys {self.keys_s:.3f}, encrypt {self.encrypt_s:.3f}, server "
                f"{self.server_s:.3f} (evaluate {self.evaluate_s:.3f}), decrypt "
                f"{self.decrypt_s:.3f}",
                f"  {check}",
            ]
        )


# --- the compiler ------------------------------------------------------------------------


def module_path(out: Path, name: str, shape: tuple[int, int]) -> Path:
    """Where the kernel compiled for data of ``shape`` lives (the size in the name unless it
    is the whole photo's, so that a crop never reuses the photo's kernel or the reverse)."""
    if shape == CAMERA_SHAPE:
        return out / f"{name}.py"
    return out / f"{name}_{shape[0]}x{shape[1]}.py"


def compile_kernel(name: str, shape: tuple[int, int], path: Path) -> list[str]:
    """``porcupine synth kernels/NAME.spec --for HxW --emit python -o PATH`` as a subprocess;
    returns what the compiler said it chose (its plan, from stderr). Raises AppError with
    the compiler's message when it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "porcupine.cli", "synth", str(ROOT / "kernels" / f"{name}.spec"),
        "--for", f"{shape[0]}x{shape[1]}", "--emit", "python", "-o", str(path),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=SERVER_ENV, check=False)
    said = done.stderr.splitlines()
    if done.returncode != 0:
        raise AppError(f"compiling {name} failed (exit {done.returncode}):\n" + "\n".join(said))
    # The plan is the line "porcupine: NAME on data of shape ..." and its options table;
    # the rest of stderr is the search's progress.
    plan: list[str] = []
    for line in said:
        if line.startswith(f"porcupine: {name} on data of shape"):
            plan.append(line.removeprefix("porcupine: "))
        elif plan and line.startswith("  ") and not line.startswith("  ["):
            plan.append(line)
        elif plan:
            break
    return plan


def load_kernel(path: Path) -> ModuleType:
    """Import the emitted module at ``path`` (the client's only view of the kernel)."""
    spec = importlib.util.spec_from_file_location(f"photo_kernel_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise AppError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import does (the module defines dataclasses)
    spec.loader.exec_module(module)
    return module


# --- client and server -------------------------------------------------------------------


def two_party(
    kernel: ModuleType, path: Path, image: npt.NDArray[np.int64], folder: Path
) -> tuple[Any, dict[str, float], dict[str, int]]:
    """The client here, the server in its own process on the files in ``folder``: the
    decrypted output, the seconds per stage and the bytes of each file."""
    bundle, request, response = (folder / f"{path.stem}.{part}.bin" for part in
                                 ("bundle", "request", "response"))  # fmt: skip
    start = time.perf_counter()
    client = kernel.Client()
    with bundle.open("wb") as out:
        client.public_bundle_into(out)
    keyed = time.perf_counter()
    with request.open("wb") as out:
        client.encrypt_into(out, x=image)
    encrypted = time.perf_counter()
    command = [sys.executable, str(path), "serve", str(bundle), str(request), str(response)]
    server = subprocess.run(command, capture_output=True, text=True, env=SERVER_ENV, check=False)
    served = time.perf_counter()
    if server.returncode != 0:
        raise AppError(f"the server refused the request: {server.stderr.strip()}")
    timing = json.loads(server.stdout.strip().splitlines()[-1])
    with response.open("rb") as stream:
        output = client.decrypt_stream(stream)
    done = time.perf_counter()
    seconds = {
        "keys": keyed - start,
        "encrypt": encrypted - keyed,
        "server": served - encrypted,
        "evaluate": float(timing["evaluate_s"]),
        "decrypt": done - served,
    }
    sizes = {p: f.stat().st_size for p, f in (("bundle", bundle), ("upload", request),
                                              ("download", response))}  # fmt: skip
    return output, seconds, sizes


def check(values: Any, reference: npt.NDArray[np.int64], matters: npt.NDArray[np.bool_]) -> Verdict:
    """Every pixel where the spec defines the output: the decrypted ``values`` (a masked
    array, masked where the kernel's output is undefined) against ``reference`` mod T."""
    got = np.asarray(np.ma.filled(values, 0), dtype=np.int64) % T  # type: ignore[no-untyped-call]
    masked = np.asarray(np.ma.getmaskarray(values))  # type: ignore[no-untyped-call]
    if got.shape != reference.shape:
        raise ValueError(f"the output has shape {got.shape}, the reference {reference.shape}")
    bad = matters & (masked | (got != reference % T))
    first = None
    if bad.any():
        pixel = tuple(int(i) for i in np.argwhere(bad)[0])
        first = (pixel, int(reference[pixel]), int(got[pixel]))
    return Verdict(int(matters.sum()), int(bad.sum()), first)


def run_kernel(name: str, photo: npt.NDArray[np.uint8], out: Path, rebuild: bool) -> KernelRun:
    """Compile (if needed), run client and server, check: one kernel on the photo."""
    shape = (int(photo.shape[0]), int(photo.shape[1]))
    path = module_path(out, name, shape)
    if rebuild or not path.is_file():
        print(f"  compiling: porcupine synth kernels/{name}.spec --for {shape[0]}x{shape[1]} "
              f"--emit python -o {path}", flush=True)  # fmt: skip
        started = time.perf_counter()
        plan = compile_kernel(name, shape, path)
        print(f"  compiled in {time.perf_counter() - started:.1f} s; the compiler chose:")
        print("\n".join(f"    {line}" for line in plan))
    else:
        print(f"  using {path} (compiled earlier; --rebuild compiles again)")
    kernel = load_kernel(path)
    if name != kernel.KERNEL:
        raise AppError(f"{path} holds kernel {kernel.KERNEL}, not {name}: use --rebuild")
    image = quantize(photo, INPUT_BITS[name])
    spec = load_spec(str(ROOT / "kernels" / f"{name}.spec"))
    reference = reference_array(spec.origin.source, shape_params(spec, {"x": shape}), {"x": image})
    out.mkdir(parents=True, exist_ok=True)
    output, seconds, sizes = two_party(kernel, path, image, out)
    verdict = check(output, reference.values, reference.matters)
    values = np.asarray(np.ma.filled(output, 0), dtype=np.int64) % T  # type: ignore[no-untyped-call]
    return KernelRun(
        name=name,
        bits=INPUT_BITS[name],
        tile=tuple(kernel.tile_shape()),
        ring_dim=int(kernel.RING_DIM),
        parameter_set=str(kernel.PARAMETER_SET),
        tiles=int(kernel.plan_tiles(shape).count),
        bundle_bytes=sizes["bundle"],
        upload_bytes=sizes["upload"],
        download_bytes=sizes["download"],
        keys_s=seconds["keys"],
        encrypt_s=seconds["encrypt"],
        server_s=seconds["server"],
        evaluate_s=seconds["evaluate"],
        decrypt_s=seconds["decrypt"],
        verdict=verdict,
        values=np.where(reference.matters, values, 0),
        matters=reference.matters,
    )


# --- pictures ----------------------------------------------------------------------------


def centred(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Residues mod T as integers in -32768..32768: the true value wherever it is that
    small."""
    return np.where(values > T // 2, values - T, values)


def harris_exact(image: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """kernels/harris.spec's response in exact integers (not mod 65537), where it matters;
    int64 holds it for 8-bit pixels (below 2^46). Only to say where the residue wraps."""
    x = image.astype(np.int64)
    gx, gy = np.zeros_like(x), np.zeros_like(x)
    c, up, down = np.s_[1:-1], np.s_[:-2], np.s_[2:]
    gx[c, c] = x[up, up] - x[up, down] + 2 * x[c, up] - 2 * x[c, down] + x[down, up] - x[down, down]
    gy[c, c] = x[up, up] + 2 * x[up, c] + x[up, down] - x[down, up] - 2 * x[down, c] - x[down, down]

    def window(a: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        # sum(di in 0..2) sum(dj in 0..2) a[i+di][j+dj]: a range excludes its end (2x2)
        padded = np.pad(a, ((0, 1), (0, 1)))
        h, w = a.shape
        return sum((padded[di : di + h, dj : dj + w] for di in range(2) for dj in range(2)),
                   np.zeros_like(a))  # fmt: skip

    sxx, syy, sxy = window(gx * gx), window(gy * gy), window(gx * gy)
    response: npt.NDArray[np.int64] = 16 * (sxx * syy - sxy * sxy) - (sxx + syy) ** 2
    return response


def picture(run: KernelRun) -> npt.NDArray[np.uint8]:
    """The kernel's output as an 8-bit picture (what each shows: the module docstring)."""
    v = run.values
    if run.name == "box_blur":
        shown = v // 4  # the 2x2 sum of 8-bit pixels is 0..1020
    elif run.name == "sobel":
        magnitude = np.sqrt(v.astype(np.float64))  # gx^2 + gy^2 < 32768: no wrap
        # The strongest edges are few: the 99th percentile as white shows the rest.
        top = float(np.percentile(magnitude[run.matters], 99)) if run.matters.any() else 1.0
        shown = np.rint(magnitude * 255 / max(top, 1.0))
    else:
        c = centred(v).astype(np.float64)
        shown = np.rint(128 + np.sign(c) * 127 * np.log1p(np.abs(c)) / np.log1p(T // 2))
        shown = np.where(run.matters, shown, 128)
    return np.clip(shown, 0, 255).astype(np.uint8)


def write_png(pixels: npt.NDArray[np.uint8], path: Path) -> None:
    """An 8-bit grayscale PNG."""
    Image.fromarray(pixels, mode="L").save(path, format="PNG", optimize=True)


def figure(
    panels: Sequence[tuple[str, npt.NDArray[np.uint8]]], path: Path, width: int, columns: int
) -> None:
    """The panels in a grid of ``columns``, each scaled to ``width`` pixels wide and
    labelled above."""
    font = ImageFont.load_default(size=16)
    label_h, gap = 24, 6
    scaled = []
    for label, pixels in panels:
        image = Image.fromarray(pixels, mode="L")
        height = max(1, round(image.height * width / image.width))
        scaled.append((label, image.resize((width, height), Image.Resampling.LANCZOS)))
    cell_h = label_h + max(im.height for _, im in scaled) + gap
    rows = -(-len(scaled) // columns)
    sheet = Image.new("L", (columns * (width + gap) - gap, rows * cell_h - gap), 255)
    draw = ImageDraw.Draw(sheet)
    for k, (label, image) in enumerate(scaled):
        x, y = (k % columns) * (width + gap), (k // columns) * cell_h
        draw.text((x + 2, y + 3), label, fill=0, font=font)
        sheet.paste(image, (x, y + label_h))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG", optimize=True)


# --- the application ---------------------------------------------------------------------


def crop(photo: npt.NDArray[np.uint8], size: str | None) -> npt.NDArray[np.uint8]:
    """The photo, or its central ``HxW`` window. ValueError for a size that does not fit."""
    if size is None:
        return photo
    try:
        h, w = (int(n) for n in size.lower().split("x"))
    except ValueError:
        raise ValueError(f"--crop {size!r}: write HxW, e.g. --crop 80x100") from None
    if not (4 <= h <= photo.shape[0] and 4 <= w <= photo.shape[1]):
        raise ValueError(f"--crop {size}: each side must be 4..{photo.shape[0]}")
    top, left = (photo.shape[0] - h) // 2, (photo.shape[1] - w) // 2
    return photo[top : top + h, left : left + w]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen kernels on the photo; 0 when all are pixel-exact."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--kernels", nargs="+", choices=KERNELS, default=list(KERNELS))
    parser.add_argument("--rebuild", action="store_true", help="compile the kernels again")
    parser.add_argument("--crop", metavar="HxW", help="a central window of the photo only")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "build" / "photo",
        help="kernels, bundles, requests and PNGs (default build/photo)",
    )
    parser.add_argument("--figure", type=Path, help="the side-by-side figure (default "
                        "docs/photo.png for the whole photo, else OUT/figure.png)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        photo = crop(camera(), args.crop)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    shape = (int(photo.shape[0]), int(photo.shape[1]))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_png(photo, out / "input.png")
    print(f"photo: scikit-image's camera, {shape[0]}x{shape[1]} pixels; client here, server "
          "in a separate process per kernel (OMP_NUM_THREADS=1)")  # fmt: skip
    panels: list[tuple[str, npt.NDArray[np.uint8]]] = [("input: camera, 8-bit", photo)]
    exact = True
    for name in args.kernels:
        print(f"\n{name} ({INPUT_BITS[name]}-bit input)", flush=True)
        try:
            run = run_kernel(name, photo, out, args.rebuild)
        except AppError as e:
            print(f"{name}: {e}", file=sys.stderr)
            return 2
        print(run.report())
        if name == "harris":
            exact_r = harris_exact(quantize(photo, run.bits))
            wraps = int((run.matters & (np.abs(exact_r) > T // 2)).sum())
            print(f"  the response wraps mod 65537 at {wraps} of {run.verdict.checked} pixels "
                  f"(|r| > 32768 in integers); harris.png shows the centred residue on a "
                  "signed log scale")  # fmt: skip
        exact = exact and run.verdict.exact
        pixels = picture(run)
        write_png(pixels, out / f"{name}.png")
        panels.append((LABELS[name], pixels))
    target = args.figure or (ROOT / "docs" / "photo.png" if shape == CAMERA_SHAPE
                             else out / "figure.png")  # fmt: skip
    # Four panels in a 2x2 grid of 384-pixel-wide pictures: under 300 KB for the photo.
    figure(panels, target, width=min(384, shape[1]), columns=2 if len(panels) == 4 else 4)
    print(f"\nwrote {', '.join(str(out / f'{n}.png') for n in ['input', *args.kernels])} "
          f"and {target}")  # fmt: skip
    if not exact:
        print("WRONG: a decrypted pixel differs from the plaintext reference", file=sys.stderr)
        return 1
    print("every kernel pixel-exact against the plaintext reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
