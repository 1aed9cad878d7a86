"""The fewer-products pass (porcupine.passes.fewer_products): on the paper's kernels, on random
programs (the rewrite computes the same slots), and through synthesize."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import Writer

from porcupine.outcomes import Pass
from porcupine.passes.fewer_products import fewer_products
from porcupine.synthesize import Options, synthesize
from quill.cost import DEFAULT_TABLE, Objective, objective
from quill.interp import interpret
from quill.ir import Instr, Param, Program
from quill.noise import parameters
from quill.ops import Kind, Opcode
from quill.parser import load_program, parse_program
from quill.slots import T
from quill.spec import load_spec
from quill.stats import counts
from quill.verify import verify

KERNELS = Path(__file__).parent.parent / "kernels"


def _pass(
    name: str, kind: str, goal: Objective = Objective.LATENCY
) -> tuple[Program, Program | None]:
    spec = load_spec(KERNELS / f"{name}.spec")
    program = load_program(KERNELS / kind / f"{name}.quill")
    better = fewer_products(program, spec.n, DEFAULT_TABLE, goal, lambda p: verify(p, spec).ok)
    return program, better


def _latency(program: Program, n: int) -> tuple[int, ...]:
    where = parameters(program, n, DEFAULT_TABLE).param_set
    return objective(program, where, DEFAULT_TABLE, Objective.LATENCY)


@pytest.mark.slow
def test_sobel_and_roberts_take_one_product_and_harris_five() -> None:
    for name, products in [("sobel", 1), ("roberts_cross", 1), ("harris", 5)]:
        spec = load_spec(KERNELS / f"{name}.spec")
        for kind in ("published", "baselines"):
            program, better = _pass(name, kind)
            assert better is not None, (name, kind)
            assert counts(better).ct_ct_mults == products
            assert counts(program).ct_ct_mults == products + 1
            assert verify(better, spec).ok
            assert _latency(better, spec.n) < _latency(program, spec.n)


def test_kernels_with_one_product_per_value_are_left_alone() -> None:
    for name in ("hamming_distance", "l2_distance", "dot_product", "polynomial_regression"):
        for kind in ("published", "baselines"):
            assert _pass(name, kind)[1] is None, (name, kind)


def test_the_paper_objective_keeps_the_fewest_instructions() -> None:
    # one product fewer, but more instructions and the same key switches
    assert _pass("sobel", "published", Objective.INSTRUCTIONS)[1] is None


def test_a_rewrite_that_fails_its_proof_is_not_returned() -> None:
    program = load_program(KERNELS / "published" / "sobel.quill")
    spec = load_spec(KERNELS / "sobel.spec")
    assert (
        fewer_products(program, spec.n, DEFAULT_TABLE, Objective.LATENCY, lambda p: False) is None
    )


@pytest.mark.slow
@pytest.mark.search
def test_synthesis_uses_it_under_latency_only() -> None:
    spec = load_spec(KERNELS / "roberts_cross.spec")
    fast = synthesize(spec, timeout=60)
    assert counts(fast.program).ct_ct_mults == 1 and verify(fast.program, spec).ok
    refactored = [p for p in fast.passes if p.name is Pass.FEWER_PRODUCTS]
    assert not fast.optimal and len(refactored) == 1
    assert refactored[0].before.ct_ct_mults > refactored[0].after.ct_ct_mults == 1
    paper = synthesize(spec, timeout=60, options=Options(goal=Objective.INSTRUCTIONS))
    assert counts(paper.program).ct_ct_mults == 2


# --- random sums of products -----------------------------------------------------------------

N = 8
INPUTS = ("a", "b", "c")


@st.composite
def sums_of_products(draw: st.DrawFn) -> Program:
    """``sum_k c_k * L_k * M_k + linear``, each factor a small combination of the inputs and
    their rotations, built with adds, subtracts and constant multiplies as a kernel would."""
    w = Writer(INPUTS)
    leaves = list(INPUTS) + [
        w.emit(Opcode.ROT, draw(st.sampled_from(INPUTS)), amount=draw(st.integers(1, N - 1)))
        for _ in range(draw(st.integers(0, 2)))
    ]

    def linear() -> str:
        picks = draw(st.lists(st.sampled_from(leaves), min_size=1, max_size=3))
        acc = picks[0]
        for v in picks[1:]:
            acc = w.emit(draw(st.sampled_from([Opcode.ADD_CC, Opcode.SUB_CC])), acc, v)
        if draw(st.booleans()):
            acc = w.emit(Opcode.MUL_CP, acc, w.const(draw(st.integers(2, T - 1))))
        return acc

    terms = [w.emit(Opcode.MUL_CC, linear(), linear()) for _ in range(draw(st.integers(2, 4)))]
    if draw(st.booleans()):
        terms.append(linear())
    return w.program(_signed_sum(draw, w, terms))


def _signed_sum(draw: st.DrawFn, w: Writer, terms: list[str]) -> str:
    acc = terms[0]
    for v in terms[1:]:
        acc = w.emit(draw(st.sampled_from([Opcode.ADD_CC, Opcode.SUB_CC])), acc, v)
    return acc


@st.composite
def sums_of_full_sums(draw: st.DrawFn) -> Program:
    """``sum_k c_k * s(L_k) * s(M_k) + d_k * s(L_k * M_k)``, s the full sum over N slots
    and L, M inputs, written as a kernel would."""
    w = Writer(INPUTS)
    terms = []
    for _ in range(draw(st.integers(1, 3))):
        a, b = draw(st.sampled_from(INPUTS)), draw(st.sampled_from(INPUTS))
        if draw(st.booleans()):
            sa, sb = w.emit(Opcode.SUM, a, amount=N), w.emit(Opcode.SUM, b, amount=N)
            term = w.emit(Opcode.MUL_CC, sa, sb)
        else:
            term = w.emit(Opcode.SUM, w.emit(Opcode.MUL_CC, a, b), amount=N)
        terms.append(w.emit(Opcode.MUL_CP, term, w.const(draw(st.integers(1, T - 1)))))
    return w.program(_signed_sum(draw, w, terms))


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(
    program=st.one_of(sums_of_products(), sums_of_full_sums()),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_rewrite_computes_the_same_slots_with_fewer_products(program: Program, seed: int) -> None:
    better = fewer_products(program, N, DEFAULT_TABLE, Objective.LATENCY, lambda p: True)
    if better is None:
        return
    assert counts(better).ct_ct_mults < counts(program).ct_ct_mults
    assert _latency(better, N) < _latency(program, N)
    rng = np.random.default_rng(seed)
    for _ in range(3):  # degree 2 in the inputs: a wrong rewrite agrees with chance 2/t
        inputs = {x: rng.integers(0, T, N) for x in INPUTS}
        assert np.array_equal(interpret(better, inputs), interpret(program, inputs))


# --- the in-sketch lower bound on products ---------------------------------------------------


def test_the_product_bound_reads_the_spec_quadratic_form() -> None:
    from porcupine.search.bound_terms import local_products
    from porcupine.search.restrictions import derive
    from quill.verify import reference

    expected = {"det2": 2, "complex_norm": 1, "energy3": 2, "point_distance": 1}
    for name, products in expected.items():
        ref = reference(load_spec(KERNELS / "corpus" / f"{name}.spec"))
        assert local_products(ref, derive(ref)) == products, name
    # not a bound where rotations may move products between slots, nor for bit inputs
    for name in ("l2_distance", "hamming_distance", "sobel"):
        ref = reference(load_spec(KERNELS / f"{name}.spec"))
        assert local_products(ref, derive(ref)) == 0, name


@pytest.mark.search
def test_the_bound_proves_the_formula_optimal_in_the_sketch() -> None:
    # a*d - b*c needs two products over Z_t (rank 4, a square discriminant): the formula as
    # written is the cheapest kernel of the sketch, proven without searching every size
    spec = load_spec(KERNELS / "corpus" / "det2.spec")
    result = synthesize(spec, timeout=60)
    assert result.optimal and "any size" in result.optimal_scope
    assert counts(result.program).ct_ct_mults == 2


def test_a_sum_of_products_that_cancels_is_left_alone() -> None:
    # a*a - a*a is zero: no product to write, and no combination to build (found by the
    # property above)
    body = (
        Instr("v1", Opcode.MUL_CC, ("a", "a")),
        Instr("v2", Opcode.MUL_CC, ("a", "a")),
        Instr("v3", Opcode.SUB_CC, ("v1", "v2")),
    )
    program = Program("zero", (Param("a", Kind.CT),), (), body, "v3")
    assert fewer_products(program, N, DEFAULT_TABLE, Objective.LATENCY, lambda p: True) is None


# --- products of full sums ---------------------------------------------------------------------


def test_variance_and_covariance_take_one_product() -> None:
    # n sum(a^2) - sum(a)^2 = sum(a (n a - sum(a))): a full sum is the same in every slot
    covariance = parse_program(
        "kernel covariance(x: ct, y: ct) {\n n = const(8)\n sx = sum(x, 8)\n sy = sum(y, 8)\n"
        " p = mul(x, y)\n sp = sum(p, 8)\n q = mul(sx, sy)\n np = mul(sp, n)\n"
        " c = sub(np, q)\n return c\n}\n"
    )
    variance = parse_program(  # as the search finds it
        "kernel variance(a: ct) {\n n = const(8)\n s = sum(a, 8)\n p = mul(a, a)\n"
        " sp = sum(p, 8)\n q = mul(s, s)\n np = mul(sp, n)\n v = sub(np, q)\n return v\n}\n"
    )
    for program in (variance, covariance):
        spec = load_spec(KERNELS / "corpus" / f"{program.name}.spec")
        assert verify(program, spec).ok and counts(program).ct_ct_mults == 2
        better = fewer_products(
            program, spec.n, DEFAULT_TABLE, Objective.LATENCY, lambda p, s=spec: verify(p, s).ok
        )
        assert better is not None and verify(better, spec).ok, program.name
        assert counts(better).ct_ct_mults == 1, program.name
        assert _latency(better, spec.n) < _latency(program, spec.n)
