"""The hand-written OpenFHE application: what an HE programmer writes without a compiler.

The baseline side of the application benchmark (issue 21, ``eval/apps.md``): box blur, the
Sobel x-gradient, Sobel and Harris over an image of any size, with client and server in
separate processes. The HE code path uses numpy, openfhe and the standard library only (no
porcupine), written the way the OpenFHE examples teach:

* **client**: ``CCParamsBFVRNS`` with t = 65537 and ``SetMultiplicativeDepth(d)``, every other
  parameter OpenFHE's default (HEStd_128_classic, OpenFHE's ring dimension); ``KeyGen``,
  ``EvalMultKeyGen`` when the kernel multiplies ciphertexts, ``EvalRotateKeyGen`` for the
  kernel's rotations. The context and the public evaluation keys are serialized (BINARY) into
  a directory with one file per input tile: 64x64 tiles that overlap by the stencil's halo
  (stepping by 64 - halo), row-major in the slots, zero padded past the image;
* **server** (``python -m eval.handwritten_app serve DIR``, a separate process): loads the
  context and evaluation keys (there is no secret key in DIR), runs the baseline kernel of
  ``kernels/baselines/*.quill``, translated by hand below, on each tile, and writes the results;
* **client** again: decrypts, strips the halos, stitches, and compares every output pixel
  with a plaintext numpy reference, mod 65537 (the spec's semantics); a wrong pixel raises
  :class:`WrongResult`.

Depths: box blur and gx multiply no ciphertexts, but OpenFHE needs depth 1 for them. At
depth 0 it picks N = 4096 with one 60-bit tower, where a single EvalRotate already decrypts
to garbage (BV key switching without digits adds more noise than the tower holds; measured),
and its rotations act on two rows of 2048 slots, which a 4096-slot tile does not fit. At
depth 1 (and Sobel's 1, Harris's 2) OpenFHE picks N = 8192: a 4096-slot row holds a tile
exactly. A ring with longer rows would get the tile zero padded to the row: a kept output
pixel reads only its own tile (the halo's purpose), so no rotation brings in what lies past.

    python -m eval.handwritten_app run [--kernel NAME ...] [--bits B]   # on the camera photo
"""

from __future__ import annotations

import os

# Single-threaded OpenFHE, set before openfhe is imported (OpenMP reads it once): with the
# default thread count, a process sharing its cores with another busy one was measured 136x
# slower (box blur 64x64). The server process gets the same setting in its environment.
os.environ["OMP_NUM_THREADS"] = "1"

import argparse
import dataclasses
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import openfhe

T = 65537
TILE = 64  # tile height and width; a tile is 4096 slots, row-major
W = TILE  # the row stride in the slots: rot(x, a*w + b) of a .quill kernel is a*W + b here
ROOT = Path(__file__).resolve().parent.parent

Image = npt.NDArray[np.int64]


class WrongResult(AssertionError):
    """A decrypted output pixel differs from the plaintext reference."""


# The baseline kernels of kernels/baselines/*.quill, by hand: rot -> EvalRotate (left by k),
# add -> EvalAdd, sub -> EvalSub, mul of two ciphertexts -> EvalMult (relinearizes), mul by
# const(16) -> EvalMult with a plaintext of 16s. The .quill amounts are for a 4- or 8-wide
# image; an amount a*w + b is a*W + b on a 64-wide tile.
def box_blur(cc: Any, x: Any) -> Any:
    """kernels/baselines/box_blur.quill: x + x[right] + x[down] + x[down-right]."""
    right = cc.EvalRotate(x, 1)
    down = cc.EvalRotate(x, W)
    diag = cc.EvalRotate(x, W + 1)
    s1 = cc.EvalAdd(x, right)
    s2 = cc.EvalAdd(s1, down)
    return cc.EvalAdd(s2, diag)


