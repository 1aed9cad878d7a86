"""Stencils that share a factor (porcupine.passes.common_factors) and quadratic forms written
with a product of two variables first (porcupine.passes.quadratic.with_a_monomial): exact
algebra, checked as identities over Z_t and on random values."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from porcupine.passes.common_factors import (
    Poly,
    common_factor_plans,
    divide,
    poly_of,
    shared_sums,
)
from porcupine.passes.quadratic import (
    Vector,
    evaluate,
    fewest_products,
    symmetric,
    with_a_monomial,
)
from quill.slots import T

W = 8
GX = {-W - 1: 1, -W + 1: -1, -1: 2, 1: -2, W - 1: 1, W + 1: -1}
GY = {-W - 1: 1, -W: 2, -W + 1: 1, W - 1: -1, W: -2, W + 1: -1}


def _mod(p: dict[int, int]) -> Poly:
    return {e: c % T for e, c in p.items() if c % T}


def _times(p: Poly, q: Poly) -> Poly:
    out: dict[int, int] = {}
    for a, c in p.items():
        for b, d in q.items():
            out[a + b] = (out.get(a + b, 0) + c * d) % T
    return {e: c for e, c in out.items() if c}


polys = st.dictionaries(st.integers(-12, 12), st.integers(1, T - 1), min_size=1, max_size=6)
binomials = st.tuples(st.integers(1, 9), st.sampled_from([1, T - 1]))


@settings(max_examples=60, deadline=None)
@given(p=polys, factor=binomials)
def test_a_product_divides_back_and_a_quotient_multiplies_back(
    p: Poly, factor: tuple[int, int]
) -> None:
    d, c = factor
    binomial = {0: 1, d: c}
    assert divide(_times(p, binomial), factor) == p
    q = divide(p, factor)
    if q is not None:  # exact: the quotient times the factor is the polynomial
        assert _times(q, binomial) == p


def test_the_sobel_gradients_share_the_window_sum() -> None:
    plans = list(common_factor_plans({"gx": _mod(GX), "gy": _mod(GY)}))
    factors, quotients = plans[0]  # the cheapest estimate first
    assert sorted(factors) == [(1, 1), (W, 1)]  # (1 + z)(1 + z^w): the 2x2 window sum
    window = _times({0: 1, 1: 1}, {0: 1, W: 1})
    for name, form in (("gx", GX), ("gy", GY)):
        assert _times(_times(quotients[name], {0: 1}), window) == _mod(form)
        assert len(quotients[name]) == 4  # two rotations of the window sum each, shared
    for factors, quotients in plans:  # every plan is exact
        for name, form in (("gx", GX), ("gy", GY)):
            product = quotients[name]
            for d, c in factors:
                product = _times(product, {0: 1, d: c})
            assert product == _mod(form)


def test_one_polynomial_alone_is_no_group() -> None:
    assert list(common_factor_plans({"gx": _mod(GX)})) == []


def test_centred_exponents() -> None:
    assert poly_of({63: 1, 1: 2, 0: 3}, 64) == {-1: 1, 1: 2, 0: 3}


def test_the_gradients_are_a_sum_and_a_difference() -> None:
    minus = T - 1
    made, combos = shared_sums(
        [{"a": 1, "b": 1, "c": minus, "d": minus}, {"a": minus, "b": 1, "c": minus, "d": 1}]
    )
    assert len(made) == 2
    assert all(len(c) == 2 for c in combos)  # four additions in all, where there were six


@settings(max_examples=40, deadline=None)
@given(
    combos=st.lists(
        st.dictionaries(st.sampled_from("abcde"), st.integers(1, T - 1), min_size=1, max_size=5),
        min_size=1,
        max_size=4,
    ),
    values=st.dictionaries(st.sampled_from("abcde"), st.integers(0, T - 1), min_size=5, max_size=5),
)
def test_shared_sums_keep_every_combination(
    combos: list[dict[str, int]], values: dict[str, int]
) -> None:
    made, rewritten = shared_sums(combos)
    env = dict(values)
    for name, combo in made:
        env[name] = sum(c * env[v] for v, c in combo.items()) % T
    for before, after in zip(combos, rewritten, strict=True):
        assert (
            sum(c * env[v] for v, c in before.items()) % T
            == sum(c * env[v] for v, c in after.items()) % T
        )


forms = st.lists(
    st.tuples(
        st.integers(1, T - 1),
        st.tuples(*[st.integers(-3, 3)] * 3),
        st.tuples(*[st.integers(-3, 3)] * 3),
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=40, deadline=None)
@given(written=forms, x=st.tuples(*[st.integers(0, T - 1)] * 3))
def test_a_monomial_first_is_the_form_in_no_more_products(
    written: list[tuple[int, Vector, Vector]], x: tuple[int, int, int]
) -> None:
    s = symmetric(3, written)
    fewest = len(fewest_products(s, range(3)))
    for way in with_a_monomial(s):
        assert symmetric(3, [(1, p.left, p.right) for p in way]) == s
        assert evaluate(way, x) == evaluate(fewest_products(s, range(3)), x)
        assert len(way) <= fewest
        assert sum(1 for c in way[0].left if c) == 1 and sum(1 for c in way[0].right if c) == 1


def test_the_harris_response_has_a_scaled_monomial_first() -> None:
    # r = 16 (a b - c^2) - (a + b)^2 over a = sxx, b = syy, c = sxy
    s = symmetric(
        3,
        [
            (16, (1, 0, 0), (0, 1, 0)),
            (-16 % T, (0, 0, 1), (0, 0, 1)),
            (T - 1, (1, 1, 0), (1, 1, 0)),
        ],
    )
    firsts = {(p.left, p.right) for p, *_ in with_a_monomial(s)}
    assert ((16, 0, 0), (0, 1, 0)) in firsts  # 16 a b - (a + b + 1024 c)(a + b - 1024 c)
