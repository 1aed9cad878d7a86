"""Data of any size for a kernel compiled at one size: tiles with halos, chunks.

A kernel runs on ciphertexts of one size (say a 64x64 image); an application's data has any
size (a 512x384 photo, a million-element vector). The compiler classifies the spec
(:mod:`porcupine.backend.tiling`) and writes its finding into the emitted module's constants
(``TILE_KIND``, ``TILE_READS``, ``TILE_MARGINS``, ``TILE_FILL``, ``TILE_REASON``); the code
below the ``tiles`` marker is copied into every emitted module and cuts data into
kernel-sized inputs and stitches the kernel's outputs back:

* a **stencil** is cut into overlapping tiles: each computes ``step`` output elements per
  axis and reads a halo of input around them (zeros outside the data, which a ``pad zero``
  input means and which the other inputs' don't-care elements may hold);
* a **reduction** is cut into chunks of the kernel's length, the last zero padded; the
  chunks' outputs add up (the server adds the chunks' ciphertexts);
* a **fixed** kernel takes data of its own shape only.

``plan = plan_tiles(shape)`` is what client and server agree on (``plan.to_json()``); the
client encrypts ``tile_inputs(plan, name, values)`` tile by tile, the server runs the kernel
on each tile (a reduction: and adds the outputs), and ``stitch(plan, outputs)`` puts the
decrypted outputs together. The imports and placeholder constants above the marker are
there for ruff and mypy, and describe the runtime's placeholder kernel (``y = x + x`` on 8
slots: an elementwise stencil).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from porcupine.backend.runtime import (
    INPUT_LAYOUTS,
    OUTPUT_LAYOUT,
    PLAINTEXT_MODULUS,
    _integers,
)

# --- tiling constants: generated (porcupine.backend.tiling.tiling_constants writes them) ---
TILE_KIND = "stencil"  # "stencil", "reduction" or "fixed"
TILE_READS: tuple[tuple[int, int], ...] = ((0, 0),)
TILE_MARGINS: tuple[tuple[int, int], ...] = ((0, 0),)
TILE_FILL: dict[str, int] = {}
TILE_REASON = ""
SPEC_PARAMS: dict[str, int] = {"n": 8}  # the spec's params at the kernel's (the tile's) size
# --- tiles: copied into every emitted module (after the runtime) ---

MaskedOutput = np.ma.MaskedArray[Any, np.dtype[np.int64]]


def tile_shape() -> tuple[int, ...]:
    """The shape of one tile: the kernel's common input shape, or for a fixed kernel the
    shape of its first input (its inputs may differ)."""
    if TILE_KIND == "stencil":
        return tuple(OUTPUT_LAYOUT.shape)
    return tuple(next(iter(INPUT_LAYOUTS.values()), OUTPUT_LAYOUT).shape)


@dataclass(frozen=True)
class _Axis:
    """One axis of a stencil's tiling: tile ``t`` computes the data's output elements
    ``[m_lo + t*step, ... + step)`` (those below ``size - m_hi``), at the kernel's output
    elements ``[v_lo, v_lo + step)``, from the data's input elements ``[m_lo + t*step -
    v_lo, ... + tile)``."""

    size: int  # the data's
    tile: int  # the kernel's
    v_lo: int
    m_lo: int
    m_hi: int
    step: int

    def start(self, t: int) -> int:
        """The data's element at the tile's element 0."""
        return self.m_lo + t * self.step - self.v_lo


def _axes(shape: tuple[int, ...]) -> list[_Axis]:
    """The stencil's geometry along every axis of data of ``shape`` (checked)."""
    axes = []
    for a, (size, tile, (lo, hi), (m_lo, m_hi)) in enumerate(
        zip(shape, tile_shape(), TILE_READS, TILE_MARGINS, strict=True)
    ):
        v_lo, v_hi = max(lo, m_lo), max(hi, m_hi)
        step = tile - v_lo - v_hi
        if step < 1:
            raise ValueError(
                f"the kernel has {tile} elements along axis {a}, too few for its halo: a tile "
                f"needs {v_lo} before and {v_hi} after the elements it computes; compile the "
                "kernel at a larger size (porcupine synth --param ...)"
            )
        if size <= m_lo + m_hi:
            raise ValueError(
                f"the data has {size} elements along axis {a}, too few for this kernel: its "
                f"output skips {m_lo} elements before and {m_hi} after (the spec's where), "
                f"so give more than {m_lo + m_hi}"
            )
        axes.append(_Axis(size, tile, v_lo, m_lo, m_hi, step))
    return axes


