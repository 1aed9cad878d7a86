"""The OpenFHE backend: emitted modules are ruff-clean and state the right keys and
parameters, and emitted kernels compute their spec under real OpenFHE encryption.

openfhe is a real dependency: these tests import it and never skip. Contexts are built once
per module (key generation dominates otherwise). Most properties are tested faster, and on
many more programs, on the cleartext backend (``test_backend_cleartext.py``); what is here
runs encrypted, so that every check also holds for real OpenFHE objects.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

# One OpenMP thread, as porcupine.backend sets it, but before this module imports openfhe
# (which fixes its thread count when it loads): on a loaded two-core machine two threads
# make OpenFHE calls many times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
from helpers import (
    DEAD,
    DEEPER,
    KERNELS,
    ROOT,
    Kernel,
    context_error,
    emittable,
    make_kernels,
    ruff,
)
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from strategies import programs

from porcupine.backend import (
    RESERVED_INPUT_NAMES,
    EmitOptions,
    ProgramSpec,
    Session,
    compare_latency,
    emit_python,
    emitted_module,
    plan,
    run_encrypted,
    write_atomically,
)
from quill.ir import Param, Program
from quill.noise import MARGIN_BITS, ct_ct_depth, parameters
from quill.ops import Kind
from quill.parser import load_program, parse_program
from quill.slots import T
from quill.stats import counts

# Its module-scoped fixtures are built once: its tests share one xdist worker.
pytestmark = pytest.mark.xdist_group("test_backend")

FEW = settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(0, 2**32 - 1)


@pytest.fixture(scope="module")
def kernels() -> dict[str, Kernel]:
    """The kernels of :func:`make_kernels`, encrypted."""
    return make_kernels()


NAMES = ["box_blur", "dot_product", "hamming_distance", "square_shift"]


# --- emission ------------------------------------------------------------------------------


@pytest.mark.openfhe
@pytest.mark.subprocess
def test_emitted_modules_are_ruff_clean(kernels: dict[str, Kernel], tmp_path: Path) -> None:
    odd = parse_program(
        "kernel odd(order: ct, cc_: pt) {\n  cc = mul(order, cc_)\n  np = rot(cc, 3)\n"
        "  lambda_ = rot(cc, -2)\n  if_ = add(np, lambda_)\n  return if_\n}\n"
    )
    emitted = {f"{name}.py": emit_python(k.program, k.spec) for name, k in kernels.items()}
    for name in ("box_blur", "dot_product"):
        spec, base = kernels[name].spec, load_program(KERNELS / "baselines" / f"{name}.quill")
        emitted[f"{name}_baseline.py"] = emit_python(base, spec)
        emitted[f"{name}_hoisted.py"] = emit_python(base, spec, EmitOptions(hoist=True))
    emitted["odd.py"] = emit_python(odd, ProgramSpec(odd, 64))
    emitted["dead.py"] = emit_python(DEAD, ProgramSpec(DEAD, 8), EmitOptions(hoist=True))
    emitted["not_set.py"] = emit_python(
        DEAD, ProgramSpec(DEAD, 8), EmitOptions(security="HEStd_NotSet")
    )
    v = "a_long_input_name_for_an_image_that_keeps_going"  # 48 characters
    long = parse_program(
        f"kernel long(l: ct, {v}: ct, {v}_pt: pt) {{\n  {v}_prod = mul({v}, {v}_pt)\n"
        f"  {v}_r = rot({v}_prod, 3)\n  {v}_s = rot({v}_prod, 5)\n"
        f"  {v}_sum = add({v}_r, {v}_s)\n  l_ = add({v}_sum, l)\n  return l_\n}}\n"
    )
    emitted["long.py"] = emit_python(long, ProgramSpec(long, 64), EmitOptions(hoist=True))
    for file, text in emitted.items():
        (tmp_path / file).write_text(text)
    check = ruff("check", tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = ruff("format", "--check", "--diff", tmp_path)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


@pytest.mark.slow
@pytest.mark.subprocess
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(programs(slots=64, max_instrs=8), min_size=15, max_size=15))
def test_random_programs_emit_ruff_clean_code(batch: list[Program]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for i, program in enumerate(p for p in batch if emittable(p, 64)):
            (Path(tmp) / f"k{i}.py").write_text(emit_python(program, ProgramSpec(program, 64)))
        check, fmt = ruff("check", tmp), ruff("format", "--check", "--diff", tmp)
    assert check.returncode == 0, check.stdout + check.stderr
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


@pytest.mark.parametrize("name", ["lambda", *sorted(RESERVED_INPUT_NAMES)])
def test_reserved_input_names_are_refused(name: str) -> None:
    program = Program("k", (Param(name, Kind.CT),), (), (), name)
    with pytest.raises(ValueError, match=f"input '{name}' cannot be a keyword argument"):
        emit_python(program, ProgramSpec(program, 8))


def test_unknown_security_levels_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown security level 'HEStd_64'; OpenFHE has"):
        emit_python(DEAD, ProgramSpec(DEAD, 8), EmitOptions(security="HEStd_64"))


@pytest.mark.openfhe
@pytest.mark.parametrize("name", NAMES)
def test_module_states_keys_and_parameters(kernels: dict[str, Kernel], name: str) -> None:
    k = kernels[name]
    m, params = k.module, parameters(k.program, k.spec.n)
    s = params.param_set
    assert counts(k.program).rotation_keys == m.ROTATION_INDICES
    assert (s.name, s.ring_dim, s.mult_depth, s.towers) == (
        m.PARAMETER_SET,
        m.RING_DIM,
        m.MULT_DEPTH,
        m.TOWERS,
    )
    assert m.NOISE_MARGIN_BITS == round(params.margin_bits, 1) >= MARGIN_BITS
    assert (T, k.spec.n, "HEStd_128_classic") == (m.PLAINTEXT_MODULUS, m.SLOTS, m.SECURITY)
    assert k.spec.output_slots() == m.OUTPUT_SLOTS
    assert {p.name: str(p.kind) for p in k.program.params} == m.INPUTS
    assert (counts(k.program).ct_ct_mults > 0) == m.CT_CT_MULT
    doc = m.__doc__ or ""
    assert f"kernel {k.program.name}(" in doc and f"parameter set {s.name}: N = {s.ring_dim}" in doc
    assert f"log2 Q = {s.log2_q:.0f}" in doc and f"{params.margin_bits:.1f} bits below" in doc


@pytest.mark.openfhe
def test_large_rotation_amounts_are_reduced_mod_n() -> None:
    # OpenFHE rotates correctly only by |k| < N/2; rot(x, 16 + 3) on 16 slots is rot(x, 3).
    program = parse_program("kernel big(x: ct) {\n  y = rot(x, 19)\n  return y\n}\n")
    spec = ProgramSpec(program, 16)
    assert plan(program, 16).rotation_indices == (3,)
    assert run_encrypted(spec, program=program, reps=0).ok


def test_dead_code_is_not_emitted() -> None:
    text = emit_python(DEAD, ProgramSpec(DEAD, 8), EmitOptions(hoist=True))
    assert "ROTATION_INDICES: tuple[int, ...] = ()" in text
    assert "# a is never used: not emitted" in text
    assert "_CONSTANT_VALUES: dict[str, tuple[int, ...]] = {}" in text
    kernel_code = text[text.index("def evaluate(") :]
    assert "_constants(" not in kernel_code and "GetCyclotomicOrder" not in kernel_code


@pytest.mark.openfhe
def test_emission_rejects_a_program_for_another_spec(kernels: dict[str, Kernel]) -> None:
    with pytest.raises(ValueError, match="spec's inputs"):
        emit_python(kernels["box_blur"].program, kernels["dot_product"].spec)


def test_write_atomically_leaves_nothing_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out" / "kernel.py"
    assert write_atomically(target, "x = 1\n").read_text() == "x = 1\n"

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, "x = 2\n")
    assert target.read_text() == "x = 1\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["kernel.py"]


# --- encrypted runs -------------------------------------------------------------------------


@pytest.mark.openfhe
@pytest.mark.parametrize("name", NAMES)
@FEW
@given(seed=seeds)
def test_encrypted_kernel_matches_spec(kernels: dict[str, Kernel], name: str, seed: int) -> None:
    k = kernels[name]
    inputs = k.spec.random_inputs(np.random.default_rng(seed))
    _, mismatches = k.session.check(k.module, k.spec, inputs)
    assert not mismatches
    args = k.session.arguments(k.module, inputs)
    assert k.session.depth_used(k.module, args) == ct_ct_depth(k.program)


@pytest.mark.openfhe
@FEW
@given(program=programs(slots=16, max_instrs=6), seed=seeds)
# Found by the property in CI: a sum over one slot, in a kernel with no rotation keys
# (OpenFHE's EvalSum looked up keys that were never made).
@example(program=parse_program("kernel k(x: ct) {\n    y = sum(x, 1)\n    return y\n}\n"), seed=0)
def test_random_programs_match_the_interpreter(program: Program, seed: int) -> None:
    """Any valid Quill program, emitted and run encrypted, equals quill.interp (many more
    programs run on the cleartext backend in test_backend_cleartext.py)."""
    assume(emittable(program))
    spec = ProgramSpec(program, 16)
    result = run_encrypted(spec, program=program, reps=0, seed=seed)
    assert result.ok, result.summary()
    assert result.ct_ct_depth_used == ct_ct_depth(program)


@pytest.mark.openfhe
def test_run_encrypted_from_an_emitted_file(kernels: dict[str, Kernel], tmp_path: Path) -> None:
    k = kernels["box_blur"]
    path = write_atomically(tmp_path / "box_blur.py", emit_python(k.program, k.spec))
    result = run_encrypted(k.spec, module_path=path, reps=3, seed=1)
    assert result.ok and not result.mismatches, result.summary()
    chosen = parameters(k.program, k.spec.n).param_set
    assert (result.parameter_set, result.ring_dim, result.ct_ct_depth_used) == (
        chosen.name,
        chosen.ring_dim,
        0,
    )
    assert result.kernel_ms > 0 and result.setup_s >= result.keygen_s > 0
    assert "correct on all 9 output slots" in result.summary()


@pytest.mark.openfhe
def test_ct_ct_kernel_runs_at_the_depth_the_noise_model_picks(kernels: dict[str, Kernel]) -> None:
    k = kernels["square_shift"]
    result = run_encrypted(k.spec, program=k.program, reps=1)
    assert result.ok, result.summary()
    assert result.mult_depth == parameters(k.program, k.spec.n).mult_depth
    assert result.ct_ct_depth_used == 1
    text = emit_python(k.program, k.spec)
    assert "EvalMultNoRelin(x, x)" in text and "Relinearize(" in text


@pytest.mark.openfhe
def test_depth_used_follows_the_data_flow_not_the_degrees() -> None:
    spec = ProgramSpec(DEEPER, 8)
    module = emitted_module(DEEPER, spec)
    session = Session([module])
    args = session.arguments(module, spec.random_inputs(np.random.default_rng(0)))
    out, _ = session.run(module, args)
    assert out.GetNoiseScaleDeg() - 1 == 0  # what the runner used to report
    assert session.depth_used(module, args) == 2 == ct_ct_depth(DEEPER)
    result = run_encrypted(spec, program=DEEPER, reps=0)
    assert result.ok and result.ct_ct_depth_used == 2, result.summary()


@pytest.mark.openfhe
def test_hoisted_and_plain_rotations_decrypt_identically(kernels: dict[str, Kernel]) -> None:
    spec = kernels["box_blur"].spec
    baseline = load_program(KERNELS / "baselines" / "box_blur.quill")  # x rotated by 1, 4, 5
    texts = {
        hoist: emit_python(baseline, spec, EmitOptions(hoist=hoist)) for hoist in (True, False)
    }
    assert "EvalFastRotation(x, 5" in texts[True] and "EvalFastRotation(" not in texts[False]
    modules = [emitted_module(baseline, spec, EmitOptions(hoist=hoist)) for hoist in (True, False)]
    session = Session(modules)
    inputs = spec.random_inputs(np.random.default_rng(7))
    args = session.arguments(modules[0], inputs)
    hoisted, plain = (session.decrypt(m, session.run(m, args)[0]) for m in modules)
    assert np.array_equal(hoisted, plain)  # every slot, not only the ones that matter


@pytest.mark.openfhe
def test_compare_latency_times_each_program(kernels: dict[str, Kernel]) -> None:
    spec = kernels["box_blur"].spec
    pair = [kernels["box_blur"].program, load_program(KERNELS / "baselines" / "box_blur.quill")]
    medians = compare_latency(pair, spec, reps=3)
    assert len(medians) == 2 and all(m > 0 for m in medians)


# --- the emitted module's API on real OpenFHE objects (more in test_backend_module.py) --------


@pytest.mark.openfhe
def test_decode_gives_natural_shapes(kernels: dict[str, Kernel]) -> None:
    blur = kernels["box_blur"]
    m, cc, keys = blur.module, blur.session.cc, blur.session.keys
    image = np.arange(16).reshape(4, 4) * 1000
    out = m.decode(cc, keys, m.kernel(cc, x=m.encrypt(cc, keys, "x", image)))
    want = image[:-1, :-1] + image[:-1, 1:] + image[1:, :-1] + image[1:, 1:]
    assert out.shape == (4, 4) and out.mask[3].all() and out.mask[:, 3].all()
    assert np.array_equal(out[:3, :3].filled(-1), want % T)

    dot = kernels["dot_product"]
    m, cc, keys = dot.module, dot.session.cc, dot.session.keys
    a, b = np.arange(8) - 4, np.arange(8) * 9000
    s = m.decode(cc, keys, m.kernel(cc, a=m.encrypt(cc, keys, "a", a), b=m.encode(cc, "b", b)))
    assert s == int(np.dot(a, b)) % T


@pytest.mark.openfhe
def test_missing_keys_are_named(kernels: dict[str, Kernel]) -> None:
    blur = kernels["box_blur"]
    m = blur.module
    cc = m.new_context()
    keys = m.generate_keys(cc, rotation_indices=(1,))  # the kernel also rotates by 4
    x = m.encrypt(cc, keys, "x", np.ones((4, 4), dtype=int))
    context_error(lambda: m.kernel(cc, x=x), r"no rotation key for index 4 .*EvalRotateKeyGen")

    sq = kernels["square_shift"].module
    cc = sq.new_context()
    keys = sq.generate_keys(cc, ct_ct_mult=False)
    x = sq.encrypt(cc, keys, "x", np.ones(8, dtype=int))
    context_error(lambda: sq.kernel(cc, x=x), "no relinearization key.*EvalMultKeyGen")


@pytest.mark.openfhe
def test_blur_image_example(kernels: dict[str, Kernel], tmp_path: Path) -> None:
    k = kernels["box_blur"]
    kernel_path = write_atomically(tmp_path / "box_blur.py", emit_python(k.program, k.spec))
    spec = importlib.util.spec_from_file_location("blur_image", ROOT / "examples" / "blur_image.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main([str(kernel_path)]) == 0
    assert example.main([str(tmp_path / "missing.py")]) == 2