def gx(cc: Any, x: Any) -> Any:
    """kernels/baselines/gx.quill: one rotation per non-zero tap of the Sobel x kernel."""
    ul = cc.EvalRotate(x, -W - 1)
    ur = cc.EvalRotate(x, -W + 1)
    left = cc.EvalRotate(x, -1)
    right = cc.EvalRotate(x, 1)
    dl = cc.EvalRotate(x, W - 1)
    dr = cc.EvalRotate(x, W + 1)
    l2 = cc.EvalAdd(left, left)
    r2 = cc.EvalAdd(right, right)
    s1 = cc.EvalSub(ul, ur)
    s2 = cc.EvalAdd(s1, l2)
    s3 = cc.EvalSub(s2, r2)
    s4 = cc.EvalAdd(s3, dl)
    return cc.EvalSub(s4, dr)


def _gradients(cc: Any, x: Any) -> tuple[Any, Any]:
    """The gx and gy stencils of sobel.quill and harris.quill, sharing the corner rotations."""
    ul = cc.EvalRotate(x, -W - 1)
    up = cc.EvalRotate(x, -W)
    ur = cc.EvalRotate(x, -W + 1)
    left = cc.EvalRotate(x, -1)
    right = cc.EvalRotate(x, 1)
    dl = cc.EvalRotate(x, W - 1)
    down = cc.EvalRotate(x, W)
    dr = cc.EvalRotate(x, W + 1)
    l2 = cc.EvalAdd(left, left)
    r2 = cc.EvalAdd(right, right)
    g = cc.EvalSub(ul, ur)
    g = cc.EvalAdd(g, l2)
    g = cc.EvalSub(g, r2)
    g = cc.EvalAdd(g, dl)
    grad_x = cc.EvalSub(g, dr)
    u2 = cc.EvalAdd(up, up)
    d2 = cc.EvalAdd(down, down)
    g = cc.EvalAdd(ul, u2)
    g = cc.EvalAdd(g, ur)
    g = cc.EvalSub(g, dl)
    g = cc.EvalSub(g, d2)
    grad_y = cc.EvalSub(g, dr)
    return grad_x, grad_y


def sobel(cc: Any, x: Any) -> Any:
    """kernels/baselines/sobel.quill: gx^2 + gy^2."""
    grad_x, grad_y = _gradients(cc, x)
    return cc.EvalAdd(cc.EvalMult(grad_x, grad_x), cc.EvalMult(grad_y, grad_y))


def harris(cc: Any, x: Any, sixteen: Any) -> Any:
    """kernels/baselines/harris.quill: 16 * (sxx * syy - sxy^2) - (sxx + syy)^2, the s..
    being 2x2 box sums of gx*gx, gy*gy, gx*gy. ``sixteen``: a plaintext of 16s."""
    grad_x, grad_y = _gradients(cc, x)
    gxx = cc.EvalMult(grad_x, grad_x)
    gyy = cc.EvalMult(grad_y, grad_y)
    gxy = cc.EvalMult(grad_x, grad_y)
    sxx = box_blur(cc, gxx)
    syy = box_blur(cc, gyy)
    sxy = box_blur(cc, gxy)
    det = cc.EvalSub(cc.EvalMult(sxx, syy), cc.EvalMult(sxy, sxy))
    det16 = cc.EvalMult(det, sixteen)
    trace = cc.EvalAdd(sxx, syy)
    return cc.EvalSub(det16, cc.EvalMult(trace, trace))


@dataclass(frozen=True)
class Kernel:
    """One application kernel: its depth, rotations and the pixels its outputs read."""

    name: str
    depth: int  # SetMultiplicativeDepth (see the module docstring for box blur and gx)
    products: bool  # multiplies ciphertexts: needs the relinearization key
    rotations: tuple[int, ...]  # the EvalRotate indices at a 64-wide tile
    before: int  # an output pixel reads this many rows (columns) above (left of) it
    after: int  # ... and this many below (right of) it

    @property
    def halo(self) -> int:
        """The overlap of neighbouring tiles: tiles step by TILE - halo."""
        return self.before + self.after