@dataclass(frozen=True)
class TilePlan:
    """How data of one shape is cut, as client and server agree on it for one request.

    ``shape``: the data's (every input's and, for a stencil, the output's; for a fixed
    kernel, its first input's); ``tiles``: tiles per axis, in row-major order.
    """

    shape: tuple[int, ...]
    tiles: tuple[int, ...]

    @property
    def count(self) -> int:
        """The number of tiles: of kernel runs (a reduction: of chunks added up)."""
        return math.prod(self.tiles)

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON data (``from_json`` checks it against this module)."""
        return {"kind": TILE_KIND, "shape": list(self.shape), "tiles": list(self.tiles)}

    @staticmethod
    def from_json(data: object) -> TilePlan:
        """The plan ``to_json`` gave, re-derived from its shape: ValueError when it does
        not fit this kernel (another kind, shape or tiling: another kernel's module)."""
        if not isinstance(data, dict) or set(data) != {"kind", "shape", "tiles"}:
            raise ValueError("a tile plan is a JSON object with kind, shape and tiles")
        if data["kind"] != TILE_KIND:
            raise ValueError(f"the plan is for a {data['kind']} kernel, this one is {TILE_KIND}")
        shape, tiles = data["shape"], data["tiles"]
        for what, value in (("shape", shape), ("tiles", tiles)):
            if not isinstance(value, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value
            ):
                raise ValueError(f"the plan's {what} must be a list of integers, got {value!r}")
        plan = plan_tiles(tuple(shape))
        if plan.tiles != tuple(tiles):
            raise ValueError(
                f"the plan cuts shape {plan.shape} into {tuple(tiles)} tiles, this kernel into "
                f"{plan.tiles}: client and server use different kernels"
            )
        return plan


def plan_tiles(shape: tuple[int, ...]) -> TilePlan:
    """The plan for data of ``shape``. ValueError when it is empty, has the wrong number of
    axes, is too small for the kernel's margins (or the kernel too small for its halo), or
    is not the kernel's own shape for a fixed kernel."""
    shape = tuple(int(s) for s in shape)
    kernel = tile_shape()
    if TILE_KIND == "fixed":
        if shape != kernel:
            raise ValueError(
                f"this kernel takes data of its own shape {kernel} only, not {shape} "
                f"({TILE_REASON}): compile the spec at that size (porcupine synth --param ...)"
            )
        return TilePlan(shape, (1,) * len(shape))
    if len(shape) != len(kernel):
        raise ValueError(
            f"data of shape {shape} has {len(shape)} axes, this kernel's inputs have "
            f"{len(kernel)} (it is compiled for {kernel})"
        )
    if any(s < 1 for s in shape):
        raise ValueError(f"data of shape {shape} is empty")
    if TILE_KIND == "reduction":
        return TilePlan(shape, (-(-shape[0] // kernel[0]),))
    axes = _axes(shape)
    return TilePlan(shape, tuple(-(-(a.size - a.m_lo - a.m_hi) // a.step) for a in axes))


def plan_inputs(inputs: Mapping[str, object]) -> TilePlan:
    """The plan for kernel inputs given in full, by name (their common shape, checked:
    each input of a fixed kernel must have its own kernel shape). Each party gives the
    inputs it holds: the client its ciphertext inputs, the server its plaintext ones."""
    unknown = sorted(set(inputs) - set(INPUT_LAYOUTS))
    if unknown or not inputs:
        raise ValueError(f"no input {unknown}: the kernel's inputs are {sorted(INPUT_LAYOUTS)}")
    shapes = {name: np.asarray(values).shape for name, values in inputs.items()}
    if TILE_KIND == "fixed":
        for name, shape in shapes.items():
            if shape != INPUT_LAYOUTS[name].shape:
                raise ValueError(
                    f"input {name!r} has shape {shape}; this kernel takes its own shape "
                    f"{INPUT_LAYOUTS[name].shape} only ({TILE_REASON})"
                )
        return plan_tiles(tile_shape())
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"the inputs must all have one shape, got {listed}")
    return plan_tiles(next(iter(shapes.values())))


def tile_inputs(plan: TilePlan, name: str, values: npt.ArrayLike) -> Iterator[npt.NDArray[Any]]:
    """Input ``name`` (all of the data, of ``plan.shape``) as kernel-shaped arrays, one per
    tile in the plan's order, made one at a time: zeros (or TILE_FILL's value) outside
    the data. The values are checked to be integers of the plan's shape here, eagerly; the
    runtime's ``encode`` checks their range. int64 arrays (object arrays of Python ints
    for values too wide for int64)."""
    if name not in INPUT_LAYOUTS:
        raise KeyError(f"no input {name!r}; the inputs are {sorted(INPUT_LAYOUTS)}")
    array = _integers(name, values)
    want = tuple(INPUT_LAYOUTS[name].shape) if TILE_KIND == "fixed" else plan.shape
    if array.shape != want:
        if array.size == 0:
            raise ValueError(f"input {name!r} is empty: give {want} values")
        raise ValueError(
            f"input {name!r} has shape {array.shape}, the plan's data has {want}: give every "
            "input in the shape the plan was made for"
        )
    if TILE_KIND == "fixed":
        return iter((array,))
    return _tiles(plan, array, TILE_FILL.get(name, 0))


def _tiles(plan: TilePlan, array: npt.NDArray[Any], fill: int) -> Iterator[npt.NDArray[Any]]:
    kernel = tile_shape()
    if TILE_KIND == "reduction":
        (n,) = kernel
        for c in range(plan.count):
            chunk = np.full(kernel, fill, dtype=array.dtype)
            part = array[c * n : (c + 1) * n]
            chunk[: len(part)] = part
            yield chunk
        return
    axes = _axes(plan.shape)
    for t in np.ndindex(*plan.tiles):
        tile = np.full(kernel, fill, dtype=array.dtype)
        source, target = [], []
        for a, ti in zip(axes, t, strict=True):
            begin = a.start(ti)
            lo, hi = max(begin, 0), min(begin + a.tile, a.size)
            source.append(slice(lo, hi))
            target.append(slice(lo - begin, hi - begin))
        tile[tuple(target)] = array[tuple(source)]
        yield tile


def stitch(
    plan: TilePlan, outputs: Iterable[MaskedOutput | npt.NDArray[Any] | int]
) -> MaskedOutput | int:
    """The whole output from the tiles' decoded outputs (``decode``'s: the kernel's output
    shape, masked where don't-care), in the plan's order.

    A stencil's is an array of ``plan.shape``, masked where the spec at that size does not
    constrain the output. A reduction takes one output (the server added the chunks'
    ciphertexts) or one per chunk (added here) and returns an int; a fixed kernel's one
    output is returned as it is. ValueError when outputs are missing, extra or misshapen.
    """
    if TILE_KIND == "stencil":
        return _stitch_stencil(plan, iter(outputs))
    got = list(outputs)
    if TILE_KIND == "fixed":
        if len(got) != 1:
            raise ValueError(f"a fixed kernel has one output, got {len(got)}")
        (out,) = got
        if isinstance(out, int):
            return out
        data, mask = _parts(out)
        return _masked(data, mask)
    if len(got) not in (1, plan.count):
        raise ValueError(
            f"a reduction takes one output (the chunks' ciphertexts added) or one per chunk "
            f"({plan.count}), got {len(got)}"
        )
    total = 0
    for out in got:
        value = out if isinstance(out, int) else _parts(out)[0]
        if np.ndim(value) != 0:
            raise ValueError(f"a reduction's output is a scalar, got shape {np.shape(value)}")
        total += int(value)
    return total % PLAINTEXT_MODULUS


def _stitch_stencil(plan: TilePlan, outputs: Iterator[object]) -> MaskedOutput:
    axes = _axes(plan.shape)
    kernel = tile_shape()
    values = np.zeros(plan.shape, dtype=np.int64)
    known = np.zeros(plan.shape, dtype=bool)
    for count, t in enumerate(np.ndindex(*plan.tiles)):
        out = next(outputs, None)
        if out is None:
            raise ValueError(f"stitch got {count} tile outputs, the plan has {plan.count}")
        data, mask = _parts(out)
        if data.shape != kernel:
            raise ValueError(f"tile {t}'s output has shape {data.shape}, expected {kernel}")
        source, target = [], []
        for a, ti in zip(axes, t, strict=True):
            first = a.m_lo + ti * a.step
            length = min(a.step, a.size - a.m_hi - first)
            source.append(slice(a.v_lo, a.v_lo + length))
            target.append(slice(first, first + length))
        if mask[tuple(source)].any():
            raise ValueError(
                f"tile {t}'s output is masked (don't-care) where the whole output needs it: "
                "these outputs come from another kernel"
            )
        values[tuple(target)] = data[tuple(source)]
        known[tuple(target)] = True
    if next(outputs, None) is not None:
        raise ValueError(f"stitch got more tile outputs than the plan's {plan.count}")
    return _masked(values % PLAINTEXT_MODULUS, ~known)


def _parts(out: object) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """A decoded output's values and don't-care mask (none masked for a plain array)."""
    data = np.asarray(out.data if isinstance(out, np.ma.MaskedArray) else out)
    mask = np.asarray(out.mask if isinstance(out, np.ma.MaskedArray) else False, dtype=bool)
    return data, np.broadcast_to(mask, data.shape)


def _masked(data: npt.NDArray[Any], mask: npt.NDArray[np.bool_]) -> MaskedOutput:
    # numpy's stubs leave the MaskedArray constructor untyped.
    return np.ma.masked_array(data, mask=mask)  # type: ignore[no-untyped-call]
