"""Quadratic forms over Z_t with the fewest products (porcupine.passes.quadratic): properties over
random forms, and the counts the theory fixes."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from porcupine.passes.quadratic import (
    Matrix,
    Vector,
    centered,
    evaluate,
    fewest_products,
    inverse,
    is_square,
    square_root,
    symmetric,
)
from quill.slots import T

residues = st.integers(0, T - 1)
small = st.integers(-3, 3)


def _matrix(products: list[tuple[int, Vector, Vector]], m: int) -> Matrix:
    return symmetric(m, products)


@st.composite
def sums_of_products(draw: st.DrawFn) -> tuple[int, list[tuple[int, Vector, Vector]]]:
    """A form in m variables written as a sum of k products of linear forms."""
    m = draw(st.integers(1, 4))
    k = draw(st.integers(1, 4))
    coeffs = residues if draw(st.booleans()) else small
    vec = st.tuples(*[coeffs] * m)
    return m, [(draw(residues), draw(vec), draw(vec)) for _ in range(k)]


@settings(max_examples=200, deadline=None)
@given(form=sums_of_products(), order_seed=st.integers(0, 23))
def test_the_products_are_the_form_and_never_more_than_it_was_written_with(
    form: tuple[int, list[tuple[int, Vector, Vector]]], order_seed: int
) -> None:
    m, written = form
    s = _matrix(written, m)
    orders = list(itertools.permutations(range(m)))
    order = orders[order_seed % len(orders)]
    products = fewest_products(s, order)
    # the same form, coefficient by coefficient (an identity, not a sample)
    assert symmetric(m, [(1, p.left, p.right) for p in products]) == s
    # a sum of k products of linear forms never needs more than k (module docstring)
    assert len(products) <= len([w for w in written if w[0] % T])


def test_sums_of_two_squares_are_one_product() -> None:
    # gx^2 + gy^2 = (gx + 256 gy)(gx - 256 gy): -1 is a square mod 65537
    s = symmetric(2, [(1, (1, 0), (1, 0)), (1, (0, 1), (0, 1))])
    products = fewest_products(s, (0, 1))
    assert len(products) == 1
    assert {abs(centered(c)) for p in products for v in (p.left, p.right) for c in v} == {1, 256}
    for x in [(3, 4), (65536, 2), (12345, 54321)]:
        assert evaluate(products, x) == (x[0] ** 2 + x[1] ** 2) % T


def test_a_form_whose_discriminant_is_not_a_square_takes_one_more() -> None:
    # x^2 + 3 y^2: 3 is not a square mod 65537, so no product of two linear forms equals it
    assert not is_square(3)
    s = symmetric(2, [(1, (1, 0), (1, 0)), (3, (0, 1), (0, 1))])
    assert len(fewest_products(s, (0, 1))) == 2


def test_harris_response_takes_two_products_not_three() -> None:
    # 16 (a b - c^2) - (a + b)^2 in (a, b, c) = (sxx, syy, sxy): rank 3
    s = symmetric(
        3, [(16, (1, 0, 0), (0, 1, 0)), (-16, (0, 0, 1), (0, 0, 1)), (-1, (1, 1, 0), (1, 1, 0))]
    )
    for order in itertools.permutations(range(3)):
        products = fewest_products(s, order)
        assert len(products) == 2
        for x in [(1, 2, 3), (40000, 7, 65000)]:
            a, b, c = x
            assert evaluate(products, x) == (16 * (a * b - c * c) - (a + b) ** 2) % T


def test_rank_one_and_zero() -> None:
    assert fewest_products(symmetric(2, []), (0, 1)) == []
    # (x + y)^2 + (x + y)^2 is rank one: a single square
    s = symmetric(2, [(2, (1, 1), (1, 1))])
    assert len(fewest_products(s, (1, 0))) == 1


@given(a=st.integers(1, T - 1))
def test_square_roots_and_inverses(a: int) -> None:
    assert a * inverse(a) % T == 1
    if is_square(a):
        r = square_root(a)
        assert r * r % T == a and r <= T // 2
    assert -T // 2 < centered(a) <= T // 2
