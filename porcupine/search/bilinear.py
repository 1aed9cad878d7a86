"""A count of ct*ct products for a spec that is bilinear between some inputs and the rest,
over the kernels of a sketch (no masks: every constant a splat), at any wrap-around and
mod t: :func:`bilinear_products`.

conv1d's ``h0[k] x[k] + h1[k] x[k + 1] + h2[k] x[k + 2]`` needs three products there,
where the count over the integers (:func:`~porcupine.search.bound_terms.real_products`)
lets one product rotated to three shifts stand for all three (its cross terms h_i x[k + j],
i != j, would have to cancel, and they cannot: the proof below).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import combinations

from porcupine.search.restrictions import Restrictions
from quill.slots import T
from quill.verify import Reference

Read = tuple[str, int]
"""An input and an offset from the output slot (mod n)."""

Quadratic = Mapping[tuple[Read, Read], int]
"""One output slot's degree-2 part: a pair of reads (sorted) -> its coefficient mod t."""

ISOTROPIC_PRODUCTS = 3
"""What :func:`isotropic_products` proves, when it proves anything."""

MAX_INPUTS = 10
"""Past this many inputs in a quadratic part, its splits are not tried (2^inputs of them)."""


def bilinear_products(ref: Reference, restrictions: Restrictions) -> int:
    """The ct*ct products every kernel of the sketch ``restrictions`` describe has, by
    :func:`isotropic_products` at some output slot that matters; 0 when that proves
    nothing or does not apply: it speaks of kernels of ct*ct depth at most 1 whose
    constants are splats (a sketch's), for a spec of ciphertext degree 2 without bit
    inputs (x^2 = x) or plaintext inputs (a plaintext is not a translation-invariant
    operand), whose inputs are variables in every slot (the proof reads the kernel's
    polynomial identity in every input slot; a slot known to be 0 leaves what a kernel
    does there free)."""
    if restrictions.max_depth > 1 or ref.ct_degree != 2 or ref.sym.ring.bits:
        return 0
    if ref.ct_vars != set(ref.sym.var_slot):
        return 0
    n, var_slot = ref.spec.n, ref.sym.var_slot
    covered: dict[str, set[int]] = {}
    for name, s in var_slot.values():
        covered.setdefault(name, set()).add(s % n)
    if any(len(slots) != n for slots in covered.values()):
        return 0  # slots known to be 0 (a layout, pad zero): not every read is a variable
    most = 0
    for slot, poly in ref.polys.items():
        part: dict[tuple[Read, Read], int] = {}
        for m, c in poly.items():
            if len(m) != 2:
                continue
            u, v = ((var_slot[w][0], (var_slot[w][1] - slot) % n) for w in m)
            key = (u, v) if u <= v else (v, u)
            part[key] = (part.get(key, 0) + c) % T
        most = max(most, isotropic_products(part, n))
    return most


