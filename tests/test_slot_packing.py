"""Products packed into spare slots (porcupine.layouts.spare_slots): the padded packing is the
spec, a packed kernel is proven equal to it and decrypts right, and the pass merges only
what it may."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from porcupine.backend import load_module
from porcupine.budget import Budget
from porcupine.cli import main
from porcupine.layouts.choices import padded
from porcupine.layouts.packing import check
from porcupine.layouts.spare_slots import PackedProducts, packed_products
from porcupine.options import Options
from porcupine.outcomes import Pass
from porcupine.synthesize import synthesize
from quill.cost import program_cost
from quill.noise import parameters
from quill.parser import load_program, parse_program
from quill.spec import load_spec, parse_spec
from quill.stats import counts
from quill.verify import verify

KERNELS = Path(__file__).parent.parent / "kernels"


def _packed(name: str) -> PackedProducts | None:
    """The pass on the hand-written baseline of paper kernel ``name``."""
    spec = load_spec(KERNELS / f"{name}.spec")
    program = load_program(KERNELS / "baselines" / f"{name}.quill")
    return packed_products(program, spec, Options(), Budget.seconds(120))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sobel", "harris", "dot_product"])
@pytest.mark.parametrize("factor", [2, 8])
def test_a_padded_packing_is_the_spec(name: str, factor: int) -> None:
    spec = load_spec(KERNELS / f"{name}.spec")
    packing = padded(spec, factor)
    assert packing is not None and packing.slots == factor * spec.n
    assert check(packing, spec)
    for c in packing.ciphertexts:  # no element moves; the spare slots hold 0
        size = spec.input(c.name).layout.size
        assert c.slots[:size] == tuple((c.name, s) for s in range(size))
        assert set(c.slots[size:]) == {None}


@pytest.mark.slow
def test_padding_never_exceeds_a_row() -> None:
    spec = load_spec(KERNELS / "harris.spec", {"w": 64, "h": 64})
    assert padded(spec, 4) is None  # 16384 slots: more than the largest set's row
    assert padded(spec, 1) is None


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sobel", "roberts_cross", "harris"])
def test_independent_products_share_one_multiply(name: str) -> None:
    spec = load_spec(KERNELS / f"{name}.spec")
    baseline = load_program(KERNELS / "baselines" / f"{name}.quill")
    found = _packed(name)
    assert found is not None
    before, after = found.products
    assert before == counts(baseline).ct_ct_mults and after < before
    assert counts(found.program).ct_ct_mults == after
    assert verify(found.program, found.packing.spec).ok and check(found.packing, spec)
    n = found.packing.slots
    ours = program_cost(found.program, parameters(found.program, n).param_set)
    theirs = program_cost(baseline, parameters(baseline, spec.n).param_set)
    assert ours < theirs


def test_products_of_products_are_not_merged() -> None:
    # y = (x * x) * x: the second product reads the first; nothing can share a multiply.
    spec = parse_spec("spec cube\nslots 4\ninput x: ct vector(4)\noutput y[i]: vector(4) = x[i]^3")
    program = parse_program(
        "kernel cube(x: ct) {\n    s = mul(x, x)\n    c = mul(s, x)\n    return c\n}"
    )
    assert verify(program, spec).ok
    assert packed_products(program, spec, Options(), Budget.seconds(30)) is None


def test_a_kernel_that_needs_the_tiling_is_left_alone() -> None:
    # rot(b, -3) is rot(b, 1) only on 4 tiled slots: zero padded, it reads the padding.
    spec = parse_spec(
        "spec wrap\nslots 4\ninput a: ct vector(4)\ninput b: ct vector(4)\n"
        "output y[i]: vector(4) = a[i] * a[i] + b[i + 1] * b[i + 1] where 0 <= i < 3"
    )
    program = parse_program(
        "kernel wrap(a: ct, b: ct) {\n    p = mul(a, a)\n    r = rot(b, -3)\n"
        "    q = mul(r, r)\n    y = add(p, q)\n    return y\n}"
    )
    assert verify(program, spec).ok
    assert packed_products(program, spec, Options(), Budget.seconds(30)) is None


def test_the_pass_proves_what_it_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    import porcupine.layouts.spare_slots as pass_module

    class Refuted:
        ok = False

    monkeypatch.setattr(pass_module, "verify", lambda *_: Refuted())
    assert _packed("sobel") is None  # sampled right, not proven: not returned


@pytest.mark.search
def test_synthesize_padded_reports_the_packing_and_no_optimality() -> None:
    spec = load_spec(KERNELS / "corpus" / "det2.spec")
    natural = synthesize(spec, timeout=60)
    result = synthesize(spec, timeout=60, layout="padded")
    if result.packing is None:  # the spare slots did not pay: the natural kernel
        assert result.program == natural.program
        return
    assert result.packing.name.startswith("padded")
    packed = result.passes[-1]  # the last pass: products packed into the spare slots
    assert not result.optimal and packed.name is Pass.SLOT_PACKING
    assert packed.after.ct_ct_mults < packed.before.ct_ct_mults
    assert result.cost < natural.cost
    assert verify(result.program, result.packing.spec).ok


@pytest.mark.openfhe
@pytest.mark.parametrize("seed", [0, 1])
def test_a_packed_kernel_decrypts_to_the_spec(seed: int) -> None:
    from porcupine.backend.openfhe_run import run_encrypted
    from porcupine.backend.options import EmitOptions

    spec = load_spec(KERNELS / "roberts_cross.spec")
    found = _packed("roberts_cross")
    assert found is not None
    rng = np.random.default_rng(seed)
    inputs = spec.random_inputs(rng)
    got = run_encrypted(
        spec,
        program=found.program,
        inputs=inputs,
        reps=1,
        options=EmitOptions(packing=found.packing),
    )
    assert got.ok, got.mismatches


@pytest.mark.slow
@pytest.mark.openfhe
@pytest.mark.search
def test_cli_synth_padded_emit_python_then_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = str(KERNELS / "corpus" / "energy3.spec")  # x^2 + y^2 + z^2: spare slots pay
    target = tmp_path / "energy3.py"
    argv = ["synth", spec, "--layout", "padded", "--emit", "python", "-o", str(target)]
    assert main([*argv, "--quiet", "--timeout", "60"]) == 0
    assert 'PACKING = "padded x' in target.read_text()
    assert main(["run", spec, "--kernel", str(target), "--reps", "1"]) == 0
    assert "correct on all 8 output slots that matter" in capsys.readouterr().out
    assert load_module(target, cleartext_backend=True).SLOTS > 8  # the padded ciphertexts'


@pytest.mark.slow
@pytest.mark.openfhe
@pytest.mark.search
def test_a_padded_kernel_saved_as_quill_is_checked_emitted_and_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A .quill file records only the program: the padding is found again, by proof.
    spec = str(KERNELS / "corpus" / "energy3.spec")
    quill = tmp_path / "energy3.quill"
    argv = ["synth", spec, "--layout", "padded", "-o", str(quill), "--quiet"]
    assert main([*argv, "--timeout", "60"]) == 0
    assert main(["check", str(quill), "--spec", spec]) == 0
    assert "under the client packing padded x" in capsys.readouterr().out
    module = tmp_path / "energy3.py"
    assert main(["emit", str(quill), "--spec", spec, "-o", str(module)]) == 0
    assert main(["run", spec, "--kernel", str(module), "--reps", "1"]) == 0
    assert "correct on all 8 output slots that matter" in capsys.readouterr().out
    # A wrong natural kernel is still reported as wrong, with a counterexample.
    wrong = tmp_path / "wrong.quill"
    wrong.write_text(quill.read_text().replace("sub(", "add(", 1))
    assert main(["check", str(wrong), "--spec", spec]) == 1
    assert "differs from energy3 at slot" in capsys.readouterr().err


def test_past_the_budget_no_merge_is_kept() -> None:
    # Ctrl-C (a cancelled budget) or the deadline during the pass: the caller keeps the
    # natural kernel, already proven, rather than wait for a proof it has no time for.
    spec = load_spec(KERNELS / "sobel.spec")
    program = load_program(KERNELS / "baselines" / "sobel.quill")
    budget = Budget.seconds(None)
    budget.cancel()
    assert packed_products(program, spec, Options(), budget) is None
