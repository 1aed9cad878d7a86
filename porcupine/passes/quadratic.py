"""Quadratic forms over Z_t, written with the fewest products of linear forms.

A quadratic form Q(x) = sum c_ij x_i x_j over the field Z_t (t = 65537, prime) is
diagonalized, Q = d_1 y_1^2 + ... + d_r y_r^2 with y_k linear in x and r the rank of Q.
Two terms whose coefficients are in the same square class make one product,

    d_a y_a^2 + d_b y_b^2 = d_a (y_a + s y_b) (y_a - s y_b),   s^2 = -d_b / d_a,

which exists because -1 is a square mod t (t = 1 mod 4; 256^2 = -1). So Q takes ceil(r / 2)
products, or r / 2 + 1 when r is even and the d_k are not all paired within their class
(the discriminant of Q is not a square). That is the minimum: k products of linear forms
have rank at most 2k, and with rank exactly 2k they are k hyperbolic planes, whose
discriminant, (-1/4)^k, is a square.

Sobel's gx^2 + gy^2 is (gx + 256 gy)(gx - 256 gy): one product instead of two.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from quill.slots import T

Vector = tuple[int, ...]  # coefficients mod T of a linear form in the variables x_0..x_{m-1}
Matrix = list[list[int]]  # symmetric: Q(x) = sum_ij S[i][j] x_i x_j


@dataclass(frozen=True)
class Product:
    """One term ``left(x) * right(x)`` of a sum of products."""

    left: Vector
    right: Vector


def inverse(a: int) -> int:
    """``a``'s inverse mod t (``a`` not 0 mod t)."""
    return pow(a % T, T - 2, T)


