"""A pass over verified kernels: fewer ct*ct products, by refactoring sums of products.

The tensor product of a ct*ct multiply is a kernel's dearest instruction on OpenFHE (it
costs more than the relinearization after it). Where a value is a linear combination of
products whose factors are linear in a few ciphertexts b (Sobel's ``gx^2 + gy^2``, Harris'
``16 (sxx syy - sxy^2) - (sxx + syy)^2``), it is a quadratic form in b, and
:mod:`porcupine.passes.quadratic` writes that form with the fewest products over Z_t: one for
Sobel instead of two, two for Harris' response instead of three. A hand-writer squares
twice; the sketch search has no such constants (256 is a square root of -1 mod t).

Products under a full sum (``sum(x, n)`` over all n slots, the same value in every slot)
meet in one form too: a product of two full sums is the full sum of one summand times the
other sum, and a combination of full sums is one full sum. Variance, ``n sum(a^2) -
sum(a)^2``, is then ``sum(a (n a - sum(a)))``: one product instead of two (covariance alike).

The constants cost noise, so the pass prices every rewrite at the parameter set it needs
(:func:`quill.noise.parameters`) and keeps it only when the objective says it is cheaper;
the kernel it returns is verified against the spec. It looks at its budget before every
rewrite it prices and before the proof, and once the budget is over it returns nothing: the
caller keeps the kernel it had.
"""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator

from porcupine.budget import Budget, OutOfBudget
from porcupine.passes.linear_forms import Form, expand, linear_values
from porcupine.passes.quadratic import (
    Product,
    Vector,
    centered,
    fewest_products,
    inverse,
    scale,
    symmetric,
    with_a_monomial,
)
from porcupine.passes.rewriting import Builder, rank
from quill.cost import CostTable, Objective
from quill.ir import Instr, Program
from quill.ops import Opcode
from quill.slots import T
from quill.stats import counts
from quill.transform import simplify

log = logging.getLogger("porcupine.products")

Named = dict[str, int]  # a combination of named values (no rotation tracked), mod t

MAX_ORDERS = 24
"""Pivot orders tried per value (every order of up to four factors): each gives other
constants, hence other noise, and the cost model picks."""

MAX_MONOMIAL_VARIABLES = 6
"""Forms in more variables are not tried with a monomial first (a pair of variables each, a
determinant and a diagonalization per pair: cubic in the variables, times their square)."""

MAX_SCALINGS = 64
"""Rescalings of the factors tried per way of writing a value with a product of two
variables first (:func:`_rescaled` of each product, in combination)."""


def fewer_products(
    program: Program,
    slots: int,
    table: CostTable,
    goal: Objective,
    verified: Callable[[Program], bool],
    *,
    budget: Budget | None = None,
) -> Program | None:
    """A cheaper rewrite of ``program`` with fewer ct*ct products, checked by ``verified``
    (the caller's proof against the spec), or ``None`` when there is none or ``budget``
    ran out first."""
    try:
        return _fewer(program, slots, table, goal, verified, budget or Budget())
    except OutOfBudget:
        log.info("%s: fewer products: stopped (the budget is over)", program.name)
        return None


def _fewer(
    program: Program,
    slots: int,
    table: CostTable,
    goal: Objective,
    verified: Callable[[Program], bool],
    budget: Budget,
) -> Program | None:
    budget.check("fewer_products")
    best: Program = program
    best_rank: tuple[int, ...] | None = None
    for start in (program, _under_one_sum(program, slots, budget)):
        if start is None or not _roots(start):
            continue
        if best_rank is None:
            best_rank = rank(program, slots, table, goal)
            if best_rank is None:
                return None  # no set holds it: nothing to compare with
        found, found_rank = _descend(start, slots, table, goal, budget)
        fewer = counts(found).ct_ct_mults < counts(program).ct_ct_mults
        if fewer and found_rank is not None and found_rank < best_rank:
            best, best_rank = found, found_rank
    if best is program:
        return None
    budget.check("verify")  # a proof is not started past the budget
    if not verified(best):  # an identity mod t; the proof guards the code that applied it
        log.warning("%s: a rewrite with fewer products failed verification", program.name)
        return None
    return best


def _descend(
    program: Program, slots: int, table: CostTable, goal: Objective, budget: Budget
) -> tuple[Program, tuple[int, ...] | None]:
    """The cheapest program reached from ``program`` by rewriting one value at a time."""
    best, best_rank = program, rank(program, slots, table, goal)
    roots = _roots(program)
    while roots and best_rank is not None:
        changed = best
        for root in roots:
            budget.check("fewer_products")
            for candidate in _rewrites(changed, root, monomials=goal is Objective.INSTRUCTIONS):
                budget.check("fewer_products")
                cost = rank(candidate, slots, table, goal)
                if cost is not None and cost < best_rank:
                    best, best_rank = candidate, cost
            if best is not changed:
                break  # the program changed: find its roots again
        roots = _roots(best) if best is not changed else []
    return best, best_rank


