"""Kernel specs: every kernel loads, and its reference semantics agree with independent
numpy computations; params, stages, domains and the expression printer behave."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from quill.ops import Kind, Opcode
from quill.slots import T
from quill.spec import Domain, Hints, IntRing, Layout, Spec, load_spec, parse_spec
from quill.spec_ast import (
    BinOp,
    DefinitionAst,
    Expr,
    Name,
    Neg,
    Num,
    Pow,
    Read,
    Sum,
    format_expr,
)
from quill.spec_parser import parse_spec_file

KERNELS = Path(__file__).resolve().parent.parent / "kernels"
SPEC_FILES = sorted(KERNELS.glob("*.spec"))
Array = npt.NDArray[np.int64]

GX = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
SETTINGS = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2**32 - 1)


def spec(name: str, **params: int) -> Spec:
    return load_spec(KERNELS / f"{name}.spec", params or None)


def image_case(name: str, seed: int, **params: int) -> tuple[Spec, Array, Array]:
    """The image kernel ``name``, a random input slot vector for it, and that as an image."""
    s = spec(name, **params)
    x = s.random_inputs(np.random.default_rng(seed))["x"]
    h, w = s.input("x").layout.shape
    return s, x, x[: h * w].reshape(h, w)


def correlate3(x: Array, k: npt.NDArray[np.int_]) -> Array:
    """Interior of the 3x3 correlation: out[i-1][j-1] for 1 <= i < h-1, 1 <= j < w-1."""
    return np.einsum("ijkl,kl->ij", sliding_window_view(x, (3, 3)), k)


def as_image_slots(values: Array, w: int, top: int, left: int) -> dict[int, int]:
    """Image block ``values`` placed with its [0][0] at pixel (top, left), by slot, mod T."""
    return {(top + i) * w + left + j: int(v) % T for (i, j), v in np.ndenumerate(values)}


# --- every kernel ------------------------------------------------------------------------


def test_kernels_present() -> None:
    names = {p.stem for p in SPEC_FILES}
    assert {
        "box_blur", "dot_product", "hamming_distance", "l2_distance", "linear_regression",
        "polynomial_regression", "gx", "gy", "roberts_cross", "sobel", "harris",
    } <= names  # fmt: skip


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_kernel_loads_and_evaluates(path: Path) -> None:
    s = load_spec(path)
    assert s.name == path.stem
    assert s.output_slots() and all(0 <= k < s.n for k in s.output_slots())
    assert path.read_text().startswith("#"), "every kernel starts with a header comment"
    ref = s.reference(s.random_inputs(np.random.default_rng(0)))
    assert sorted(ref) == list(s.output_slots())
    assert all(0 <= v < T for v in ref.values())


# --- reference semantics vs numpy --------------------------------------------------------


@SETTINGS
@given(seeds, st.sampled_from([(4, 4), (8, 4), (4, 8), (8, 8)]))
def test_box_blur(seed: int, size: tuple[int, int]) -> None:
    h, w = size
    s, x, X = image_case("box_blur", seed, w=w, h=h)
    expected = X[:-1, :-1] + X[:-1, 1:] + X[1:, :-1] + X[1:, 1:]
    assert s.reference({"x": x}) == as_image_slots(expected, w, 0, 0)


@SETTINGS
@given(seeds, st.sampled_from(["gx", "gy"]), st.sampled_from([4, 8]))
def test_sobel_gradients(seed: int, name: str, w: int) -> None:
    s, x, X = image_case(name, seed, w=w, h=8)
    kernel = GX if name == "gx" else GX.T
    assert s.reference({"x": x}) == as_image_slots(correlate3(X, kernel), w, 1, 1)


@SETTINGS
@given(seeds)
def test_roberts_cross(seed: int) -> None:
    s, x, X = image_case("roberts_cross", seed)
    expected = (X[:-1, :-1] - X[1:, 1:]) ** 2 + (X[1:, :-1] - X[:-1, 1:]) ** 2
    assert s.reference({"x": x}) == as_image_slots(expected, 4, 0, 0)


@SETTINGS
@given(seeds)
def test_sobel(seed: int) -> None:
    s, x, X = image_case("sobel", seed, w=8, h=8)
    expected = correlate3(X, GX) ** 2 + correlate3(X, GX.T) ** 2
    assert s.reference({"x": x}) == as_image_slots(expected, 8, 1, 1)


@SETTINGS
@given(seeds)
def test_harris(seed: int) -> None:
    s, x, X = image_case("harris", seed)
    # Reduce mod T after every step: the exact products would overflow int64.
    gx, gy = correlate3(X, GX) % T, correlate3(X, GX.T) % T

    def window(a: Array) -> Array:
        return (a[:-1, :-1] + a[:-1, 1:] + a[1:, :-1] + a[1:, 1:]) % T

    sxx, syy, sxy = window(gx * gx % T), window(gy * gy % T), window(gx * gy % T)
    r = 16 * ((sxx * syy - sxy * sxy % T) % T) - (sxx + syy) ** 2 % T
    assert s.reference({"x": x}) == as_image_slots(r, 8, 1, 1)


@SETTINGS
@given(seeds, st.sampled_from([4, 8, 64]))
def test_dot_product(seed: int, n: int) -> None:
    s = spec("dot_product", n=n)
    assert s.input("b").kind is Kind.PT
    v = s.random_inputs(np.random.default_rng(seed))
    assert s.reference(v) == {0: int((v["a"] * v["b"]).sum()) % T}
    exact = s.evaluate(IntRing(), {k: a.tolist() for k, a in v.items()})
    assert exact == {0: int((v["a"] * v["b"]).sum())}


@SETTINGS
@given(seeds, st.sampled_from([4, 16]))
def test_hamming_distance_on_bits(seed: int, n: int) -> None:
    s = spec("hamming_distance", n=n)
    v = s.random_inputs(np.random.default_rng(seed))
    assert set(np.unique(np.concatenate([v["a"], v["b"]]))) <= {0, 1}
    assert s.reference(v) == {0: int((v["a"] ^ v["b"]).sum())}


@SETTINGS
@given(seeds)
def test_l2_distance(seed: int) -> None:
    s = spec("l2_distance")
    v = s.random_inputs(np.random.default_rng(seed))
    assert s.reference(v) == {0: int(((v["a"] - v["b"]) ** 2).sum()) % T}


@SETTINGS
@given(seeds, st.sampled_from([8, 64]))
def test_regressions(seed: int, n: int) -> None:
    lin, poly = spec("linear_regression", n=n), spec("polynomial_regression", n=n)
    v = poly.random_inputs(np.random.default_rng(seed))
    a, b, c, x, y = (v[k] for k in "abcxy")
    expected_lin = (y - (a * x % T + b)) % T
    expected_poly = (y - (a * (x * x % T) % T + b * x % T + c)) % T
    assert lin.reference(v) == dict(enumerate(expected_lin.tolist()))
    assert poly.reference(v) == dict(enumerate(expected_poly.tolist()))


# --- params ------------------------------------------------------------------------------


def test_param_overrides_and_output_slots() -> None:
    assert len(spec("box_blur").output_slots()) == 9
    s8 = spec("box_blur", w=8, h=8)
    assert (s8.n, len(s8.output_slots())) == (64, 49)
    assert dict(s8.params) == {"w": 8, "h": 8}
    assert s8.output_slots()[:8] == (0, 1, 2, 3, 4, 5, 6, 8)
    assert len(spec("gx", w=8, h=8).output_slots()) == 36
    assert len(spec("harris").output_slots()) == 25


def test_box_blur_64x64_reference() -> None:
    # How fast this is, is measured by eval/app_sizes.py (64x64 kernels), not here.
    s = spec("box_blur", w=64, h=64)
    x = s.random_inputs(np.random.default_rng(1))
    ref = s.reference(x)
    assert (s.n, len(ref)) == (4096, 63 * 63)
    row = x["x"]
    assert ref[65] == (row[65] + row[66] + row[129] + row[130]) % 65537


HINTED = """spec hinted
param w = 8
slots w * w
input x: ct image(w, w)
output y[i][j]: image(w, w) = x[i][j] + x[i][j+1] where j < w - 1
hint ops add_cc, rot
hint rotations 1, w, w + 1, -1
hint constants 2
hint components 3
"""


def test_hints() -> None:
    s = parse_spec(HINTED)
    assert s.hints.ops == (Opcode.ADD_CC, Opcode.ROT)
    assert s.hints.rotations == (1, 8, 9, -1)
    assert s.hints.constants == (2,) and s.hints.components == 3
    assert parse_spec(HINTED, params={"w": 4}).hints.rotations == (1, 4, 5, -1)


def test_the_suite_specs_have_no_hints() -> None:
    for path in KERNELS.glob("*.spec"):
        assert load_spec(path).hints == Hints(), path.name


# --- stages ------------------------------------------------------------------------------


def compose(s: Spec, x: dict[str, Array], rng: np.random.Generator) -> dict[int, int]:
    """Evaluate ``s`` the way a staged compiler would: each stage by its own sub-spec (which
    only guarantees the slots later steps read; the other slots get garbage), then the last
    step with the stages as inputs."""
    values = dict(x)
    for stage in s.stages:
        sub = s.stage_spec(stage.name).with_stages_as_inputs()
        vec = rng.integers(0, T, size=s.n, dtype=np.int64)  # garbage where nothing is read
        for slot, v in sub.reference({i.name: values[i.name] for i in sub.inputs}).items():
            vec[slot] = v
        values[stage.name] = vec
    final = s.with_stages_as_inputs()
    assert not final.stages
    return final.reference({i.name: values[i.name] for i in final.inputs})


@SETTINGS
@given(seeds, st.sampled_from([("sobel", 4), ("sobel", 8), ("harris", 8)]))
def test_composing_stages_gives_the_reference(seed: int, case: tuple[str, int]) -> None:
    name, size = case
    s = spec(name, w=size, h=size)
    rng = np.random.default_rng(seed)
    x = s.random_inputs(rng)
    assert compose(s, x, rng) == s.reference(x)


def test_sobel_stage_specs() -> None:
    s = spec("sobel")
    gx = s.stage_spec("gx")
    plain_gx = spec("gx")
    assert gx.output_slots() == plain_gx.output_slots() == (5, 6, 9, 10)
    assert [i.name for i in gx.inputs] == ["x"] and not gx.stages
    x = s.random_inputs(np.random.default_rng(3))
    assert gx.reference(x) == plain_gx.reference(x)
    final = s.with_stages_as_inputs()
    assert [(i.name, i.kind, i.domain, i.zero_outside) for i in final.inputs] == [
        ("gx", Kind.CT, Domain.ZT, False),
        ("gy", Kind.CT, Domain.ZT, False),
    ]
    assert final.output_slots() == s.output_slots()


def test_stage_spec_narrows_to_what_is_read() -> None:
    text = """spec t
    param n = 8
    slots n
    input x: ct vector(n)
    stage s[k]: vector(n) = x[k] * x[k]            # defined everywhere
    output y[k]: vector(n) = s[k] + s[k + 1] where k < 3
    """
    s = parse_spec(text)
    assert s.stage("s").slots() == tuple(range(8))
    assert s.stage_spec("s").output_slots() == (0, 1, 2, 3)


def test_harris_stage_order_and_regions() -> None:
    s = spec("harris")
    assert [d.name for d in s.stages] == ["gx", "gy", "sxx", "syy", "sxy", "det", "tr"]
    sxx = s.stage_spec("sxx")
    assert [d.name for d in sxx.stages] == ["gx"]
    assert len(sxx.output_slots()) == 25
    assert len(s.stage_spec("gx").output_slots()) == 36
    assert [i.name for i in sxx.with_stages_as_inputs().inputs] == ["gx"]


def test_stages_may_be_declared_in_any_order() -> None:
    text = """spec t
    slots 4
    input x: ct vector(4)
    output y[k]: vector(4) = b[k]
    stage b[k]: vector(4) = a[k] + 1
    stage a[k]: vector(4) = x[k] * 2
    """
    s = parse_spec(text)
    assert [d.name for d in s.stages] == ["a", "b"]
    assert s.reference({"x": [1, 2, 3, 4]}) == {0: 3, 1: 5, 2: 7, 3: 9}


# --- domains, padding, inputs ------------------------------------------------------------


def test_random_inputs_respect_domains_and_layouts() -> None:
    text = """spec t
    param n = 16
    slots n
    input a: ct vector(5) bits
    input b: pt image(2, 3)
    input c: ct scalar
    output y[k]: vector(5) = a[k] * c + b[0][0]
    """
    s = parse_spec(text)
    for seed in range(20):
        v = s.random_inputs(np.random.default_rng(seed))
        assert all(a.dtype == np.int64 and a.shape == (16,) for a in v.values())
        assert set(v["a"][:5]) <= {0, 1} and not v["a"][5:].any()
        assert not v["b"][6:].any() and ((v["b"] >= 0) & (v["b"] < T)).all()
        assert not v["c"][1:].any()
    assert s.input("a").domain is Domain.BITS and s.input("b").domain is Domain.ZT


def test_pad_zero_reads_zero_outside() -> None:
    text = """spec t
    param w = 4
    slots w * w
    input x: ct image(w, w) pad zero
    output y[i][j]: image(w, w) = x[i][j] + x[i][j + 1] + x[i + 1][j] + x[i + 1][j + 1]
    """
    s = parse_spec(text)
    x = s.random_inputs(np.random.default_rng(5))["x"]
    X = np.pad(x.reshape(4, 4), ((0, 1), (0, 1)))
    expected = X[:-1, :-1] + X[:-1, 1:] + X[1:, :-1] + X[1:, 1:]
    assert s.reference({"x": x}) == as_image_slots(expected, 4, 0, 0)


def test_values_may_use_params_and_indices() -> None:
    text = """spec t
    param n = 4
    slots n
    input a: ct vector(n)
    output y[k]: vector(n) = k * a[k] + n - sum(m in 0..k + 1) a[m]^0
    """
    s = parse_spec(text)
    assert s.evaluate(IntRing(), {"a": [10, 20, 30, 40]}) == {0: 3, 1: 22, 2: 61, 3: 120}


def test_evaluate_checks_its_inputs() -> None:
    s = spec("dot_product")
    with pytest.raises(KeyError, match="b"):
        s.evaluate(IntRing(), {"a": [0] * 8})
    with pytest.raises(ValueError, match="slots"):
        s.evaluate(IntRing(), {"a": [0] * 8, "b": [0] * 4})
    with pytest.raises(KeyError):
        s.input("nope")


def test_layout() -> None:
    img = Layout("image", (3, 5))
    assert (img.slot((2, 1)), img.size, img.rank) == (11, 15, 2)
    assert img.contains((2, 4)) and not img.contains((3, 0)) and not img.contains((1,))
    assert img.slots() == tuple(range(15))
    assert Layout("scalar", ()).slots() == (0,) and str(Layout("vector", (8,))) == "vector(8)"


def test_specs_compare_structurally() -> None:
    a = parse_spec("spec t slots 4 input x: ct vector(4) output y[k]: vector(4) = x[k]*2")
    b = parse_spec("spec t\nslots 4\ninput x: ct vector(4)\noutput y[k]: vector(4) =\n x[k] * 2")
    assert a == b


# --- the expression printer --------------------------------------------------------------

names = st.sampled_from(["i", "j", "w"])


def exprs() -> st.SearchStrategy[Expr]:
    leaves: st.SearchStrategy[Expr] = st.one_of(
        st.builds(Num, st.integers(0, 99)), st.builds(Name, names)
    )

    def extend(inner: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        return st.one_of(
            st.builds(Read, st.just("x"), st.lists(inner, min_size=1, max_size=2).map(tuple)),
            st.builds(Neg, inner),
            st.builds(BinOp, st.sampled_from(["+", "-", "*", "mod"]), inner, inner),
            st.builds(Pow, inner, st.integers(0, 5)),
            st.builds(Sum, st.sampled_from(["k", "m"]), inner, inner, inner),
        )

    return st.recursive(leaves, extend, max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(exprs())
def test_format_expr_round_trips(e: Expr) -> None:
    text = f"spec t slots 4 output y: scalar = {format_expr(e)}"
    decl = parse_spec_file(text).decls[-1]
    assert isinstance(decl, DefinitionAst)
    assert decl.expr == e
