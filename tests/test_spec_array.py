"""quill.spec_array: a spec's reference evaluated on numpy arrays equals ``Spec.reference``
(every kernel, at several params; random specs using the whole language, errors included),
and scales past one ciphertext (harris 64x64, a dot product over 10^6 elements)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from quill.errors import QuillSemanticError
from quill.slots import T
from quill.spec import Spec, load_spec, parse_spec
from quill.spec_array import (
    ArrayReference,
    SpecArrayError,
    reference_array,
    spec_reference_array,
)
from quill.spec_parser import parse_spec_file

pytestmark = pytest.mark.slow  # properties over every spec file

KERNELS = Path(__file__).resolve().parent.parent / "kernels"
SPEC_FILES = sorted(
    [*KERNELS.glob("*.spec"), *KERNELS.glob("corpus/*.spec"), *KERNELS.glob("layouts/*.spec")]
)
seeds = st.integers(0, 2**32 - 1)


def natural(
    spec: Spec, slots: dict[str, npt.NDArray[np.int64]]
) -> dict[str, npt.NDArray[np.int64]]:
    """Slot vectors (as :meth:`Spec.random_inputs` draws them) in each input's natural shape."""
    return {i.name: slots[i.name][: i.layout.size].reshape(i.layout.shape) for i in spec.inputs}


def assert_same(spec: Spec, seed: int) -> ArrayReference:
    """``spec_reference_array`` agrees with ``Spec.reference`` at every slot that matters, and
    matters exactly there."""
    raw = spec.random_inputs(np.random.default_rng(seed))
    got = spec_reference_array(spec, natural(spec, raw))
    assert got.values.shape == got.matters.shape == spec.output.layout.shape
    assert got.values.dtype == np.int64 and got.matters.dtype == np.bool_
    assert list(np.flatnonzero(got.matters)) == list(spec.output_slots())
    assert got.slots() == spec.reference(raw)
    assert ((got.values >= 0) & (got.values < T)).all()
    return got


# --- every kernel, at its defaults and other small params ---------------------------------


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_kernels_at_their_defaults(path: Path) -> None:
    assert_same(load_spec(path), 0)


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(seed=seeds, data=st.data())
def test_kernels_at_other_params(path: Path, seed: int, data: st.DataObject) -> None:
    spec = load_spec(path)
    params = {
        name: data.draw(st.sampled_from([default, 2, 3, 4, 8]), label=name)
        for name, default in spec.params
    }
    try:
        spec = spec.at(params)
    except QuillSemanticError:
        assume(False)  # e.g. slots not a power of two, or a region left empty
    assert_same(spec, seed)


# --- random specs over the whole language -------------------------------------------------

HEADS = {"image(h, w)": ("i", "j"), "vector(n)": ("k",), "scalar": ()}


@st.composite
def ints(draw: st.DrawFn, scope: tuple[str, ...], depth: int = 2) -> str:
    """An integer expression: `mod` (mostly by a positive modulus, sometimes by 0 or less),
    `^` (sometimes past int64), negation."""
    if depth == 0 or draw(st.booleans()):
        return draw(st.sampled_from([*scope, *scope, "h", "w", "n", "0", "1", "2", "5"]))
    a, b = draw(ints(scope, depth - 1)), draw(ints(scope, depth - 1))
    op = draw(st.sampled_from(["+", "-", "*", "mod", "^", "neg"]))
    if op == "^":
        return f"({a})^{draw(st.sampled_from([0, 1, 2, 3, 41]))}"
    if op == "mod":
        return f"({a}) mod ({draw(st.sampled_from(['h', 'w', 'n', '3', b]))})"
    return f"-({a})" if op == "neg" else f"({a}) {op} ({b})"


@st.composite
def bounds(draw: st.DrawFn, scope: tuple[str, ...]) -> tuple[str, str]:
    """Small sum bounds, sometimes empty or inverted, sometimes depending on indices."""
    lo = draw(st.sampled_from(["0", "1", *(f"{v} - 1" for v in scope), *scope]))
    if draw(st.integers(0, 4)) == 0:
        return lo, draw(st.sampled_from(["0", "2", "n", *scope]))
    return lo, f"{lo} + {draw(st.integers(1, 3))}"


