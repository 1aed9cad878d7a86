"""Application sizes: kernels synthesized small, lifted, and proven at the target size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from porcupine.backend import run_encrypted
from porcupine.staging.scale import LiftError, Offset2D, decompose, lift
from porcupine.synthesize import Options, Source, synthesize
from quill.cost import Objective
from quill.interp import interpret
from quill.parser import load_program, parse_program
from quill.spec import load_spec
from quill.stats import counts
from quill.verify import verify

KERNELS = Path(__file__).parent.parent / "kernels"


@pytest.mark.parametrize(
    ("amount", "expected"),
    [(1, Offset2D(0, 1)), (4, Offset2D(1, 0)), (5, Offset2D(1, 1)), (3, Offset2D(1, -1)),
     (-4, Offset2D(-1, 0)), (-5, Offset2D(-1, -1)), (-1, Offset2D(0, -1))],
)  # fmt: skip
def test_rotations_decompose_into_row_and_column_offsets(amount: int, expected: Offset2D) -> None:
    assert decompose(amount, 4, 16) == expected


def test_published_box_blur_lifts_to_64x64_and_is_proven_there() -> None:
    small = load_spec(KERNELS / "box_blur.spec")
    big = load_spec(KERNELS / "box_blur.spec", {"w": 64, "h": 64})
    lifted = lift(load_program(KERNELS / "published" / "box_blur.quill"), small, big)
    assert counts(lifted).rotation_keys == (1, 64)
    assert verify(lifted, big).ok


def test_dot_product_tree_grows_to_log2_n_rounds() -> None:
    small = load_spec(KERNELS / "dot_product.spec")
    big = load_spec(KERNELS / "dot_product.spec", {"n": 1024})
    lifted = lift(load_program(KERNELS / "published" / "dot_product.quill"), small, big)
    assert counts(lifted).rotations == 10
    assert sorted(counts(lifted).rotation_keys) == [1 << k for k in range(10)]
    assert verify(lifted, big).ok


def test_a_kernel_that_is_not_a_tree_is_not_lifted() -> None:
    small = load_spec(KERNELS / "dot_product.spec")
    big = load_spec(KERNELS / "dot_product.spec", {"n": 64})
    odd = parse_program(
        "kernel k(a: ct, b: pt) {\n p = mul(a, b)\n r = rot(p, 3)\n s = add(p, r)\n"
        " r2 = rot(s, 1)\n t = add(s, r2)\n r3 = rot(t, 4)\n u = add(t, r3)\n return u\n}\n"
    )
    with pytest.raises(LiftError, match="not a full rotate-and-add tree"):
        lift(odd, small, big)


@pytest.mark.slow
@pytest.mark.search
def test_synthesis_at_application_size_lifts_and_verifies() -> None:
    spec = load_spec(KERNELS / "gx.spec", {"w": 16, "h": 16})
    # The paper's objective proves the small instance in seconds; latency takes longer. At
    # 256 slots the lifted kernel meets the lower bound: no amounts of three rotations reach
    # the six offsets gx reads (bound_terms.sumset_cover), so its four are the fewest.
    result = synthesize(spec, timeout=120, options=Options(goal=Objective.INSTRUCTIONS))
    assert result.source is Source.LIFTED and result.verified and result.optimal
    assert result.optimal_scope.endswith("it meets the lower bound at 256 slots")
    assert counts(result.program).rotations == 4
    assert set(counts(result.program).rotation_keys) == {-16, -1, 1, 16}
    x = np.random.default_rng(1).integers(0, 65537, spec.n)
    got = interpret(result.program, {"x": x})
    assert {s: int(got[s]) for s in spec.output_slots()} == spec.reference({"x": x})


@pytest.mark.openfhe
@pytest.mark.search
def test_lifted_box_blur_runs_encrypted_at_64x64() -> None:
    spec = load_spec(KERNELS / "box_blur.spec", {"w": 64, "h": 64})
    result = synthesize(spec, timeout=120)
    run = run_encrypted(spec, program=result.program, reps=1, seed=3)
    assert run.ok, run.summary()
    assert run.ring_dim == 8192 and run.output_slots == 63 * 63