def is_square(a: int) -> bool:
    """Whether ``a`` (not 0 mod t) is a square mod t (Euler's criterion)."""
    return pow(a % T, (T - 1) // 2, T) == 1


@functools.cache
def _roots() -> dict[int, int]:
    # t is small: a table of the smaller square root of every square is 32 Ki entries.
    return {x * x % T: x for x in range(T // 2, -1, -1)}


def square_root(a: int) -> int:
    """The square root of ``a`` mod t nearer 0 (of ``r`` and ``t - r``, the smaller)."""
    return _roots()[a % T]


def centered(c: int) -> int:
    """``c`` mod t as the residue of least magnitude, in (-t/2, t/2)."""
    c %= T
    return c - T if c > T // 2 else c


def symmetric(m: int, products: Sequence[tuple[int, Vector, Vector]]) -> Matrix:
    """The matrix of ``sum c * (u . x) * (v . x)`` over ``(c, u, v)`` in ``products``."""
    half = inverse(2)
    s = [[0] * m for _ in range(m)]
    for c, u, v in products:
        for i in range(m):
            for j in range(m):
                s[i][j] = (s[i][j] + c * (u[i] * v[j] + u[j] * v[i]) * half) % T
    return s


def diagonalize(s: Matrix, order: Sequence[int]) -> list[tuple[int, Vector]]:
    """``[(d_k, y_k)]`` with Q = sum d_k (y_k . x)^2, by symmetric elimination taking pivots
    in ``order`` (a permutation of the variables; different orders give different forms)."""
    s = [row[:] for row in s]
    m = len(s)
    terms: list[tuple[int, Vector]] = []
    while (v := _anisotropic(s, order)) is not None:
        sv = [sum(s[i][j] * v[j] for j in range(m)) % T for i in range(m)]
        d = sum(v[i] * sv[i] for i in range(m)) % T
        y = tuple(c * inverse(d) % T for c in sv)
        terms.append((d, y))
        # Q - d y^2 vanishes on v and is Q on the vectors orthogonal to it: rank drops by 1.
        s = [[(s[i][j] - d * y[i] * y[j]) % T for j in range(m)] for i in range(m)]
    return terms


def _anisotropic(s: Matrix, order: Sequence[int]) -> list[int] | None:
    """A vector v with Q(v) != 0, or ``None`` when Q is zero."""
    m = len(s)
    for i in order:
        if s[i][i]:
            return [int(k == i) for k in range(m)]
    for i in order:
        for j in order:
            if s[i][j]:  # every diagonal entry is 0, so Q(e_i + e_j) = 2 S_ij
                return [int(k in (i, j)) for k in range(m)]
    return None


def fewest_products(s: Matrix, order: Sequence[int]) -> list[Product]:
    """Q as a sum of the fewest products of linear forms (see the module docstring)."""
    m = len(s)
    terms = diagonalize(s, order)
    classes = [[t for t in terms if is_square(t[0])], [t for t in terms if not is_square(t[0])]]
    products: list[Product] = []
    for group in classes:
        while len(group) >= 2:
            (da, ya), (db, yb) = group.pop(0), group.pop(0)
            r = square_root(-db * inverse(da))
            plus = tuple((a + r * b) % T for a, b in zip(ya, yb, strict=True))
            minus = tuple((a - r * b) % T for a, b in zip(ya, yb, strict=True))
            products.append(_balanced(scale(plus, da), minus))
        for d, y in group:  # at most one left in each class
            if is_square(d):
                root = scale(y, square_root(d))
                products.append(Product(root, root))
            else:
                products.append(_balanced(scale(y, d), y))
    assert all(len(p.left) == m for p in products)
    return products


def scale(v: Vector, c: int) -> Vector:
    return tuple(a * c % T for a in v)


def bits(v: Vector) -> int:
    """The largest coefficient of ``v`` in bits, centred: a multiply by c costs noise in
    proportion to log2 |c| (1 and -1 cost nothing: an add or a subtract)."""
    return max((abs(centered(c)).bit_length() - 1 for c in v if c), default=0)


def _balanced(left: Vector, right: Vector) -> Product:
    """``left * right`` rescaled, ``(a left) * (right / a)``, so that the two factors'
    largest constants are smallest: each costs noise before the product."""
    candidates = [1] + [inverse(c) for c in left if c] + [c for c in right if c]
    best = min(candidates, key=lambda a: (bits(scale(left, a)) + bits(scale(right, inverse(a))), a))
    return Product(scale(left, best), scale(right, inverse(best)))


def evaluate(products: Sequence[Product], x: Sequence[int]) -> int:
    """``sum left(x) * right(x)`` mod t."""
    return sum(_dot(p.left, x) * _dot(p.right, x) for p in products) % T


def _dot(v: Vector, x: Sequence[int]) -> int:
    return sum(a * b for a, b in zip(v, x, strict=True)) % T


def with_a_monomial(s: Matrix) -> list[list[Product]]:
    """Other ways to write Q with its fewest products, each with a product of two variables
    (one scaled) first: ``c x_i x_j`` is one constant multiply where a general product of
    linear forms pays a constant and an addition per coefficient.

    For each pair i <= j, the c with ``Q - c x_i x_j`` of lower rank are the roots of
    ``det(S - c E_ij)``, a polynomial of degree at most 2 in c (``E_ij`` has rank <= 2);
    the rest is written by :func:`fewest_products`. Only nonsingular Q are tried (the
    determinant of a singular one is 0 for every c), and a way is kept only when it takes
    no more products than :func:`fewest_products` does."""
    m = len(s)
    if m == 0 or _det(s) == 0:
        return []
    fewest = len(fewest_products(s, range(m)))
    ways: list[list[Product]] = []
    for i in range(m):
        for j in range(i, m):
            for c in _lowering(s, i, j):
                rest = [row[:] for row in s]
                if i == j:
                    rest[i][i] = (rest[i][i] - c) % T
                else:
                    half = c * inverse(2) % T
                    rest[i][j] = (rest[i][j] - half) % T
                    rest[j][i] = (rest[j][i] - half) % T
                left = tuple(c if k == i else 0 for k in range(m))
                right = tuple(int(k == j) for k in range(m))
                way = [Product(left, right), *fewest_products(rest, range(m))]
                if len(way) <= fewest:
                    ways.append(way)
    return ways


def _lowering(s: Matrix, i: int, j: int) -> list[int]:
    """The nonzero c with ``det(S - c E_ij) = 0``, ``E_ij`` the matrix of ``x_i x_j``."""

    def det_at(c: int) -> int:
        shifted = [row[:] for row in s]
        if i == j:
            shifted[i][i] = (shifted[i][i] - c) % T
        else:
            half = c * inverse(2) % T
            shifted[i][j] = (shifted[i][j] - half) % T
            shifted[j][i] = (shifted[j][i] - half) % T
        return _det(shifted)

    d0, d1, d2 = det_at(0), det_at(1), det_at(2)
    # d(c) = a c^2 + b c + d0, from its values at 0, 1 and 2
    a = (d2 - 2 * d1 + d0) * inverse(2) % T
    b = (d1 - d0 - a) % T
    if a == 0:
        c = (-d0 * inverse(b)) % T if b else 0
        return [c] if c else []
    disc = (b * b - 4 * a * d0) % T
    if disc and not is_square(disc):
        return []
    root = square_root(disc) if disc else 0
    found = {(-b + r) * inverse(2 * a) % T for r in (root, -root)}
    return sorted(c for c in found if c)


def _det(s: Matrix) -> int:
    """The determinant mod t (Gaussian elimination)."""
    a = [row[:] for row in s]
    m, det = len(a), 1
    for col in range(m):
        pivot = next((r for r in range(col, m) if a[r][col] % T), None)
        if pivot is None:
            return 0
        if pivot != col:
            a[col], a[pivot] = a[pivot], a[col]
            det = -det
        det = det * a[col][col] % T
        inv = inverse(a[col][col])
        for r in range(col + 1, m):
            f = a[r][col] * inv % T
            if f:
                a[r] = [(x - f * y) % T for x, y in zip(a[r], a[col], strict=True)]
    return det % T