def isotropic_products(part: Quadratic, n: int) -> int:
    """:data:`ISOTROPIC_PRODUCTS` (3) when some set S of inputs passes :func:`_isotropic`
    for one output slot's quadratic part ``part`` on ``n`` slots, else 0.

    What it bounds: a kernel of ct*ct depth at most 1 built from add/sub, negation, ct*ct
    multiplies, rotations, library sums, and ct*pt ops whose plaintexts are splat
    constants (every kernel of a sketch), computing (mod t) an output whose quadratic part
    at slot o is ``part``, has at least 3 ct*ct multiplies. (Equal as functions of inputs
    that are variables in every slot, over F_t, and of degree 2 < t, the kernel's
    polynomial at slot o and the spec's are equal as polynomials, degree by degree.)

    Proof. t = 65537 is prime and does not divide n, so F_t has an extension E holding a
    primitive n-th root of unity zeta. Every op but the multiplies is F_t-linear (or
    affine) and commutes with rotations, so each depth-0 value is, at every slot k,
    sum over inputs u and offsets s of a_{u,s} u[k + s] plus a constant: a vector a(z) of
    polynomials in R = F_t[z]/(z^n - 1), one per input. A product p of two depth-0 values
    a_p, b_p has the quadratic part a_p(k) b_p(k); everything after it (rotations, sums,
    splat multiplies, additions; no other product, depth 1) adds translates of it with
    constant weights, C_p(w) in F_t[w]/(w^n - 1). So the output's quadratic part at slot o,
    as a symmetric matrix of polynomials in (z1, z2) mod (z1^n - 1, z2^n - 1) indexed by
    inputs (entry (u, v): the coefficient of u[o + i] v[o + j] at z1^i z2^j; a square
    counted twice, t odd), is M = sum_p C_p(z1 z2) [a_p(z1) b_p(z2)^T + b_p(z1) a_p(z2)^T].
    Evaluate at z1 = zeta^a, z2 = zeta^b (a ring map) and write U(a) for the matrix with
    the columns a_p(zeta^a), b_p(zeta^a) (p over the products), U_S its rows S.

    Row space: every column of M_{S,*}(a, b) lies in the span of U_S(a)'s columns, for
    every b; so rank U_S(a) >= rho(a), the rank of the block row [N(a, b)]_b, N = M_{S,
    not S}. Slices: on c = a + b, let P_c be the products with C_p(zeta^c) != 0 and D_c the
    invertible block diagonal of C_p(zeta^c) [[0, 1], [1, 0]] over them; then M(a, c - a)
    = U_c(a) D_c U_c(c - a)^T (U_c: P_c's columns). S reads no S in ``part``, so
    M_{S,S} = 0 and by Sylvester's rank inequality (rank XY >= rank X + rank Y - the inner
    size, with X = U_{S,c}(a) and Y = D_c U_{S,c}(c - a)^T, of rank U_{S,c}(c - a))
    rank U_{S,c}(a) + rank U_{S,c}(c - a) <= 2 |P_c| for every a. Drop the products in no
    P_c (they add nothing to M) and suppose at most 2 are left. With r_p(a) = rank
    U_{S,p}(a) <= 2, rho(a) >= 3 needs two products, and r_1(a) + r_2(a) >= 3, so r_1(a),
    r_2(a) >= 1, at every a. A slice with both gives rho(a) + rho(c - a) <= 4: false.
    So a slice c with product 1 has it alone: r_1(a) + r_1(c - a) <= 2 with both >= 1,
    so r_1(a) = 1 and r_2(a) >= 2 at every a; and a slice with product 2 (it is in some
    P_c) gives r_2(a) + r_2(c' - a) <= 2: false. So 3 products at least.

    The rank rho(a) >= 3 is read over F_t: when each input of S is read at one offset
    i_u only, N_{u,v}(zeta^a, z2) = zeta^(a i_u) g_{u,v}(z2), and the block row's rank over
    every b is that of the rows (zeta^(a i_u) times) the coefficients of g_{u,v}, since
    evaluating at the n powers of zeta is invertible (t does not divide n): the rank of
    the coefficient matrix over F_t, whatever a. The proof reads one output slot only, so
    the spec's other slots (``where`` clauses, reads that wrap) do not matter; the output
    wraps mod n, and nothing here assumes it does not."""
    if n % T == 0:
        return 0
    names = sorted({r[0] for pair in part for r in pair})
    if len(names) > MAX_INPUTS:
        return 0
    if any(_isotropic(part, group) for group in splits(names)):
        return ISOTROPIC_PRODUCTS
    return 0


def _isotropic(part: Quadratic, group: frozenset[str]) -> bool:
    """Whether ``part`` reads no pair within ``group`` (S), each input of S is read at one
    offset only, and the cross coefficients have rank at least 3 over F_t
    (:func:`isotropic_products`)."""
    across: dict[Read, dict[Read, int]] = {}
    for (u, v), c in part.items():
        if c % T == 0:
            continue
        if u[0] in group and v[0] in group:
            return False
        if u[0] in group or v[0] in group:
            inner, outer = (u, v) if u[0] in group else (v, u)
            across.setdefault(inner, {})[outer] = c % T
    if len({r[0] for r in across}) != len(across):  # an input of S at two offsets
        return False
    columns = sorted({o for row in across.values() for o in row})
    matrix = [[row.get(o, 0) for o in columns] for row in across.values()]
    return rank_mod_t(matrix) >= ISOTROPIC_PRODUCTS


def rank_mod_t(matrix: list[list[int]]) -> int:
    """The rank of an integer matrix over F_t (t = :data:`quill.slots.T`, prime)."""
    rows = [[v % T for v in row] for row in matrix]
    rank = 0
    for col in range(len(rows[0]) if rows else 0):
        pivot = next((r for r in range(rank, len(rows)) if rows[r][col]), None)
        if pivot is None:
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        inverse = pow(rows[rank][col], T - 2, T)
        for r in range(len(rows)):
            if r != rank and rows[r][col]:
                f = rows[r][col] * inverse % T
                rows[r] = [(x - f * y) % T for x, y in zip(rows[r], rows[rank], strict=True)]
        rank += 1
    return rank


def splits(names: list[str]) -> Iterator[frozenset[str]]:
    """Every nonempty proper subset of ``names`` (the sets S :func:`isotropic_products`
    tries)."""
    for size in range(1, len(names)):
        for chosen in combinations(names, size):
            yield frozenset(chosen)