_GRAD = (-W - 1, -W, -W + 1, -1, 1, W - 1, W, W + 1)
KERNELS: dict[str, Kernel] = {
    "box_blur": Kernel("box_blur", 1, False, (1, W, W + 1), 0, 1),
    "gx": Kernel("gx", 1, False, (-W - 1, -W + 1, -1, 1, W - 1, W + 1), 1, 1),
    "sobel": Kernel("sobel", 1, True, _GRAD, 1, 1),
    "harris": Kernel("harris", 2, True, _GRAD, 1, 2),
}


def server_function(cc: Any, kernel: Kernel) -> Callable[[Any], Any]:
    """The kernel's OpenFHE function on one tile ciphertext (Harris's plaintext constant made
    once, as a programmer hoists it out of the tile loop)."""
    if kernel.name == "harris":
        sixteen = cc.MakePackedPlaintext([16] * int(cc.GetRingDimension()))
        return lambda x: harris(cc, x, sixteen)
    fn = {"box_blur": box_blur, "gx": gx, "sobel": sobel}[kernel.name]
    return lambda x: fn(cc, x)


# The plaintext reference: exact integers (int64 holds Harris on 8-bit pixels), compared mod t.
def _grad_x(x: Image) -> Image:
    out = np.zeros_like(x)
    out[1:-1, 1:-1] = (
        x[:-2, :-2] - x[:-2, 2:] + 2 * x[1:-1, :-2] - 2 * x[1:-1, 2:] + x[2:, :-2] - x[2:, 2:]
    )
    return out


def _grad_y(x: Image) -> Image:
    out = np.zeros_like(x)
    out[1:-1, 1:-1] = (
        x[:-2, :-2] + 2 * x[:-2, 1:-1] + x[:-2, 2:] - x[2:, :-2] - 2 * x[2:, 1:-1] - x[2:, 2:]
    )
    return out


def _window_sum(x: Image) -> Image:
    out = np.zeros_like(x)
    out[:-1, :-1] = x[:-1, :-1] + x[:-1, 1:] + x[1:, :-1] + x[1:, 1:]
    return out


def reference(name: str, image: Image) -> Image:
    """The kernel on the whole image in exact integers (not reduced mod t), as the specs
    define it: box blur the 2x2 window sum, gx the Sobel x-gradient, sobel gx^2 + gy^2,
    harris 16 * (sxx * syy - sxy^2) - (sxx + syy)^2 (kernels/harris.spec). Pixels without
    a defined output (see :func:`valid_mask`) are meaningless."""
    x = image.astype(np.int64)
    if name == "box_blur":
        return _window_sum(x)
    gxs = _grad_x(x)
    if name == "gx":
        return gxs
    gys = _grad_y(x)
    if name == "sobel":
        return gxs * gxs + gys * gys
    sxx, syy, sxy = _window_sum(gxs * gxs), _window_sum(gys * gys), _window_sum(gxs * gys)
    trace = sxx + syy
    return 16 * (sxx * syy - sxy * sxy) - trace * trace


