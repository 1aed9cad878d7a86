"""Kernels synthesized under a client packing, emitted and run: the module takes the spec's
inputs by name and natural shape, gathers the packed ciphertexts itself, and decodes the
spec's output; every run is checked against the ORIGINAL spec's reference, encrypted on
OpenFHE and on the cleartext backend. Also the CLI round trips (synth --layout search, emit
finding the packing of a Quill file, run --kernel) and a natural kernel with masks."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before openfhe loads (see test_backend.py)

import numpy as np
import pytest
from helpers import emitted_imports, imports_of, ruff

from porcupine.backend import (
    EmitOptions,
    emit_python,
    emitted_module,
    load_module,
    run_cleartext,
    run_encrypted,
    write_atomically,
)
from porcupine.backend.planning import io_layouts
from porcupine.cli import main
from porcupine.layouts.choices import aligned, requested
from porcupine.layouts.packing import Packing, check
from porcupine.lowering import lower
from porcupine.synthesize import synthesize
from quill.ir import Program
from quill.parser import parse_program
from quill.printer import format_program
from quill.slots import T
from quill.spec import Spec, load_spec, parse_spec
from quill.verify import verify

# Its module-scoped fixtures are built once: its tests share one xdist worker.
pytestmark = pytest.mark.xdist_group("test_backend_layouts")

ROOT = Path(__file__).resolve().parent.parent
LAYOUTS = ROOT / "kernels" / "layouts"
SPECS = sorted(LAYOUTS.glob("*.spec"))
MATMUL2 = str(LAYOUTS / "matmul2.spec")

# matvec8's aligned (terms major) kernel, the product and a reduction tree over the 8 terms
# (term t of output o in slot 8t + o): Z3 needs a minute to prove it optimal, so it is
# written here and proven equal to the packing's spec in the fixture instead.
MATVEC8_TREE = parse_program(
    "kernel matvec8(M__0: ct, v__0: ct) {\n  t = mul(M__0, v__0)\n  r1 = rot(t, 32)\n"
    "  s1 = add(t, r1)\n  r2 = rot(s1, 16)\n  s2 = add(s1, r2)\n  r3 = rot(s2, 8)\n"
    "  s3 = add(s2, r3)\n  return s3\n}\n"
)

# A plaintext input beside two ciphertext inputs packed into one ciphertext.
PACKED_WITH = """spec packed_with
param n = 8
slots n
input a: ct vector(4)
input b: ct vector(4) packing with a
input c: pt vector(8)
output y[k]: vector(n) = a[k] * b[k] + c[k] where k < 4
"""

# The 3-tap convolution with its taps broadcast, and its kernel: synthesis proves it optimal
# only after 30 s or so, so it is written here and proven in the fixture.
BROADCAST = (
    (LAYOUTS / "conv1d_natural.spec")
    .read_text()
    .replace("input h: ct vector(3)", "input h: ct vector(3) packing broadcast")
)
BROADCAST_KERNEL = parse_program(
    "kernel conv(x: ct, h__0: ct, h__1: ct, h__2: ct) {\n  x1 = rot(x, 1)\n  x2 = rot(x, 2)\n"
    "  a = mul(h__0, x)\n  b = mul(h__1, x1)\n  c = mul(h__2, x2)\n  s = add(a, b)\n"
    "  y = add(s, c)\n  return y\n}\n"
)


@dataclass(frozen=True)
class Packed:
    """A kernel for ``packing.spec``, proven equal to it; ``packing`` proven equal to
    ``spec``."""

    spec: Spec
    packing: Packing
    program: Program


def _packed(spec: Spec, packing: Packing | None, program: Program | None = None) -> Packed:
    assert packing is not None and check(packing, spec)
    if program is None:
        program = synthesize(packing.spec, timeout=60).program
    assert verify(program, packing.spec).ok
    return Packed(spec, packing, program)


@pytest.fixture(scope="module")
def kernels() -> dict[str, Packed]:
    """Every layout kernel under its aligned (terms major) packing; matmul2 and pairwise4
    also as ``synthesize(layout="search")`` gives them, and the packing clauses ``with``
    (with a plaintext input) and ``broadcast``."""
    out: dict[str, Packed] = {}
    for path in SPECS:
        spec = load_spec(path)
        tree = MATVEC8_TREE if spec.name == "matvec8" else None
        out[spec.name] = _packed(spec, aligned(spec, terms_major=True), tree)
    for name in ("matmul2", "pairwise4"):
        spec = load_spec(LAYOUTS / f"{name}.spec")
        result = synthesize(spec, layout="search", timeout=30)
        out[f"{name}_search"] = _packed(spec, result.packing, result.program)
    with_spec = parse_spec(PACKED_WITH)
    result = synthesize(with_spec, timeout=30)
    out["packed_with"] = _packed(with_spec, result.packing, result.program)
    broadcast = parse_spec(BROADCAST)
    out["broadcast"] = _packed(broadcast, requested(broadcast), BROADCAST_KERNEL)
    return out


@pytest.mark.slow
@pytest.mark.search
def test_the_kernels_are_packed(kernels: dict[str, Packed]) -> None:
    assert {k.packing.name for k in kernels.values()} >= {
        "aligned (terms major)",
        "aligned",
        "packed a",
        "broadcast h",
    }
    for k in kernels.values():
        params = {p.name for p in k.program.params}
        assert params == {c.name for c in k.packing.ciphertexts}
        assert params != {d.name for d in k.spec.inputs}  # not the spec's own inputs


@pytest.mark.slow
@pytest.mark.openfhe
@pytest.mark.search
@pytest.mark.parametrize("seed", [0, 1])
def test_packed_kernels_decrypt_to_the_original_spec(kernels: dict[str, Packed], seed: int) -> None:
    for name, k in kernels.items():
        how = EmitOptions(packing=k.packing)
        encrypted = run_encrypted(k.spec, program=k.program, seed=seed, reps=1, options=how)
        assert encrypted.ok, (name, encrypted.summary())
        assert encrypted.output_slots == len(k.spec.output_slots())
        clear = run_cleartext(k.spec, program=k.program, seed=seed, options=how)
        assert clear.ok, (name, clear.summary())


def _natural(spec: Spec, slot_inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs in their natural shapes, as an application holds them."""
    return {io.name: slot_inputs[io.name][io.slots] for io in io_layouts(spec).inputs}


