"""Products packed into spare slots: two ct*ct products for the price of one.

With every input zero padded to ``factor`` times the spec's slots (the client packing
:func:`porcupine.layouts.choices.padded`: no element moves, the spare slots hold 0), two
independent products ``a * b`` and ``c * d`` of a verified kernel become one::

    P = (a + rot(c, -s)) * (b + rot(d, -s))        a * b = P,  c * d = rot(P, s)

where the shift ``s`` is a multiple of the spec's slots. The cross terms ``a * rot(d, -s)``
and ``rot(c, -s) * b`` vanish at the slots that matter when the padding keeps the two
copies' non-zero slots apart; nothing here reasons about supports: every merge is tried on
random inputs, and the kernel kept is proven equal to the padded spec (itself proven equal
to the spec, :func:`porcupine.layouts.packing.check`). A rotation of ``P``
and up to two of the operands replace a ct*ct multiply (and a relinearization, when the
product was not one of a sum relinearized once), and the rotations pass
(:mod:`porcupine.passes.rotation_forms`) then hoists them with the kernel's others, so the objective
prices what the merge really costs. Merges are greedy, the cheapest first, until none pays.
The pass looks at its budget before every merge it tries and before each proof, and once
the budget is over it returns nothing: the caller keeps the natural kernel.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from dataclasses import dataclass

from porcupine.budget import Budget, OutOfBudget
from porcupine.layouts.choices import padded
from porcupine.layouts.packing import Packing, check
from porcupine.options import Options
from porcupine.passes.rewriting import Builder, rank
from porcupine.passes.rotation_forms import rearranged_rotations
from quill.cost import program_cost
from quill.ir import Instr, Program
from quill.noise import parameters
from quill.ops import Opcode
from quill.slots import normalize_amount
from quill.spec import Spec
from quill.transform import live_values
from quill.verify import agrees_on_random, verify

log = logging.getLogger("porcupine.layouts.spare_slots")

FACTORS = (2, 4, 8)
"""The paddings tried: each input in 2, 4 or 8 times the spec's slots."""


@dataclass(frozen=True)
class PackedProducts:
    """A kernel over a padded packing, proven equal to its spec, and what it merged."""

    packing: Packing
    program: Program
    products: tuple[int, int]  # ct*ct products before and after


def packed_products(
    program: Program, spec: Spec, options: Options, budget: Budget | None = None
) -> PackedProducts | None:
    """The cheapest kernel with ``program``'s products packed into the spare slots of a
    padded packing of ``spec``, if one is cheaper than ``program`` by the objective and
    found and proven before ``budget`` runs out."""
    try:
        return _packed(program, spec, options, budget or Budget())
    except OutOfBudget:
        log.info("%s: packing products: stopped (the budget is over)", spec.name)
        return None


def _packed(
    program: Program, spec: Spec, options: Options, budget: Budget
) -> PackedProducts | None:
    budget.check("slot_packing")
    products = _products(program)
    if len(products) < 2:
        return None
    start = rank(program, spec.n, options.table, options.goal, options.max_keys)
    if start is None:
        return None
    ring = parameters(program, spec.n, options.table).ring_dim
    best: tuple[tuple[int, ...], Packing, Program] | None = None
    for factor in sorted(FACTORS, reverse=True):
        budget.check("slot_packing")
        packing = padded(spec, factor)
        if packing is None:
            continue
        # The kernel leans on the tiling only if it rotates values into slots that matter
        # across the spec's edge; such a kernel has nothing to build on here.
        if not agrees_on_random(program, packing.spec):
            continue
        found = _greedy(program, spec.n, packing, options, budget)
        if found is not None and found[0] < start and (best is None or found[0] < best[0]):
            best = (found[0], packing, found[1])
        # More padding leaves more room to merge; less pays only when the padding alone
        # needed a larger ring (a spec of many slots).
        if best is not None and parameters(best[2], best[1].spec.n, options.table).ring_dim <= ring:
            break
    if best is None:
        return None
    _, packing, kernel = best
    # The proofs: the padded spec is the spec, and the kernel (its merges only sampled so
    # far) is the padded spec. None is started past the budget.
    budget.check("verify")
    if not check(packing, spec):
        log.warning("%s: the padded packing %s failed its proof", spec.name, packing.name)
        return None
    budget.check("verify")
    if not verify(kernel, packing.spec).ok:
        log.warning("%s: products packed into spare slots failed verification", spec.name)
        return None
    return PackedProducts(packing, kernel, (len(products), len(_products(kernel))))


