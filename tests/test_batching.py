"""Many independent instances in one ciphertext (porcupine.backend.batching, .instances).

The analysis is checked against windows derived by hand; the layout's claim (the kernel run
on a whole row of packed instances gives every instance its own output) by the exact
interpreter on a row of N/2 slots, which is OpenFHE's cyclic semantics within a row, for
the suite's kernels and for random programs; the emitted module's functions on the
cleartext backend (both rows) and once on OpenFHE.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import programs

from porcupine.backend.batching import (
    InstanceLayout,
    ciphertexts_needed,
    instance_constants,
    instance_layout,
    needed_positions,
)
from porcupine.backend.kernel_module import EmittedKernel, load_module
from porcupine.backend.openfhe_emit import emit_python
from porcupine.backend.options import EmitOptions
from porcupine.backend.planning import EmitPlan, io_layouts, plan
from porcupine.synthesize import synthesize
from quill.interp import Slots, interpret
from quill.ir import Program
from quill.ops import Opcode
from quill.params import by_name
from quill.parser import load_program, parse_program
from quill.slots import T
from quill.spec import Spec, load_spec

pytestmark = [pytest.mark.slow, pytest.mark.openfhe, pytest.mark.search]

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "kernels"

# A mask of period 2 after a negative rotation: the window starts left of the base.
SHIFTED_MASK = """
kernel shifted(x: ct) {
    m = const([0, 1])
    a = rot(x, -2)
    y = mul(a, m)
    return y
}
"""
# A rotation there and back: intermediate positions outside the input's window.
THERE_AND_BACK = """
kernel back(x: ct) {
    u = rot(x, 3)
    y = rot(u, -3)
    return y
}
"""


@functools.cache
def spec_of(name: str, **params: int) -> Spec:
    return load_spec(KERNELS / f"{name}.spec", params)


@functools.cache
def synthesized(name: str, **params: int) -> Program:
    """The synthesizer's kernel (fast ones only: each takes about a second)."""
    return synthesize(spec_of(name, **params), timeout=60).program


@functools.cache
def conv1d_natural() -> Program:
    """A kernel with masks (period 16) and EvalSum: the synthesizer lowers it directly."""
    return synthesize(load_spec(KERNELS / "layouts" / "conv1d_natural.spec"), timeout=60).program


def published(name: str) -> Program:
    return load_program(KERNELS / "published" / f"{name}.quill")


def layout_of(decided: EmitPlan, output_slots: tuple[int, ...]) -> InstanceLayout:
    layout = instance_layout(decided, output_slots)
    assert layout is not None
    return layout


def expected(
    decided: EmitPlan,
    window: tuple[int, int],
    span: tuple[int, int],
    stride: int,
    base: int,
    alignment: int,
    rows: int,
) -> InstanceLayout:
    """The layout for hand-derived window, span, stride, base and alignment at the plan's
    ring dimension: as many instances as fit with base + (m-1) * stride + Hi <= N/2."""
    row = decided.param_set.ring_dim // 2
    per_row = (row - span[1] - base) // stride + 1
    return InstanceLayout(stride, window, span, base, alignment, row, per_row, rows)


# --- the analysis, against hand-derived windows ------------------------------------------


def test_dot_product_sum_kernel() -> None:
    """dot_product n = 8 under the default objective: mul, then EvalSum(., 8) read in slot
    0: slots 0..7 of the product, so of a and b. No constant: both rows."""
    decided = plan(synthesized("dot_product", n=8), 8)
    assert [(i.opcode, i.amount) for i in decided.program.body if i.opcode is Opcode.SUM] == [
        (Opcode.SUM, 8)
    ]
    layout = layout_of(decided, (0,))
    assert layout == expected(decided, (0, 8), (0, 8), 8, 0, 1, 2)
    assert decided.param_set.ring_dim == 4096 and layout.per_ciphertext == 512


def test_published_dot_product_tree() -> None:
    """rot 4, 2, 1 from slot 0: {0}, {0, 1}, {0..3}, {0..7}: the same window."""
    decided = plan(published("dot_product"), 8)
    assert layout_of(decided, (0,)) == expected(decided, (0, 8), (0, 8), 8, 0, 1, 2)