@pytest.mark.openfhe
@pytest.mark.search
@pytest.mark.parametrize("cleartext", [False, True], ids=["openfhe", "cleartext"])
def test_the_application_sees_only_the_specs_inputs_and_output(
    kernels: dict[str, Packed], cleartext: bool
) -> None:
    rng = np.random.default_rng(7)
    for name, k in kernels.items():
        module: Any = emitted_module(
            k.program, k.spec, EmitOptions(packing=k.packing), cleartext_backend=cleartext
        )
        assert set(module.INPUTS) == {d.name for d in k.spec.inputs}
        assert set(module.CIPHERTEXTS) == {p.name for p in k.program.params}
        cc, keys = module.make_context()
        slot_inputs = k.spec.random_inputs(rng)
        args = module.encrypt(cc, keys, **_natural(k.spec, slot_inputs))
        assert set(args) == set(module.CIPHERTEXTS)
        out = module.decode(cc, keys, module.kernel(cc, **args))
        output = io_layouts(k.spec).output
        assert out.shape == output.shape, name
        want = k.spec.reference(slot_inputs)
        flat = [want.get(int(s), 0) % T for s in output.slots.ravel()]
        expected = np.array(flat, dtype=np.int64).reshape(output.shape)
        matters = np.isin(output.slots, k.spec.output_slots())
        assert np.array_equal(~out.mask, matters), name
        assert np.array_equal(out.filled(0)[matters], expected[matters]), name


