"""A pass over verified kernels: linear combinations of rotations, rearranged for hoisting.

On OpenFHE (BV key switching) k rotations of ONE ciphertext cost one precompute and k cheap
hoisted rotations, while a chain of dependent rotations pays a full rotation each
(n8192_q180: 0.91 + 0.37k ms against 1.32k ms; the emitter hoists by the cost table). So
the cheapest way to compute ``sum c_k rot(p, k)`` depends on its shape and the table:

* flat: one hoisted rotation per offset. A window sum found as a chain,
  ``t = p + rot(p, 1)`` then ``t + rot(t, 8)``, is ``p + rot(p, 1) + rot(p, 8) + rot(p, 9)``:
  one more rotation and key, but cheaper hoisted;
* separable: when the offsets, split by a stride s into ``q s + r``, have a rank-one grid of
  coefficients ``u[q] v[r]`` over Z_t (a 3x3 Gaussian blur is [1 2 1] x [1 2 1]), a hoisted
  pass over rows then one over columns: 2 + 2 rotations instead of 8.

The search meets the chain first (fewer components) and rarely reaches either form in its
time. The pass expands each value that is a linear combination of rotations of a few
ciphertexts (its roots: inputs, products, library sums, which stay whole) and tries those
forms, alone and in groups that share a root's precompute, keeping a rewrite only when the
objective prices it cheaper at the parameter set its own noise needs and within the
rotation-key bound. Rotation is exact algebra on the kernel's cyclic slots
(``rot(rot(p, a), b) = rot(p, a + b)``); the kernel returned is verified against the spec.
The pass looks at its budget before every rewrite it prices and before the proof, and once
the budget is over it returns nothing: the caller keeps the kernel it had.
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator

from porcupine.budget import Budget, OutOfBudget
from porcupine.passes.common_factors import (
    Binomial,
    Poly,
    common_factor_plans,
    poly_of,
    shared_sums,
)
from porcupine.passes.linear_forms import Form, Term, expand, linear_values
from porcupine.passes.quadratic import centered, inverse
from porcupine.passes.rewriting import Builder, rank
from quill.cost import CostTable, Objective
from quill.ir import Instr, Program
from quill.ops import Opcode
from quill.slots import T, normalize_amount

log = logging.getLogger("porcupine.rotations")

Plan = tuple[Form, ...]  # stages: the first over roots, each next over the stage before
PREVIOUS = ""  # the name a stage's form gives the value of the stage before it
OVER_THE_KEY_BOUND = (sys.maxsize,)  # ranks after every kernel within the bound


def rearranged_rotations(
    program: Program,
    slots: int,
    table: CostTable,
    goal: Objective,
    verified: Callable[[Program], bool],
    max_keys: int | None = None,
    *,
    budget: Budget | None = None,
) -> Program | None:
    """A cheaper rewrite of ``program`` with its rotations rearranged (flat or separable),
    checked by ``verified`` (the caller's proof against the spec), or ``None`` (also when
    ``budget`` ran out first). A kernel over the key bound ``max_keys`` is beaten by any
    rewrite within it."""
    try:
        return _rearranged(program, slots, table, goal, verified, max_keys, budget or Budget())
    except OutOfBudget:
        log.info("%s: rotations rearranged: stopped (the budget is over)", program.name)
        return None


def _rearranged(
    program: Program,
    slots: int,
    table: CostTable,
    goal: Objective,
    verified: Callable[[Program], bool],
    max_keys: int | None,
    budget: Budget,
) -> Program | None:
    budget.check("rotation_forms")
    best, best_rank = program, rank(program, slots, table, goal, max_keys)
    if best_rank is None and rank(program, slots, table, goal) is not None:
        best_rank = OVER_THE_KEY_BOUND
    while best_rank is not None:
        current = best
        for candidate in _rewrites(current, slots):
            budget.check("rotation_forms")
            cost = rank(candidate, slots, table, goal, max_keys)
            if cost is not None and cost < best_rank:
                best, best_rank = candidate, cost
        if best is current:
            break
    if best is program:
        return None
    budget.check("verify")  # a proof is not started past the budget
    if not verified(best):  # exact rotation algebra; the proof guards the code that applied it
        log.warning("%s: rearranged rotations failed verification", program.name)
        return None
    return best


def _outputs(program: Program, linear: dict[str, Form]) -> list[str]:
    """The linear values something else needs: the result, or operands of a nonlinear op."""
    needed = {a for i in program.body if i.dest not in linear for a in i.args}
    needed.add(program.result)
    return [i.dest for i in program.body if i.dest in linear and i.dest in needed]


def _rewrites(program: Program, slots: int) -> Iterator[Program]:
    """``program`` with some of its linear outputs rearranged: each alone, flat or separable;
    flat, all that rotate one root (so their rotations share a precompute); all flat."""
    linear = linear_values(program, slots)
    forms = {v: expand(v, program, linear, slots) for v in _outputs(program, linear)}
    rotating = {v: f for v, f in forms.items() if f and any(k for _, k in f)}
    flat: dict[str, Plan] = {v: (f,) for v, f in rotating.items()}
    plans: list[dict[str, Plan]] = [{v: p} for v, p in flat.items()]
    split: defaultdict[tuple[int, bool], dict[str, Plan]] = defaultdict(dict)
    for v, f in rotating.items():
        for how, p in _separable(f, slots):
            plans.append({v: p})
            split[how][v] = p
    # Values split alike, together: a first stage with the same coefficients is one value,
    # and the second stages' rotations of it share one precompute (Harris' window sums).
    plans += [group for group in split.values() if len(group) > 1]
    roots = sorted({name for form in rotating.values() for name, k in form if k})
    plans += [{v: p for v, p in flat.items() if _rotates(p[0], r)} for r in roots]
    plans.append(flat)
    seen: list[dict[str, Plan]] = []
    for plan in plans:
        if plan and plan not in seen:
            seen.append(plan)
            yield _rebuilt(program, plan, slots)
            if _weighted(plan):  # small weights by doubling: no multiply, fewer additions
                yield _rebuilt(program, plan, slots, doublings=True)
    for r in roots:  # the values over one root only, with a factor they share taken out once
        group = {v: f for v, f in rotating.items() if {name for name, _ in f} == {r}}
        polys = {v: poly_of({k: c for (_, k), c in f.items()}, slots) for v, f in group.items()}
        for factors, quotients in common_factor_plans(polys):
            yield _factored(program, r, factors, quotients, slots)


DOUBLED = 64
"""Coefficients up to this magnitude (and above 2, which is an addition already) are also
tried built by doubling (:meth:`~porcupine.passes.rewriting.Builder.by_doublings`): a
[1, 4, 6, 4, 1] smoothing in seven additions around its four hoisted rotations instead of
four additions and two multiplies, cheaper where a ct*pt multiply costs more than an
addition. Past it, the doublings cost more than the multiply they save."""


def _weighted(plan: dict[str, Plan]) -> bool:
    """Whether a stage of ``plan`` has a coefficient that doubling may build more cheaply."""
    return any(
        2 < abs(centered(c)) <= DOUBLED for p in plan.values() for f in p for c in f.values()
    )


def _rotates(form: Form, root: str) -> bool:
    return any(name == root and k for name, k in form)


def _separable(form: Form, slots: int) -> Iterator[tuple[tuple[int, bool], Plan]]:
    """Two-stage plans for a form over one root whose offsets, split by a stride s into
    ``q * s + r``, have a rank-one coefficient grid ``u[q] * v[r]`` over Z_t (a separable
    stencil: rows of ``w`` slots, then columns): ``t = sum u[q] rot(root, q s)``, then
    ``sum v[r] rot(t, r)``, or the other way round; each with its stride and order."""
    roots = {name for name, _ in form}
    if len(roots) != 1:
        return
    (root,) = roots
    found: list[Plan] = []
    for s in range(2, slots // 2 + 1):
        grid: defaultdict[int, dict[int, int]] = defaultdict(dict)
        for (_, k), c in form.items():
            k = normalize_amount(k, slots)
            q = (k + s // 2) // s
            grid[q][k - q * s] = c
        factors = _rank_one(grid) if len(grid) > 1 else None
        if factors is None or len(factors[1]) < 2:
            continue
        u, v = factors
        strided = {q * s % slots: c for q, c in u.items()}
        near = {r % slots: c for r, c in v.items()}
        for strided_first in (True, False):
            first, second = (strided, near) if strided_first else (near, strided)
            plan = (
                {(root, k): c for k, c in first.items()},
                {(PREVIOUS, k): c for k, c in second.items()},
            )
            if plan not in found:
                found.append(plan)
                yield (s, strided_first), plan


def _rank_one(grid: dict[int, dict[int, int]]) -> tuple[dict[int, int], dict[int, int]] | None:
    """``(u, v)`` with ``grid[q][r] = u[q] v[r]`` mod t, scaled so that the larger centred
    constant of the two is smallest (less noise), or ``None``."""
    rows = sorted(grid)
    first = grid[rows[0]]
    if any(set(grid[q]) != set(first) for q in rows):
        return None  # a rank-one grid of nonzero entries fills a rectangle
    r0 = min(first)
    v = {r: c * inverse(first[r0]) % T for r, c in first.items()}
    u = {q: grid[q][r0] for q in rows}
    if any(grid[q][r] != u[q] * v[r] % T for q in rows for r in v):
        return None
    best: tuple[int, dict[int, int], dict[int, int]] | None = None
    for scale in {v[r] for r in v}:  # v / v[r] has a 1 at r; u takes the factor
        inv = inverse(scale)
        su = {q: c * scale % T for q, c in u.items()}
        sv = {r: c * inv % T for r, c in v.items()}
        size = max(abs(centered(c)) for c in su.values()) + max(
            abs(centered(c)) for c in sv.values()
        )
        if best is None or size < best[0]:
            best = (size, su, sv)
    assert best is not None
    return best[1], best[2]


def _rebuilt(
    program: Program, plans: dict[str, Plan], slots: int, *, doublings: bool = False
) -> Program:
    """``program`` with each value of ``plans`` recomputed by its plan: per stage, one
    rotation per term (shared between the values), then the combination (by doubling, with
    ``doublings``)."""
    b = Builder(program, doublings=doublings)
    rotated: dict[Term, str] = {}
    rename: dict[str, str] = {}
    body: list[Instr] = []
    for ins in program.body:
        if ins.dest in plans:
            value = PREVIOUS
            for stage in plans[ins.dest]:
                terms = []
                for (name, k), c in sorted(stage.items()):
                    name = value if name == PREVIOUS else name
                    if k and (name, k) not in rotated:
                        amount = normalize_amount(k, slots)
                        rotated[name, k] = b.op(Opcode.ROT, name, amount=amount)
                    terms.append((rotated[name, k] if k else name, c))
                value = b.combination(terms)
            rename[ins.dest] = value
            body += b.body
            b.body = []
            continue
        args = tuple(rename.get(a, a) for a in ins.args)
        body.append(Instr(ins.dest, ins.opcode, args, ins.amount))
    result = rename.get(program.result, program.result)
    return b.finish(program, body, result)


def _factored(
    program: Program, root: str, factors: list[Binomial], quotients: dict[str, Poly], slots: int
) -> Program:
    """``program`` with the values of ``quotients`` recomputed from ``root``: the ``factors``
    once, a stage each (``p + c rot(p, d)``), then each value's quotient flat over their
    product, the rotations and the partial sums the quotients share computed once
    (:func:`~porcupine.passes.common_factors.shared_sums`)."""
    b = Builder(program)
    base = root
    for d, c in factors:
        turned = b.op(Opcode.ROT, base, amount=normalize_amount(d, slots))
        base = b.combination([(base, 1), (turned, c)])
    rotated: dict[int, str] = {}
    for e in sorted({e for q in quotients.values() for e in q}):
        amount = normalize_amount(e, slots)
        rotated[e] = b.op(Opcode.ROT, base, amount=amount) if amount else base
    made, combos = shared_sums([{rotated[e]: c for e, c in q.items()} for q in quotients.values()])
    names: dict[str, str] = {}
    for name, combo in made:
        names[name] = b.combination([(names.get(v, v), c) for v, c in combo.items()])
    rename = {
        v: b.combination([(names.get(u, u), c) for u, c in combo.items()])
        for v, combo in zip(quotients, combos, strict=True)
    }
    body: list[Instr] = []
    for ins in program.body:
        if ins.dest in rename:
            body += b.body  # at the first of the values (the root is defined before it)
            b.body = []
            continue
        args = tuple(rename.get(a, a) for a in ins.args)
        body.append(Instr(ins.dest, ins.opcode, args, ins.amount))
    return b.finish(program, body, rename.get(program.result, program.result))