def test_box_blur() -> None:
    """Output slots {0,1,2,4,5,6,8,9,10} plus offsets {0, 1, 4, 5}: slots 0..15."""
    spec = spec_of("box_blur")
    decided = plan(synthesized("box_blur"), 16)
    rotations = sorted(i.amount or 0 for i in decided.program.body if i.opcode is Opcode.ROT)
    assert rotations == [1, 4, 5]
    assert layout_of(decided, spec.output_slots()) == expected(
        decided, (0, 16), (0, 16), 16, 0, 1, 2
    )


def test_gx() -> None:
    """Output {5, 6, 9, 10}; c4 at those -1 and +1: {4..11}; c2 at that and -4: {0..11};
    x at that and +4: {0..15}. Intermediates stay inside."""
    decided = plan(published("gx"), 16)
    need = needed_positions(decided.program, (5, 6, 9, 10))
    assert need["c4"] == set(range(4, 12)) and need["c2"] == set(range(12))
    assert layout_of(decided, (5, 6, 9, 10)) == expected(decided, (0, 16), (0, 16), 16, 0, 1, 2)


def test_mask_and_sum_kernel() -> None:
    """conv1d_natural: h's taps picked by masks of period 16 and spread by EvalSum(., 16)
    read at output slots 0..13: h at 0..28, x at 0..15. Masks: stride 32, both rows."""
    spec = load_spec(KERNELS / "layouts" / "conv1d_natural.spec")
    decided = plan(conv1d_natural(), 16)
    assert any(i.opcode is Opcode.SUM for i in decided.program.body)
    assert spec.output_slots() == tuple(range(14))
    layout = layout_of(decided, spec.output_slots())
    assert layout == expected(decided, (0, 29), (0, 29), 32, 0, 16, 2)


def test_negative_offsets() -> None:
    """rot(x, -2): x at -2..5 for outputs 0..7; the mask has period 2, so every base is even:
    the first at 2."""
    decided = plan(parse_program(SHIFTED_MASK), 8)
    assert layout_of(decided, tuple(range(8))) == expected(decided, (-2, 6), (-2, 8), 8, 2, 2, 2)


def test_intermediate_span() -> None:
    """rot(rot(x, 3), -3): u at -3..4, x at 0..7: the window is x's, the span reaches -3."""
    decided = plan(parse_program(THERE_AND_BACK), 8)
    assert layout_of(decided, tuple(range(8))) == expected(decided, (0, 8), (-3, 8), 8, 3, 1, 2)


def test_not_applicable() -> None:
    """A client packing, and an instance wider than a row: None, and constants of zeros."""
    decided = plan(published("dot_product"), 8)
    assert instance_layout(decided, (0,), packed=True) is None
    wide = parse_program("kernel w(x: ct) {\n r = rot(x, 1)\n y = add(x, r)\n return y\n}")
    n2048 = by_name("n2048_q50_w10")
    full = plan(wide, 1024, EmitOptions(param_set=n2048))
    assert instance_layout(full) is None  # x at 0..1024: 1025 slots in a row of 1024
    one = layout_of(full, tuple(range(1023)))  # the last output unwanted: exactly a row
    assert (one.window, one.per_row, one.rows) == ((0, 1024), 1, 2)
    assert "INSTANCES_PER_CIPHERTEXT = 0" in instance_constants(None)
    assert ciphertexts_needed(None, 10) == 10 and ciphertexts_needed(one, 3) == 2


# --- the claim, on the exact interpreter over a row of N/2 slots ---------------------------


def row_inputs(
    program: Program, layout: InstanceLayout, vectors: list[dict[str, Slots]], slots: int
) -> dict[str, Slots]:
    """The first row of every input with ``vectors`` (one SLOTS-slot vector per input and
    instance) packed as the module docstring says, zeros elsewhere."""
    lo, hi = layout.window
    window = np.arange(lo, hi)
    rows: dict[str, Slots] = {
        p.name: np.zeros(layout.row_slots, dtype=np.int64) for p in program.params
    }
    for b, instance in enumerate(vectors):
        base = layout.base + b * layout.stride
        for name, vector in instance.items():
            rows[name][base + window] = vector[window % slots]
    return rows


