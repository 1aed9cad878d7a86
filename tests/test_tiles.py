"""Tiling, the runtime's side: porcupine.backend.tiles cuts data of any size into the
kernel's inputs and stitches its outputs.

The section is tested as an emitted module runs it: its text below the marker, executed
after the constants ``tiling_constants`` writes for a spec and that spec's layouts. Tiles are
run through the spec's reference at the tile size (garbage at the don't-care slots) and
stitched; the result must be the spec's reference at the whole size, don't-care set
included.
"""

from __future__ import annotations

import functools
import os
import sys
import types
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before openfhe loads (see test_backend.py)

import numpy as np
import numpy.typing as npt
import pytest
from helpers import RANGED, spec_at, tiling_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from porcupine.backend import sections, tiles
from porcupine.backend.planning import io_layouts
from porcupine.backend.tiling import Tiling, derive_tiling, tiling_constants
from quill.slots import T
from quill.spec import Spec, parse_spec

pytestmark = pytest.mark.slow  # Hypothesis properties over every stencil spec

# --- the runtime section, as an emitted module runs it -----------------------------------

TILES = sections.section("tiles.py", sections.TILES_BEGIN)
"""The tiles section as every emitted module has it: its code, and the imports it needs."""

HEAD = "\n".join(
    [
        "from __future__ import annotations",
        *TILES.imports,
        "from porcupine.backend.runtime import _integers",
    ]
)