def valid_mask(kernel: Kernel, shape: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    """The pixels with a defined output: ``before <= i < h - after``, the same for j."""
    mask = np.zeros(shape, dtype=np.bool_)
    mask[kernel.before : shape[0] - kernel.after, kernel.before : shape[1] - kernel.after] = True
    return mask


# Tiling: tile k along an axis covers pixels k*step .. k*step + 63 and keeps its outputs
# before .. 63 - after, so consecutive tiles' kept outputs are contiguous.
def tile_origins(length: int, kernel: Kernel) -> list[int]:
    """The first pixel of each tile along an axis of ``length`` pixels."""
    step = TILE - kernel.halo
    count = 1 if length <= TILE else math.ceil((length - TILE) / step) + 1
    return [k * step for k in range(count)]


def cut_tiles(image: Image, kernel: Kernel) -> list[tuple[int, int, Image]]:
    """(row, column, 64x64 tile) for every tile, zero padded past the image."""
    rows, cols = tile_origins(image.shape[0], kernel), tile_origins(image.shape[1], kernel)
    padded = np.zeros((rows[-1] + TILE, cols[-1] + TILE), dtype=np.int64)
    padded[: image.shape[0], : image.shape[1]] = image
    return [(r, c, padded[r : r + TILE, c : c + TILE]) for r in rows for c in cols]


def stitch(
    shape: tuple[int, int], kernel: Kernel, tiles: Sequence[tuple[int, int, Image]]
) -> Image:
    """The output image from the decrypted tiles (values mod t): each tile's kept outputs,
    halos stripped, put in place; pixels without a defined output are -1."""
    out = np.full(shape, -1, dtype=np.int64)
    keep = slice(kernel.before, TILE - kernel.after)
    for r, c, values in tiles:
        block = values[keep, keep]
        r0, c0 = r + kernel.before, c + kernel.before
        h, w = min(block.shape[0], shape[0] - r0), min(block.shape[1], shape[1] - c0)
        if h > 0 and w > 0:
            out[r0 : r0 + h, c0 : c0 + w] = block[:h, :w]
    out[~valid_mask(kernel, shape)] = -1
    return out


def verify(kernel: Kernel, image: Image, result: Image) -> tuple[int, int]:
    """Check every defined output pixel of ``result`` (values mod t) against the reference
    on ``image``: raises WrongResult naming the first wrong pixel; returns the number of
    pixels checked and of those whose exact value leaves -32768..32768 (wraps mod t)."""
    mask = valid_mask(kernel, result.shape[:2])
    exact = reference(kernel.name, image)
    wrong = np.argwhere(mask & (result != exact % T))
    if len(wrong):
        i, j = (int(v) for v in wrong[0])
        raise WrongResult(
            f"{kernel.name}: {len(wrong)} of {int(mask.sum())} output pixels wrong; first at "
            f"({i}, {j}): decrypted {result[i, j]}, reference {exact[i, j] % T} (mod {T})"
        )
    return int(mask.sum()), int((mask & (np.abs(exact) > T // 2)).sum())


@dataclass(frozen=True)
class Report:
    """One run of the hand-written application: sizes in bytes, times in seconds."""

    kernel: str
    image: tuple[int, int]
    depth: int
    tiles: int
    ring_dim: int
    log2_q: float
    rotation_keys: int
    bundle_bytes: int  # serialized context + relinearization key + rotation keys
    upload_bytes: int  # the input tile ciphertexts
    download_bytes: int  # the result ciphertexts
    context_s: float  # GenCryptoContext
    keygen_s: float  # KeyGen + EvalMultKeyGen + EvalRotateKeyGen
    bundle_s: float  # serializing the context and evaluation keys
    encrypt_s: float  # encode, encrypt and serialize every tile
    server_s: float  # the server process, wall clock: start, load, evaluate, write
    server_load_s: float  # in the server: deserializing the context and keys
    evaluate_s: float  # in the server: the kernel on every tile (ciphertexts in memory)
    decrypt_s: float  # deserialize, decrypt, decode, strip halos and stitch
    total_s: float  # the client's wall clock from context creation to the stitched result
    cpu_s: float  # CPU seconds of both processes over total_s (the load-independent figure)
    pixels: int  # output pixels checked
    wrapped_pixels: int  # outputs whose exact value leaves -32768..32768 (compared mod t)
    correct: bool

    def to_json(self) -> str:
        """One JSON line."""
        return json.dumps(dataclasses.asdict(self))


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"OpenFHE failed to {what}")


def run(name: str, image: npt.NDArray[np.integer], workdir: Path | None = None) -> Report:
    """Run kernel ``name`` on ``image`` (2-D, pixels in 0..255) encrypted: client here, the
    server in a subprocess. Raises WrongResult if any output pixel differs from the
    reference mod t, ValueError for an unknown kernel or an unusable image."""
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; choose from {', '.join(KERNELS)}")
    kernel = KERNELS[name]
    pixels = np.asarray(image)
    if pixels.ndim != 2 or not np.issubdtype(pixels.dtype, np.integer):
        raise ValueError(f"expected a 2-D integer image, got {pixels.ndim}-D {pixels.dtype}")
    if min(pixels.shape) <= kernel.halo:
        raise ValueError(f"{name} needs an image larger than {kernel.halo} in each dimension")
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"pixels must be in 0..255, got {pixels.min()}..{pixels.max()}")
    shape = (int(pixels.shape[0]), int(pixels.shape[1]))
    try:
        with tempfile.TemporaryDirectory(prefix="handwritten-", dir=workdir) as tmp:
            return _run(kernel, pixels.astype(np.int64), shape, Path(tmp))
    finally:  # the process-wide key maps would otherwise keep every run's keys
        openfhe.ClearEvalMultKeys()
        openfhe.CryptoContext.ClearEvalAutomorphismKeys()


def _run(kernel: Kernel, image: Image, shape: tuple[int, int], d: Path) -> Report:
    start, start_cpu = time.perf_counter(), time.process_time()
    params = openfhe.CCParamsBFVRNS()
    params.SetPlaintextModulus(T)
    params.SetMultiplicativeDepth(kernel.depth)
    cc = openfhe.GenCryptoContext(params)
    for feature in (openfhe.PKE, openfhe.KEYSWITCH, openfhe.LEVELEDSHE):
        cc.Enable(feature)
    row = int(cc.GetRingDimension()) // 2  # BFV slots: two rows that rotate separately
    if row < TILE * TILE:
        raise ValueError(f"N = {2 * row} rotates rows of {row} slots: a 64x64 tile needs 4096")
    t_context = time.perf_counter()

    keys = cc.KeyGen()
    if kernel.products:
        cc.EvalMultKeyGen(keys.secretKey)
    cc.EvalRotateKeyGen(keys.secretKey, list(kernel.rotations))
    t_keys = time.perf_counter()

    # OpenFHE keeps evaluation keys in process-wide maps: serialize this key pair's only
    # (by its tag), or keys left from an earlier run in this process would go along.
    tag = keys.secretKey.GetKeyTag()
    bundle = [d / "context.bin", d / "rotation_keys.bin"]
    _check(openfhe.SerializeToFile(str(bundle[0]), cc, openfhe.BINARY), "write the context")
    _check(cc.SerializeEvalAutomorphismKey(str(bundle[1]), openfhe.BINARY, tag), "write rot keys")
    if kernel.products:
        bundle.append(d / "mult_key.bin")
        _check(cc.SerializeEvalMultKey(str(bundle[-1]), openfhe.BINARY, tag), "write mult key")
    (d / "job.json").write_text(json.dumps({"kernel": kernel.name}))
    t_bundle = time.perf_counter()

    tiles = cut_tiles(image, kernel)
    (d / "in").mkdir()
    uploads = []
    for k, (_, _, tile) in enumerate(tiles):
        slots = tile.ravel().tolist() + [0] * (row - TILE * TILE)  # zero padded to a row
        ct = cc.Encrypt(keys.publicKey, cc.MakePackedPlaintext(slots))
        uploads.append(d / "in" / f"{k}.bin")
        _check(openfhe.SerializeToFile(str(uploads[-1]), ct, openfhe.BINARY), "write a tile")
    t_encrypt = time.perf_counter()

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "eval.handwritten_app", "serve", str(d)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"the server failed (status {proc.returncode}):\n{proc.stderr}")
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    t_server = time.perf_counter()

    downloads = [d / "out" / f"{k}.bin" for k in range(len(tiles))]
    decrypted = []
    for (r, c, _), path in zip(tiles, downloads, strict=True):
        ct, ok = openfhe.DeserializeCiphertext(str(path), openfhe.BINARY)
        _check(ok, f"read {path.name}")
        pt = cc.Decrypt(keys.secretKey, ct)
        pt.SetLength(TILE * TILE)
        values = np.array(pt.GetPackedValue(), dtype=np.int64) % T
        decrypted.append((r, c, values.reshape(TILE, TILE)))
    result = stitch(shape, kernel, decrypted)
    t_end = time.perf_counter()

    pixels, wrapped = verify(kernel, image, result)
    return Report(
        kernel=kernel.name,
        image=shape,
        depth=kernel.depth,
        tiles=len(tiles),
        ring_dim=int(cc.GetRingDimension()),
        log2_q=round(math.log2(int(cc.GetElementParams().GetModulus())), 1),
        rotation_keys=len(kernel.rotations),
        bundle_bytes=sum(p.stat().st_size for p in bundle),
        upload_bytes=sum(p.stat().st_size for p in uploads),
        download_bytes=sum(p.stat().st_size for p in downloads),
        context_s=t_context - start,
        keygen_s=t_keys - t_context,
        bundle_s=t_bundle - t_keys,
        encrypt_s=t_encrypt - t_bundle,
        server_s=t_server - t_encrypt,
        server_load_s=float(served["load_s"]),
        evaluate_s=float(served["evaluate_s"]),
        decrypt_s=t_end - t_server,
        total_s=t_end - start,
        cpu_s=time.process_time() - start_cpu + float(served["cpu_s"]),
        pixels=pixels,
        wrapped_pixels=wrapped,
        correct=True,
    )


def serve(d: Path) -> dict[str, float]:
    """The server: load the context and evaluation keys from ``d`` (no secret key there),
    run the job's kernel on every tile ``d/in/K.bin`` and write ``d/out/K.bin``. Returns
    its load and evaluation seconds."""
    start = time.perf_counter()
    kernel = KERNELS[json.loads((d / "job.json").read_text())["kernel"]]
    cc, ok = openfhe.DeserializeCryptoContext(str(d / "context.bin"), openfhe.BINARY)
    _check(ok, "read the context")
    if kernel.products:
        _check(cc.DeserializeEvalMultKey(str(d / "mult_key.bin"), openfhe.BINARY), "read mult key")
    rot_keys = str(d / "rotation_keys.bin")
    _check(cc.DeserializeEvalAutomorphismKey(rot_keys, openfhe.BINARY), "read rotation keys")
    fn = server_function(cc, kernel)
    loaded = time.perf_counter()
    inputs = []
    for k in range(len(list((d / "in").glob("*.bin")))):
        ct, ok = openfhe.DeserializeCiphertext(str(d / "in" / f"{k}.bin"), openfhe.BINARY)
        _check(ok, f"read tile {k}")
        inputs.append(ct)
    began = time.perf_counter()
    outputs = [fn(ct) for ct in inputs]
    evaluated = time.perf_counter()
    (d / "out").mkdir()
    for k, ct in enumerate(outputs):
        path = str(d / "out" / f"{k}.bin")
        _check(openfhe.SerializeToFile(path, ct, openfhe.BINARY), f"write result {k}")
    # cpu_s: the whole process, start and imports included (the client times it from spawn)
    cpu_s = sum(os.times()[:2])
    return {"load_s": loaded - start, "evaluate_s": evaluated - began, "cpu_s": cpu_s}


def main(argv: Sequence[str] | None = None) -> int:
    """``run`` (client, on the camera photo; JSON lines on stdout) or ``serve DIR``."""
    parser = argparse.ArgumentParser(prog="python -m eval.handwritten_app", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run kernels on the camera photo, client and server")
    run_p.add_argument("--kernel", action="append", choices=list(KERNELS), dest="kernels")
    run_p.add_argument("--bits", type=int, default=8, help="keep the top bits of each pixel")
    sub.add_parser("serve", help="the server side, on a job directory").add_argument(
        "dir", type=Path
    )
    args = parser.parse_args(argv)
    if args.command == "serve":
        print(json.dumps(serve(args.dir)))
        return 0
    from examples.photo import camera, quantize

    image = quantize(camera(), args.bits)
    for name in args.kernels or list(KERNELS):
        try:
            report = run(name, image)
        except WrongResult as e:
            print(f"WRONG: {e}", file=sys.stderr)
            return 1
        print(report.to_json(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