@st.composite
def values(draw: st.DrawFn, scope: tuple[str, ...], stage: bool, depth: int = 3) -> str:
    """A value expression reading x (pad zero), y (not padded), b (bits), c (scalar) and,
    with ``stage``, the stage s."""
    reads = [
        f"x[{draw(ints(scope))}][{draw(ints(scope))}]",
        f"y[({draw(ints(scope))}) mod n]",
        f"b[{draw(ints(scope))}]",
        "c",
        draw(st.sampled_from([*scope, "h", "7", "65536"])),
    ]
    if draw(st.integers(0, 9)) == 0:
        reads.append(f"y[{draw(ints(scope))}]")  # often outside y
    if stage:
        i, j = draw(st.sampled_from([("i", "j"), ("i + 1", "j"), ("(i + 1) mod h", "j")]))
        reads += [f"s[{i}][{j}]", f"s[{i}][{j}]"]
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(reads))
    a = draw(values(scope, stage, depth - 1))
    op = draw(st.sampled_from(["+", "-", "*", "neg", "^", "sum", "mod"]))
    if op == "neg":
        return f"-({a})"
    if op == "^":
        return f"({a})^{draw(st.integers(0, 3))}"
    if op == "mod":
        return f"(({draw(ints(scope))}) mod ({draw(ints(scope))}))"
    if op == "sum":
        var = "p" if "p" not in scope else "q"
        lo, hi = draw(bounds(scope))
        return f"sum({var} in {lo}..{hi}) ({draw(values((*scope, var), stage, depth - 1))})"
    return f"({a}) {op} ({draw(values(scope, stage, depth - 1))})"


@st.composite
def wheres(draw: st.DrawFn, scope: tuple[str, ...]) -> str:
    """A `where` clause (or none): chained comparisons, `!=`, `mod`."""
    conds = []
    for _ in range(draw(st.integers(0, 2)) if scope else 0):
        v = draw(st.sampled_from(scope))
        templates = [f"{v} < h - 1", f"{v} != 2", f"1 <= {v} < w", f"{v} mod 2 == 0", f"{v} >= 1"]
        if draw(st.booleans()):
            conds.append(draw(st.sampled_from(templates)))
            continue
        ops = draw(st.lists(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), max_size=2))
        ops.append(draw(st.sampled_from(["<", "!="])))
        terms = [draw(ints(scope, 1)) for _ in range(len(ops) + 1)]
        pairs = zip(terms, ops, strict=False)  # the last term follows the last op
        conds.append(" ".join(f"{t} {o}" for t, o in pairs) + f" {terms[-1]}")
    return f" where {', '.join(conds)}" if conds else ""


@st.composite
def random_specs(draw: st.DrawFn) -> tuple[str, dict[str, tuple[int, ...]]]:
    """A spec's text, and the shapes of its inputs."""
    layout = draw(st.sampled_from([*HEADS, "image(h, w)"]))
    head = "".join(f"[{v}]" for v in HEADS[layout])
    with_stage = draw(st.booleans()) and layout == "image(h, w)"
    stage = ""
    if with_stage:
        expr = draw(values(("i", "j"), False, 2))
        where = draw(st.just("") | wheres(("i", "j")))
        stage = f"stage s[i][j]: image(h, w) = {expr}{where}\n"
    h, w, n = (draw(st.integers(1, 5)) for _ in range(3))
    shapes = {"x": (h, w), "y": (n,), "b": (n,), "c": ()}
    return (
        f"spec r param h = {h} param w = {w} param n = {n} slots 64\n"
        "input x: ct image(h, w) pad zero\ninput y: ct vector(n)\n"
        "input b: pt vector(n) bits pad zero\ninput c: pt scalar\n" + stage
        + f"output o{head}: {layout} = x[0][0] + {'s[i][j] * ' if with_stage else ''}"
        + f"({draw(values(HEADS[layout], with_stage))})"
        + draw(wheres(HEADS[layout])),
        shapes,
    )  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(random_specs(), seeds)