@pytest.mark.subprocess
@pytest.mark.search
def test_packed_modules_are_standalone_and_ruff_clean(
    kernels: dict[str, Packed], tmp_path: Path
) -> None:
    for name, k in kernels.items():
        text = emit_python(k.program, k.spec, EmitOptions(packing=k.packing))
        assert imports_of(text) == emitted_imports()  # openfhe, numpy, the standard library
        assert "GATHER" in text and "def gather(" in text
        (tmp_path / f"{name}.py").write_text(text)
    checked = ruff("check", tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    formatted = ruff("format", "--check", "--diff", tmp_path)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


@pytest.mark.search
def test_packed_modules_refuse_what_does_not_fit(kernels: dict[str, Packed]) -> None:
    k = kernels["matmul2"]
    module: Any = emitted_module(
        k.program, k.spec, EmitOptions(packing=k.packing), cleartext_backend=True
    )
    cc, keys = module.make_context()
    a = np.arange(4).reshape(2, 2)
    with pytest.raises(TypeError, match="missing input 'B'"):
        module.encrypt(cc, keys, A=a)
    with pytest.raises(KeyError, match="no input 'C'"):
        module.encrypt(cc, keys, A=a, B=a, C=a)
    with pytest.raises(ValueError, match=r"has shape \(4,\), expected \(2, 2\)"):
        module.encrypt(cc, keys, A=a, B=np.arange(4))
    plain = module.encode(cc, A=a, B=a)
    with pytest.raises(TypeError, match="must be a ciphertext"):
        module.kernel(cc, **plain)
    other = kernels["pairwise4"]
    with pytest.raises(ValueError, match="takes"):
        emit_python(k.program, k.spec, EmitOptions(packing=other.packing))


@pytest.mark.openfhe
@pytest.mark.parametrize("name", ["conv1d_natural", "matmul2"])
def test_a_natural_kernel_with_masks_runs_encrypted(name: str) -> None:
    spec = load_spec(LAYOUTS / f"{name}.spec")
    program = lower(spec)
    assert program is not None and program.consts  # the masks are plaintext constants
    assert verify(program, spec).ok
    assert run_encrypted(spec, program=program, reps=1).ok
    assert run_cleartext(spec, program=program).ok


# --- the command line ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.openfhe
@pytest.mark.search
def test_cli_synth_search_emit_python_then_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "matmul2.py"
    argv = ["synth", MATMUL2, "--layout", "search", "--emit", "python", "-o", str(target)]
    assert main([*argv, "--quiet", "--timeout", "60"]) == 0
    assert 'PACKING = "aligned' in target.read_text()
    assert main(["run", MATMUL2, "--kernel", str(target), "--reps", "1"]) == 0
    assert "correct on all 4 output slots that matter" in capsys.readouterr().out
    assert load_module(target, cleartext_backend=True).SLOTS == 8  # the packed ciphertexts'


@pytest.mark.openfhe
@pytest.mark.search
def test_cli_emit_finds_the_packing_a_quill_kernel_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Terms major and terms minor both make A__0 and B__0: only verification tells them
    # apart, and the module must gather for the one the kernel is proven for.
    spec = load_spec(MATMUL2)
    minor = aligned(spec, terms_major=False)
    assert minor is not None
    program = synthesize(minor.spec, timeout=60).program
    quill = write_atomically(tmp_path / "minor.quill", format_program(program))
    module = tmp_path / "minor.py"
    assert main(["emit", str(quill), "--spec", MATMUL2, "-o", str(module)]) == 0
    assert 'PACKING = "aligned (terms minor)"' in module.read_text()
    assert main(["run", MATMUL2, "--kernel", str(module), "--reps", "1"]) == 0
    assert main(["run", MATMUL2, "--program", str(quill), "--reps", "1"]) == 0
    assert main(["check", str(quill), "--spec", MATMUL2]) == 0
    out = capsys.readouterr()
    assert out.out.count("correct on all 4 output slots that matter") == 2
    assert "under the client packing aligned (terms minor)" in out.out
    # Another spec's kernel, and a module for another spec: bad input, exit 2.
    pairwise = str(LAYOUTS / "pairwise4.spec")
    assert main(["emit", str(quill), "--spec", pairwise, "-o", str(tmp_path / "x.py")]) == 2
    assert "nor are they the ciphertexts of a packing" in capsys.readouterr().err
    assert not (tmp_path / "x.py").exists()
    assert main(["run", pairwise, "--kernel", str(module)]) == 2
    assert "was not emitted for spec pairwise4" in capsys.readouterr().err


@pytest.mark.openfhe
@pytest.mark.search
def test_a_wrong_output_map_is_caught_against_the_original_spec(
    kernels: dict[str, Packed],
) -> None:
    # The check is real: read the output from the wrong slots and the run says so.
    k = kernels["matmul2"]
    output = tuple((o, (slot + 1) % k.packing.slots) for o, slot in k.packing.output)
    wrong = dataclasses.replace(k.packing, output=output)
    assert not run_encrypted(
        k.spec, program=k.program, reps=0, options=EmitOptions(packing=wrong)
    ).ok
    assert not run_cleartext(k.spec, program=k.program, options=EmitOptions(packing=wrong)).ok