def _under_one_sum(program: Program, slots: int, budget: Budget) -> Program | None:
    """``program`` with its full sums merged, so that products under them meet in one
    quadratic form, or ``None`` if it has none to merge.

    A full sum ``S = sum(x, n)`` over all n slots is the same in every slot, so a product of
    two, ``sum(x, n) * sum(y, n)``, is ``sum(x * sum(y, n), n)``, and a linear combination of
    full sums is the full sum of the combination. Variance
    ``n sum(a^2) - sum(a)^2`` becomes ``sum(n a^2 - a sum(a))``, whose form is
    ``a (n a - sum(a))``: one product instead of two.
    """
    defs = {i.dest: i for i in program.body}

    def full(ins: Instr | None) -> bool:
        return ins is not None and ins.opcode.sums and ins.amount == slots

    b = Builder(program)
    body: list[Instr] = []
    moved = False
    for ins in program.body:  # products of full sums, as full sums
        if ins.opcode.multiplies_ciphertexts and all(full(defs.get(a)) for a in ins.args):
            u, v = ins.args
            inner = b.op(Opcode.MUL_CC, defs[u].args[0], v)
            body += [*b.body, Instr(ins.dest, Opcode.SUM, (inner,), slots)]
            b.body = []
            moved = True
        else:
            body.append(ins)
    program = Program(program.name, program.params, program.consts, tuple(body), program.result)
    merged = False
    while roots := _roots(program, full):  # combinations of full sums, as one full sum
        budget.check("fewer_products")
        defs = {i.dest: i for i in program.body}
        expanded = _expand(roots[0], program, linear_values(program))
        sums = [(defs[v].args[0], c) for v, c in expanded.items() if full(defs.get(v))]
        rest = [(v, c) for v, c in expanded.items() if not full(defs.get(v))]
        program = _replace(program, roots[0], _sum_of(sums, rest, slots))
        merged = True
    return simplify(program) if moved or merged else None


def _sum_of(
    summands: list[tuple[str, int]], rest: list[tuple[str, int]], slots: int
) -> Callable[[Builder], str]:
    """Builds ``sum(combination of summands, slots) + combination of rest``."""

    def build(b: Builder) -> str:
        total = b.op(Opcode.SUM, b.combination(summands), amount=slots)
        return b.combination([(total, 1), *rest])

    return build


def _expand(root: str, program: Program, linear: dict[str, Form]) -> Named:
    """``root`` as a combination of the values no linear op defines (rotated values are
    variables of their own here)."""
    return {name: c for (name, _), c in expand(root, program, linear).items()}


def _roots(program: Program, counted: Callable[[Instr], bool] | None = None) -> list[str]:
    """Values worth refactoring, largest first: linear values over two or more products (or
    values ``counted`` picks) that are not just a part of a larger linear value."""
    linear = linear_values(program)
    is_counted = counted or (lambda i: i.opcode.multiplies_ciphertexts)
    products = {i.dest for i in program.body if is_counted(i)}
    users: defaultdict[str, list[str]] = defaultdict(list)
    for ins in program.body:
        for a in set(ins.args):
            users[a].append(ins.dest)
    roots = []
    for ins in reversed(program.body):
        name = ins.dest
        if name not in linear:
            continue
        inner = len(users[name]) == 1 and users[name][0] in linear
        if inner and name != program.result:
            continue
        if sum(1 for v in _expand(name, program, linear) if v in products) >= 2:
            roots.append(name)
    return roots


def _rewrites(program: Program, root: str, *, monomials: bool) -> Iterator[Program]:
    """``program`` with ``root`` recomputed from the fewest products, once per pivot order,
    when that is fewer products than it has; then, if ``monomials``, the ways with a product
    of two variables first (:func:`~porcupine.passes.quadratic.with_a_monomial`), over the
    factors as they come and over the smallest factors first (``sxx``, ``syy`` before
    ``sxx + syy``), which make other variables.

    The monomial ways save instructions, which only the paper's objective ranks; under
    latency the pivot orders' balanced constants (less noise) are what the pass was built
    for, and a rewrite cheaper here can lead the rotations pass after it to a dearer end
    (Harris written flat: 55.971 ms against 55.963)."""
    linear = linear_values(program)
    defs = {i.dest: i for i in program.body}
    expanded = _expand(root, program, linear)
    is_product = {v: v in defs and defs[v].opcode.multiplies_ciphertexts for v in expanded}
    products = [(c, defs[v].args) for v, c in expanded.items() if is_product[v]]
    rest = [(v, c) for v, c in expanded.items() if not is_product[v]]
    operands = list(dict.fromkeys(a for _, args in products for a in args))
    basis, coords = _basis(operands, program, linear)
    m = len(basis)
    matrix = symmetric(m, [(c, coords[a], coords[b]) for c, (a, b) in products])
    orders = itertools.islice(itertools.permutations(range(m)), MAX_ORDERS)
    seen: set[tuple[tuple[str, ...], tuple[Product, ...]]] = set()
    for order in orders:
        fewest = tuple(fewest_products(matrix, order))
        if len(fewest) >= len(products) or (tuple(basis), fewest) in seen or not (fewest or rest):
            continue  # (nothing left: the value is zero, which takes no product to write)
        seen.add((tuple(basis), fewest))
        yield _replace(program, root, _sum_of_products(basis, fewest, rest))
    if not monomials:
        return
    smallest = sorted(operands, key=lambda a: len(_expand(a, program, linear)))
    for names in dict.fromkeys((tuple(operands), tuple(smallest))):
        basis, coords = _basis(list(names), program, linear)
        if len(basis) > MAX_MONOMIAL_VARIABLES:
            continue
        matrix = symmetric(len(basis), [(c, coords[a], coords[b]) for c, (a, b) in products])
        for way in itertools.islice(with_a_monomial(matrix), MAX_ORDERS):
            if len(way) >= len(products):
                continue
            # the monomial as it is (c x_i x_j is one multiply by c either way)
            scaled = itertools.product([way[0]], *(_rescaled(p) for p in way[1:]))
            for fewest in itertools.islice(scaled, MAX_SCALINGS):
                if (tuple(basis), fewest) in seen:
                    continue
                seen.add((tuple(basis), fewest))
                build = _sum_of_products(basis, fewest, rest, signed=True)
                yield _replace(program, root, build)