def test_random_specs_match_or_fail_alike(
    case: tuple[str, dict[str, tuple[int, ...]]], seed: int
) -> None:
    text, shapes = case
    source = parse_spec_file(text)
    try:
        spec = parse_spec(text)
    except QuillSemanticError as e:
        # Checks that change no value are not repeated by reference_array.
        assume("never read" not in e.message and "plaintext-only" not in e.message)
        rng = np.random.default_rng(seed)
        inputs = {k: rng.integers(0, 2, s) for k, s in shapes.items()}
        with pytest.raises(SpecArrayError):
            reference_array(source, {}, inputs)
        return
    assert_same(spec, seed)


# --- examples ------------------------------------------------------------------------------


def test_harris_64x64_matches_spec_reference() -> None:
    assert_same(load_spec(KERNELS / "harris.spec", {"h": 64, "w": 64}), 7)


def test_dot_product_of_a_million_elements() -> None:
    n = 1_000_000  # not a power of two, and far past one ciphertext
    rng = np.random.default_rng(3)
    a, b = rng.integers(-(T - 1), T, n), rng.integers(0, T, n)
    source = parse_spec_file((KERNELS / "dot_product.spec").read_text())
    got = reference_array(source, {"n": n}, {"a": a, "b": b})
    assert got.values.shape == () and bool(got.matters)
    assert int(got.values) == int(((a % T) * b % T).sum() % T)


def test_box_blur_on_a_non_power_of_two_image() -> None:
    x = np.random.default_rng(5).integers(0, 256, (37, 50))
    source = parse_spec_file((KERNELS / "box_blur.spec").read_text())
    got = reference_array(source, {"h": 37, "w": 50}, {"x": x})
    expect = x[:-1, :-1] + x[1:, :-1] + x[:-1, 1:] + x[1:, 1:]
    assert got.matters[:-1, :-1].all() and got.matters.sum() == 36 * 49
    assert (got.values[:-1, :-1] == expect).all() and (got.values[-1] == 0).all()


SHIFT = """spec shift
param n = 6
slots 8
input x: ct vector(n)
output y[k]: vector(n) = x[k + 1] where k != 3"""


def test_out_of_range_read_that_matters_raises() -> None:
    source = parse_spec_file(SHIFT)
    with pytest.raises(ValueError, match=r"x\[k \+ 1\] at output y\[5\] reads x\[6\]"):
        reference_array(source, {}, {"x": np.arange(6)})
    # the same read where it does not matter is 0, and pad zero makes it 0 everywhere
    fixed = parse_spec_file(SHIFT.replace("k != 3", "k != 5"))
    got = reference_array(fixed, {}, {"x": np.arange(6)})
    assert got.values.tolist() == [1, 2, 3, 4, 5, 0] and not got.matters[5]
    padded = parse_spec_file(SHIFT.replace("vector(n)\n", "vector(n) pad zero\n", 1))
    assert reference_array(padded, {}, {"x": np.arange(6)}).values.tolist() == [1, 2, 3, 0, 5, 0]


def test_stage_read_outside_its_region_raises() -> None:
    text = """spec t param n = 4 slots 4 input x: ct vector(n)
    stage s[k]: vector(n) = x[k] * 2 where k < n - 1
    output y[k]: vector(n) = s[k] + s[(k + 1) mod n] where k < n - 1"""
    with pytest.raises(SpecArrayError, match=r"output y\[2\] reads s\[3\], outside the region"):
        reference_array(parse_spec_file(text), {}, {"x": np.arange(4)})


def test_bad_inputs_and_derived_specs_are_refused() -> None:
    source = parse_spec_file(SHIFT.replace("k != 3", "k < 5"))
    with pytest.raises(SpecArrayError, match=r"shape \(5,\)"):
        reference_array(source, {}, {"x": np.arange(5)})
    with pytest.raises(SpecArrayError, match="integers"):
        reference_array(source, {}, {"x": np.zeros(6)})
    with pytest.raises(KeyError):
        reference_array(source, {}, {})
    with pytest.raises(SpecArrayError, match="unknown param override"):
        reference_array(source, {"m": 3}, {"x": np.arange(6)})
    harris = load_spec(KERNELS / "harris.spec")
    with pytest.raises(NotImplementedError):
        spec_reference_array(harris.stage_spec("gx"), {})