def check_rows(
    program: Program, layout: InstanceLayout, slots: int, wanted: tuple[int, ...], seed: int
) -> list[int]:
    """The instances (of a full first row of random ones) whose output slots differ from
    the single instance's, run on its own SLOTS slots."""
    rng = np.random.default_rng(seed)
    vectors = [
        {p.name: rng.integers(0, T, slots, dtype=np.int64) for p in program.params}
        for _ in range(layout.per_row)
    ]
    out = interpret(program, row_inputs(program, layout, vectors, slots))
    wrong = []
    for b, instance in enumerate(vectors):
        single = interpret(program, instance)
        base = layout.base + b * layout.stride
        if any(out[base + s] != single[s] for s in wanted):
            wrong.append(b)
    return wrong


SUITE: dict[str, Any] = {
    "dot_product": lambda: (synthesized("dot_product", n=8), 8, (0,)),
    "box_blur": lambda: (synthesized("box_blur"), 16, spec_of("box_blur").output_slots()),
    "gx": lambda: (published("gx"), 16, spec_of("gx").output_slots()),
    "hamming_distance": lambda: (synthesized("hamming_distance"), 4, (0,)),
    "l2_distance": lambda: (published("l2_distance"), 4, (0,)),
    "shifted_mask": lambda: (parse_program(SHIFTED_MASK), 8, tuple(range(8))),
    "shifted_mask_slot_0": lambda: (parse_program(SHIFTED_MASK), 8, (0,)),
    "conv1d_natural": lambda: (conv1d_natural(), 16, tuple(range(14))),
    "there_and_back": lambda: (parse_program(THERE_AND_BACK), 8, tuple(range(8))),
}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SUITE)), seed=st.integers(0, 2**32 - 1))
def test_suite_rows_match_single_instances(name: str, seed: int) -> None:
    program, slots, wanted = SUITE[name]()
    decided = plan(program, slots)
    layout = layout_of(decided, wanted)
    assert check_rows(decided.program, layout, slots, wanted, seed) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    program=programs(slots=8),
    outputs=st.sets(st.integers(0, 7), min_size=1, max_size=3) | st.just(set(range(8))),
    seed=st.integers(0),
)
def test_random_programs_rows_match_single_instances(
    program: Program, outputs: set[int], seed: int
) -> None:
    """Any program (rotations by any amount, EvalSum of any window, masks, products) on 8
    slots, run in the smallest set's row of 1024. Few output slots make narrow windows,
    where a mask's alignment matters."""
    decided = plan(program, 8, EmitOptions(param_set=by_name("n2048_q50_w10")))
    wanted = tuple(sorted(outputs))
    layout = instance_layout(decided, wanted)
    assume(layout is not None)
    assert layout is not None
    assert check_rows(decided.program, layout, 8, wanted, seed) == []


def test_too_small_a_stride_mixes_instances() -> None:
    """The check above can fail: box blur with stride 15, one short of its window, gives
    instances their neighbour's pixels."""
    decided = plan(synthesized("box_blur"), 16)
    wanted = spec_of("box_blur").output_slots()
    layout = layout_of(decided, wanted)
    narrow = InstanceLayout(
        stride=15,
        window=layout.window,
        span=layout.span,
        base=0,
        alignment=1,
        row_slots=layout.row_slots,
        per_row=60,
        rows=1,
    )
    assert check_rows(decided.program, narrow, 16, wanted, seed=1)


# --- the emitted module's instance functions ---------------------------------------------


def batched_text(program: Program, spec: Spec, *, batched: bool = True) -> str:
    """``emit_python``'s module (its instance constants and section are the emitter's);
    ``batched=False``: with the constants of no batching put in place of its own."""
    text = emit_python(program, spec)
    if batched:
        return text
    layout = instance_layout(plan(program, spec.n), spec.output_slots())
    emitted = "\n".join(instance_constants(layout))
    assert emitted in text
    return text.replace(emitted, "\n".join(instance_constants(None)), 1)


def batched_module(program: Program, spec: Spec, path: Path, *, clear: bool) -> Any:
    """The module of :func:`batched_text`, written to ``path`` and loaded."""
    path.write_text(batched_text(program, spec))
    module: EmittedKernel = load_module(path, cleartext_backend=clear)
    return module