def _rescaled(p: Product) -> list[Product]:
    """``(a left) * (right / a)`` for each a that makes a constant of either factor 1: the
    factor is then built with fewer multiplies (the noise is the pricing's to weigh)."""
    scales = dict.fromkeys([1, *(inverse(c) for c in p.left if c), *(c for c in p.right if c)])
    return [Product(scale(p.left, a), scale(p.right, inverse(a))) for a in scales]


def _basis(
    operands: list[str], program: Program, linear: dict[str, Form]
) -> tuple[list[str], dict[str, Vector]]:
    """A basis among the product factors, and every factor's coordinates in it: factors
    that are combinations of others (``sxx + syy`` beside ``sxx`` and ``syy``) are not
    variables of their own. Gaussian elimination on their full expansions."""
    basis: list[str] = []
    rows: list[tuple[str, Named, list[int]]] = []  # pivot, row (pivot 1), row as basis combination
    combos: dict[str, list[int]] = {}
    for name in dict.fromkeys(operands):
        residual = dict(_expand(name, program, linear))
        combo: list[int] = [0] * len(basis)
        for pivot, row, as_basis in rows:
            c = residual.get(pivot, 0)
            if c:
                for v, k in row.items():
                    residual[v] = (residual.get(v, 0) - c * k) % T
                for i, k in enumerate(as_basis):
                    combo[i] = (combo[i] + c * k) % T
        residual = {v: k for v, k in residual.items() if k}
        if residual:  # independent: a new variable
            basis.append(name)
            pivot = next(iter(residual))
            inv = inverse(residual[pivot])
            as_basis = [(-k * inv) % T for k in combo] + [inv]
            rows = [(p, r, [*a, 0]) for p, r, a in rows]
            rows.append((pivot, {v: k * inv % T for v, k in residual.items()}, as_basis))
            combo = [0] * (len(basis) - 1) + [1]
            combos = {n: [*c, 0] for n, c in combos.items()}
        combos[name] = combo
    return basis, {n: tuple(c) for n, c in combos.items()}  # each padded as the basis grew


def _replace(program: Program, root: str, build: Callable[[Builder], str]) -> Program:
    """``program`` with the instruction defining ``root`` replaced by what ``build`` makes
    (it returns the new value's name)."""
    b = Builder(program)
    value = build(b)
    body: list[Instr] = []
    for ins in program.body:
        if ins.dest == root:
            body += b.body
            continue
        args = tuple(value if a == root else a for a in ins.args)
        body.append(Instr(ins.dest, ins.opcode, args, ins.amount))
    result = value if program.result == root else program.result
    return b.finish(program, body, result)


def _sum_of_products(
    basis: list[str],
    products: tuple[Product, ...],
    rest: list[tuple[str, int]],
    *,
    signed: bool = False,
) -> Callable[[Builder], str]:
    """Builds the sum of ``products`` (forms over ``basis``) and the linear ``rest``; if
    ``signed``, a factor of negative constants only is negated and its product subtracted
    (no negation instruction), unless every term would then be subtracted."""

    def build(b: Builder) -> str:
        factors = [(_positive(p.left), _positive(p.right)) for p in products]
        signs = [s1 * s2 for (_, s1), (_, s2) in factors]
        if not signed or (all(s < 0 for s in signs) and not rest):
            factors = [((p.left, 1), (p.right, 1)) for p in products]
            signs = [1] * len(products)
        terms: list[tuple[str, int]] = []
        for ((left, _), (right, _)), sign in zip(factors, signs, strict=True):
            u = b.combination([(v, c) for v, c in zip(basis, left, strict=True) if c])
            w = b.combination([(v, c) for v, c in zip(basis, right, strict=True) if c])
            terms.append((b.op(Opcode.MUL_CC, u, w), sign))
        return b.combination(terms + rest)

    return build


def _positive(v: Vector) -> tuple[Vector, int]:
    """``(v, 1)``, or ``(-v, -1)`` when every constant of ``v`` is negative (centred)."""
    if all(centered(c) <= 0 for c in v):
        return tuple(-c % T for c in v), -1
    return v, 1