def tiles_module(spec: Spec, tiling: Tiling | None = None, **constants: Any) -> Any:
    """The tiles section run with ``spec``'s layouts (the kernel's size) and the constants
    ``tiling_constants`` writes for it (``constants`` override them)."""
    layouts = io_layouts(spec)
    module = types.ModuleType(f"tiles_{spec.name}_{len(sys.modules)}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(HEAD, module.__dict__)
    module.__dict__.update(
        PLAINTEXT_MODULUS=T,
        INPUTS={io.name: str(io.kind) for io in layouts.inputs},
        INPUT_LAYOUTS={io.name: io.slots for io in layouts.inputs},
        OUTPUT_LAYOUT=layouts.output.slots,
        OUTPUT_SLOTS=layouts.output_slots,
    )
    exec("\n".join(tiling_constants(tiling or derive_tiling(spec))), module.__dict__)
    module.__dict__.update(constants)
    exec(TILES.code, module.__dict__)
    return module


def slot_vector(spec: Spec, name: str, values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Input ``name`` given in its natural shape as ``spec``'s slot vector."""
    vec = np.zeros(spec.n, dtype=np.int64)
    vec[list(spec.input(name).layout.slots())] = np.asarray(values).ravel()
    return vec


def run_tile(spec: Spec, inputs: dict[str, npt.NDArray[np.int64]], rng: np.random.Generator) -> Any:
    """What decoding the kernel's output on one tile gives: the spec's reference at the
    output slots that matter, garbage elsewhere (masked)."""
    ref = spec.reference({k: slot_vector(spec, k, v) for k, v in inputs.items()})
    layout = spec.output.layout
    if layout.kind == "scalar":
        return ref[0]
    slots = np.array(layout.slots()).reshape(layout.shape)
    got = rng.integers(0, T, size=spec.n)
    for slot, value in ref.items():
        got[slot] = value
    return np.ma.masked_array(got[slots], mask=~np.isin(slots, spec.output_slots()))


STENCILS = {
    "box_blur": "image",
    "gx": "image",
    "gy": "image",
    "sobel": "image",
    "harris": "image",
    "blur3": "image",
    "conv2d": "image",
    "roberts_flat": "image",
    "sharpen": "image",
    "pad2": "image",
    "conv1d": "vector",
    "moving_sum5": "vector",
    "complex_norm": "vector",
    "pad1": "vector",
    "wide": "vector",
}


def tile_params(name: str, shape: tuple[int, ...]) -> tuple[tuple[str, int], ...]:
    return (("h", shape[0]), ("w", shape[1])) if STENCILS[name] == "image" else (("n", shape[0]),)


@functools.cache
def kernel_module(name: str) -> tuple[Spec, Any]:
    """The stencil at 8 (x 8) elements per tile, and its tiles module."""
    shape = (8, 8) if STENCILS[name] == "image" else (8,)
    spec = spec_at(name, tile_params(name, shape))
    return spec, tiles_module(spec, tiling_of(name))


def whole_shapes(name: str) -> st.SearchStrategy[tuple[int, ...]]:
    # Powers of two, so that the spec instantiates at the whole size; harris stays small.
    sizes = [16] if name == "harris" else [8, 16, 32]
    if STENCILS[name] == "image":
        return st.tuples(st.sampled_from(sizes), st.sampled_from(sizes))
    return st.tuples(st.sampled_from([16, 32, 64]))


# Every spec gets its own examples: Hypothesis draws from a list unevenly.
@pytest.mark.parametrize("name", sorted(STENCILS))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_stitched_stencil_tiles_are_the_spec_at_the_whole_size(
    name: str, data: st.DataObject
) -> None:
    shape = data.draw(whole_shapes(name), label="whole shape")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    tile_spec, module = kernel_module(name)
    whole = spec_at(name, tile_params(name, shape))
    slots = whole.random_inputs(rng)
    values = {
        d.name: slots[d.name][list(d.layout.slots())].reshape(d.layout.shape) for d in whole.inputs
    }
    plan = module.plan_tiles(shape)
    cut = {k: module.tile_inputs(plan, k, v) for k, v in values.items()}
    outputs = (
        run_tile(tile_spec, {k: next(cut[k]) for k in values}, rng) for _ in range(plan.count)
    )
    got = module.stitch(plan, outputs)
    assert all(next(it, None) is None for it in cut.values())  # one tile per output
    layout = whole.output.layout
    grid = np.array(layout.slots()).reshape(layout.shape)
    want = whole.reference({k: slot_vector(whole, k, v) for k, v in values.items()})
    assert got.shape == layout.shape
    assert np.array_equal(got.mask, ~np.isin(grid, whole.output_slots()))
    for index in zip(*np.nonzero(~got.mask), strict=True):
        assert got[index] == want[int(grid[index])] % T, (index, plan)


REDUCTIONS: dict[str, Callable[[list[int], list[int]], int]] = {
    "dot_product": lambda a, b: sum(x * y for x, y in zip(a, b, strict=True)),
    "hamming_distance": lambda a, b: sum(x ^ y for x, y in zip(a, b, strict=True)),
    "l2_distance": lambda a, b: sum((x - y) ** 2 for x, y in zip(a, b, strict=True)),
}


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(sorted(REDUCTIONS)),
    chunks=st.integers(0, 6),
    rest=st.integers(0, 7),
    seed=st.integers(0, 2**32 - 1),
    summed=st.booleans(),
)
def test_summed_chunks_are_the_reduction_of_the_whole_vector(
    name: str, chunks: int, rest: int, seed: int, summed: bool
) -> None:
    length = 8 * chunks + rest
    if length == 0:
        return
    spec = spec_at(name, (("n", 8),))
    module = tiles_module(spec, tiling_of(name))
    rng = np.random.default_rng(seed)
    high = 2 if name == "hamming_distance" else T
    a, b = (rng.integers(0, high, size=length) for _ in range(2))
    plan = module.plan_tiles((length,))
    assert plan.count == -(-length // 8)
    outputs = [
        run_tile(spec, {"a": x, "b": y}, rng)
        for x, y in zip(
            module.tile_inputs(plan, "a", a), module.tile_inputs(plan, "b", b), strict=True
        )
    ]
    if summed:  # what the server does: one ciphertext, the chunks' outputs added
        outputs = [sum(outputs) % T]
    assert module.stitch(plan, outputs) == REDUCTIONS[name](a.tolist(), b.tolist()) % T


# --- the placeholder kernel (y = x + x on 8 slots) and errors ---------------------------


def test_the_placeholder_section_tiles_an_elementwise_kernel() -> None:
    plan = tiles.plan_tiles((20,))
    assert plan == tiles.TilePlan((20,), (3,)) and plan.count == 3
    cut = list(tiles.tile_inputs(plan, "x", np.arange(20)))
    assert [c.tolist() for c in cut] == [
        list(range(8)),
        list(range(8, 16)),
        [16, 17, 18, 19, 0, 0, 0, 0],
    ]
    got = tiles.stitch(plan, [np.ma.masked_array(2 * c, mask=False) for c in cut])
    assert isinstance(got, np.ma.MaskedArray)
    assert got.tolist() == [2 * i for i in range(20)] and not got.mask.any()


def test_a_plan_goes_through_json_and_is_rederived() -> None:
    _, module = kernel_module("harris")
    plan = module.plan_tiles((40, 17))
    assert module.TilePlan.from_json(plan.to_json()) == plan
    bad = {**plan.to_json(), "tiles": [1, 1]}
    with pytest.raises(ValueError, match="different kernels"):
        module.TilePlan.from_json(bad)
    with pytest.raises(ValueError, match="for a reduction kernel"):
        module.TilePlan.from_json({**plan.to_json(), "kind": "reduction"})
    with pytest.raises(ValueError, match="list of integers"):
        module.TilePlan.from_json({**plan.to_json(), "shape": [40.0, 17]})


def test_a_range_without_zero_fills_the_halo_inside_it() -> None:
    spec = parse_spec(RANGED)
    module = tiles_module(spec, derive_tiling(spec))
    plan = module.plan_tiles((10,))  # outputs 0..8, 7 per tile
    cut = [t.tolist() for t in module.tile_inputs(plan, "x", np.arange(2, 12))]
    assert cut == [list(range(2, 10)), [9, 10, 11, 1, 1, 1, 1, 1]]


def test_data_too_small_for_the_margins_is_refused() -> None:
    _, module = kernel_module("gx")
    with pytest.raises(ValueError, match="2 elements along axis 0, too few"):
        module.plan_tiles((2, 10))
    assert module.plan_tiles((3, 3)).tiles == (1, 1)  # one output element


def test_a_kernel_too_small_for_its_halo_is_refused() -> None:
    spec = spec_at("moving_sum5", (("n", 16),))
    module = tiles_module(spec, tiling_of("moving_sum5"), TILE_READS=((8, 8),))
    with pytest.raises(ValueError, match="too few for its halo"):
        module.plan_tiles((100,))


def test_wrong_rank_and_empty_data_are_refused() -> None:
    _, module = kernel_module("box_blur")
    with pytest.raises(ValueError, match="has 1 axes, this kernel's inputs have 2"):
        module.plan_tiles((64,))
    with pytest.raises(ValueError, match="empty"):
        module.plan_tiles((0, 64))
    plan = module.plan_tiles((16, 16))
    with pytest.raises(ValueError, match="'x' is empty"):
        module.tile_inputs(plan, "x", np.zeros((0, 16), dtype=np.int64))
    with pytest.raises(ValueError, match="'x' has shape \\(16,\\)"):
        module.tile_inputs(plan, "x", np.zeros(16, dtype=np.int64))
    with pytest.raises(ValueError, match="'x' must hold integers"):
        module.tile_inputs(plan, "x", np.ones((16, 16)))
    with pytest.raises(KeyError, match="no input 'y'"):
        module.tile_inputs(plan, "y", np.ones((16, 16), dtype=np.int64))
    with pytest.raises(ValueError, match="empty"):
        tiles.plan_tiles((0,))


def test_a_fixed_kernel_takes_its_own_shape_only() -> None:
    spec = spec_at("matvec8")
    module = tiles_module(spec, tiling_of("matvec8"))
    with pytest.raises(ValueError, match=r"its own shape \(8, 8\) only"):
        module.plan_tiles((16, 16))
    m, v = np.ones((8, 8), dtype=np.int64), np.arange(8)
    plan = module.plan_inputs({"M": m, "v": v})
    assert plan.count == 1
    assert [t.tolist() for t in module.tile_inputs(plan, "v", v)] == [v.tolist()]
    with pytest.raises(ValueError, match="'v' has shape"):
        module.plan_inputs({"M": m, "v": np.arange(16)})
    out = np.ma.masked_array(np.arange(8), mask=False)
    assert module.stitch(plan, [out]).tolist() == out.tolist()


def test_inputs_of_different_shapes_are_refused() -> None:
    _, module = kernel_module("conv1d")
    shapes = {"x": np.zeros(20), "h0": np.zeros(20), "h1": np.zeros(20), "h2": np.zeros(21)}
    with pytest.raises(ValueError, match="one shape"):
        module.plan_inputs(shapes)
    with pytest.raises(ValueError, match="no input"):
        module.plan_inputs({"y": np.zeros(20)})


def test_stitch_refuses_missing_extra_and_misplaced_outputs() -> None:
    _, module = kernel_module("box_blur")
    plan = module.plan_tiles((16, 16))
    good = np.ma.masked_array(np.zeros((8, 8), dtype=np.int64), mask=False)
    with pytest.raises(ValueError, match="got 1 tile outputs, the plan has 9"):
        module.stitch(plan, [good])
    with pytest.raises(ValueError, match="more tile outputs"):
        module.stitch(plan, [good] * 10)
    with pytest.raises(ValueError, match="masked"):
        module.stitch(plan, [np.ma.masked_array(good.data, mask=True)] * 9)
    _, reduction = kernel_module_reduction()
    with pytest.raises(ValueError, match="one output"):
        reduction.stitch(reduction.plan_tiles((30,)), [1, 2])


def kernel_module_reduction() -> tuple[Spec, Any]:
    spec = spec_at("dot_product", (("n", 8),))
    return spec, tiles_module(spec, tiling_of("dot_product"))