def ruff(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ruff with the project's configuration (as test_backend does)."""
    cmd = [sys.executable, "-m", "ruff", *map(str, args), "--config", str(ROOT / "pyproject.toml")]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def test_batched_modules_are_ruff_clean(tmp_path: Path) -> None:
    """The section and constants keep emitted modules ruff-clean and formatted, batched or
    not: the section uses only the runtime's imports."""
    conv = load_spec(KERNELS / "layouts" / "conv1d_natural.spec")
    texts = {
        "dot.py": batched_text(synthesized("dot_product", n=8), spec_of("dot_product", n=8)),
        "conv.py": batched_text(conv1d_natural(), conv),
        "unbatched.py": batched_text(published("gx"), spec_of("gx"), batched=False),
    }
    for file, text in texts.items():
        (tmp_path / file).write_text(text)
    check = ruff("check", tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = ruff("format", "--check", "--diff", tmp_path)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def batch(spec: Spec, count: int, seed: int) -> tuple[dict[str, Slots], Slots, npt.NDArray[Any]]:
    """``count`` random instances of ``spec``: inputs in natural shapes (count, *shape), the
    reference outputs (count, *output shape) and the output elements that matter."""
    layouts = io_layouts(spec)
    rng = np.random.default_rng(seed)
    instances = [spec.random_inputs(rng) for _ in range(count)]
    inputs = {io.name: np.array([x[io.name][io.slots] for x in instances]) for io in layouts.inputs}
    grid = layouts.output.slots
    cares = np.isin(grid, layouts.output_slots)
    references = [spec.reference(x) for x in instances]
    flat = [int(slot) for slot in grid.ravel()]
    outputs = np.array([[r.get(slot, 0) for slot in flat] for r in references], dtype=np.int64)
    return inputs, outputs.reshape(count, *grid.shape), cares


def run_batch(module: Any, inputs: dict[str, Slots], count: int) -> Any:
    cc, keys = module.make_context()
    outputs = [module.kernel(cc, **args) for args in module.encrypt_instances(cc, keys, **inputs)]
    assert len(outputs) == -(-count // module.INSTANCES_PER_CIPHERTEXT)
    return module.decrypt_instances(cc, keys, outputs, count)


@pytest.mark.parametrize(
    ("name", "rows"), [("box_blur", 2), ("hamming_distance", 2), ("conv1d_natural", 2)]
)
def test_module_batches_instances_cleartext(name: str, rows: int, tmp_path: Path) -> None:
    """More instances than one ciphertext holds, both rows where there is no mask, through
    the module's own functions on the cleartext backend (BFV's two rows, cyclic within
    each): every instance's output is the spec's."""
    if name == "conv1d_natural":
        spec, program = load_spec(KERNELS / "layouts" / "conv1d_natural.spec"), conv1d_natural()
    else:
        spec, program = spec_of(name), synthesized(name)
    module = batched_module(program, spec, tmp_path / f"{name}.py", clear=True)
    assert rows == module.INSTANCE_ROWS
    count = module.INSTANCES_PER_CIPHERTEXT + 3
    inputs, want, cares = batch(spec, count, seed=len(name))
    got = run_batch(module, inputs, count)
    assert got.shape == want.shape
    assert np.array_equal(got.mask, np.broadcast_to(~cares, want.shape))
    assert np.array_equal(got.filled(0), np.where(cares, want, 0))


def test_masks_fill_the_second_row_too(tmp_path: Path) -> None:
    """A kernel with masks uses both rows: the runtime tiles a mask across each row, so the
    instances in the second row meet the masks where they should, and come out right (with
    masks in the first row only they came out wrong)."""
    spec = load_spec(KERNELS / "layouts" / "conv1d_natural.spec")
    module = batched_module(conv1d_natural(), spec, tmp_path / "conv.py", clear=True)
    assert module.INSTANCE_ROWS == 2
    count = module.INSTANCES_PER_CIPHERTEXT
    inputs, want, cares = batch(spec, count, seed=3)
    got = run_batch(module, inputs, count).filled(0)
    assert all(np.array_equal(got[i], np.where(cares, want[i], 0)) for i in range(count))


def test_placeholder_constants_are_the_placeholder_kernels() -> None:
    """instances.py's placeholder constants are what the analysis gives the runtime's
    placeholder kernel, y = x + x on 8 slots at its parameter set."""
    from porcupine.backend import instances, runtime

    program = parse_program("kernel k(x: ct) {\n y = add(x, x)\n return y\n}")
    decided = plan(program, runtime.SLOTS, EmitOptions(param_set=by_name(runtime.PARAMETER_SET)))
    lines = instance_constants(instance_layout(decided, runtime.OUTPUT_SLOTS))
    values = dict(line.split(" = ") for line in lines if not line.startswith("#"))
    assert {k: eval(v) for k, v in values.items()} == {k: getattr(instances, k) for k in values}


def test_module_refuses_bad_batches(tmp_path: Path) -> None:
    """Clear errors: shape, range (bits), floats, mismatched counts, missing inputs, rows
    that do not fit the count, a module without batching."""
    spec = spec_of("hamming_distance")
    module = batched_module(synthesized("hamming_distance"), spec, tmp_path / "h.py", clear=True)
    good = np.zeros((3, 4), dtype=np.int64)
    cc, keys = module.make_context()
    with pytest.raises(ValueError, match=r"shape \(3, 5\).*\(instances, 4\)"):
        next(module.instance_rows("a", np.zeros((3, 5), dtype=np.int64)))
    with pytest.raises(ValueError, match=r"bits \(0 or 1\).*instance 2's element \(1,\) is 2"):
        module.instance_rows("a", np.array([[0] * 4, [1] * 4, [0, 2, 0, 0]]))
    with pytest.raises(ValueError, match="must hold integers"):
        module.instance_rows("a", good.astype(float))
    with pytest.raises(ValueError, match="same number of instances"):
        module.encrypt_instances(cc, keys, a=good, b=good[:2])
    with pytest.raises(TypeError, match="missing"):
        module.encrypt_instances(cc, keys, a=good)
    row = np.zeros(module.instance_row_slots(), dtype=np.int64)
    with pytest.raises(ValueError, match="fill 1 rows, got more"):
        module.instance_outputs([row, row], 3)
    with pytest.raises(ValueError, match="fill 1 rows, got 0"):
        module.instance_outputs([], 3)
    with pytest.raises(ValueError, match="row 0 has shape"):
        module.instance_outputs([row[:5]], 3)
    module.INSTANCES_PER_CIPHERTEXT = 0
    with pytest.raises(ValueError, match="without instance batching"):
        module.instance_rows("a", good)


def test_dot_product_instances_on_openfhe(tmp_path: Path) -> None:
    """1000 dot products of 8 in 2 ciphertexts (512 each: 256 per row, both rows), encrypted
    on OpenFHE: rows made by instance_rows, encrypted, run by evaluate, decrypted in full,
    unpacked by instance_outputs, equal to numpy's."""
    spec, program = spec_of("dot_product", n=8), synthesized("dot_product", n=8)
    module = batched_module(program, spec, tmp_path / "dot.py", clear=False)
    rng = np.random.default_rng(7)
    a = rng.integers(-(T // 2), T // 2, (1000, 8), dtype=np.int64)
    b = rng.integers(-(T // 2), T // 2, (1000, 8), dtype=np.int64)
    cc, keys = module.make_context()
    outputs = []
    for row_a, row_b in zip(
        module.instance_rows("a", a), module.instance_rows("b", b), strict=True
    ):
        ct = cc.Encrypt(keys.publicKey, module.encode_row(cc, row_a))
        out = module.evaluate(cc, a=ct, b=module.encode_row(cc, row_b))
        plaintext = cc.Decrypt(keys.secretKey, out)
        plaintext.SetLength(cc.GetRingDimension())
        outputs.append(np.array(plaintext.GetPackedValue(), dtype=np.int64) % T)
    assert len(outputs) == 2 and module.INSTANCES_PER_CIPHERTEXT == 512
    got = module.instance_outputs(outputs, 1000)
    want = np.array([int(x) % T for x in (a.astype(object) * b.astype(object)).sum(axis=1)])
    assert got.shape == (1000,) and not got.mask.any()
    assert np.array_equal(got.filled(0), want)