def _products(program: Program) -> list[str]:
    return [i.dest for i in program.body if i.opcode.multiplies_ciphertexts]


def _greedy(
    program: Program, n: int, packing: Packing, options: Options, budget: Budget
) -> tuple[tuple[int, ...], Program] | None:
    """Merge pairs of products into ``packing``'s spare slots, the cheapest merge first, as
    long as one pays: the last kernel and its rank, or ``None`` if no merge paid."""
    slots = packing.spec.n
    current, current_rank = program, rank(program, slots, options.table, options.goal)
    merged = False
    while current_rank is not None:
        best: tuple[tuple[int, ...], Program] | None = None
        for first, second in itertools.permutations(_products(current), 2):
            for shift in range(n, slots, n):
                budget.check("slot_packing")
                candidate = _merged(current, first, second, normalize_amount(shift, slots))
                if candidate is None or not agrees_on_random(candidate, packing.spec):
                    continue
                candidate = _hoisted(candidate, slots, options, budget)
                cost = rank(candidate, slots, options.table, options.goal, options.max_keys)
                if cost is not None and (best is None or cost < best[0]):
                    best = (cost, candidate)
                break  # the nearest free copy: farther ones cost the same, in other keys
        if best is None or best[0] >= current_rank:
            break
        current_rank, current = best
        merged = True
        where = parameters(current, slots, options.table).param_set
        log.info("%s: %s: %d ct*ct products, est. %.3f ms", program.name, packing.name,
                 len(_products(current)), program_cost(current, where, options.table))  # fmt: skip
    return (current_rank, current) if merged and current_rank is not None else None


def _hoisted(program: Program, slots: int, options: Options, budget: Budget) -> Program:
    """``program`` with its rotations rearranged where that pays; unproven here (the
    rearrangement is exact algebra, and the kernel kept is proven whole). OutOfBudget when
    the budget ran out meanwhile (the rotations pass then returns ``program`` as it was)."""
    moved = rearranged_rotations(
        program, slots, options.table, options.goal, lambda _: True, options.max_keys,
        budget=budget,
    )  # fmt: skip
    if budget.over:  # the rotations pass stopped (and returned nothing): stop here too
        raise OutOfBudget
    return program if moved is None else moved


def _merged(program: Program, first: str, second: str, shift: int) -> Program | None:
    """``program`` with products ``first`` and ``second`` computed by one product, the
    operands of ``second`` rotated ``shift`` slots past those of ``first``; ``None`` when
    one product depends on the other."""
    if _reads(program, first, second) or _reads(program, second, first):
        return None
    defined = {i.dest: i for i in program.body}
    (a, b), (c, d) = defined[first].args, defined[second].args
    build = Builder(program)
    c_moved = build.op(Opcode.ROT, c, amount=-shift)
    d_moved = c_moved if d == c else build.op(Opcode.ROT, d, amount=-shift)
    left = build.op(Opcode.ADD_CC, a, c_moved)
    right = left if (a, c) == (b, d) else build.op(Opcode.ADD_CC, b, d_moved)
    merged = [
        *build.body,
        Instr(first, Opcode.MUL_CC, (left, right)),
        Instr(second, Opcode.ROT, (first,), shift),
    ]
    rest = [i for i in program.body if i.dest not in (first, second)]
    known = {p.name for p in program.params} | {c.name for c in program.consts}
    return build.finish(program, _in_order(rest + merged, known), program.result)


def _reads(program: Program, value: str, on: str) -> bool:
    """Whether computing ``value`` reads ``on``."""
    return on != value and on in live_values(dataclasses.replace(program, result=value))


def _in_order(body: list[Instr], known: set[str]) -> list[Instr]:
    """``body`` ordered so that every value is defined before it is read, otherwise as
    given (the merged product goes where both products' operands exist)."""
    done = set(known)
    ordered: list[Instr] = []
    waiting = list(body)
    while waiting:
        ready = next(i for i, ins in enumerate(waiting) if all(a in done for a in ins.args))
        ins = waiting.pop(ready)
        ordered.append(ins)
        done.add(ins.dest)
    return ordered
