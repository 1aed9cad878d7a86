"""Counterexample-guided search for the cheapest verified kernel in the local-rotate sketch.

For L = 1, 2, ... components: solve the sketch under what the engine has learned
(:mod:`porcupine.search.refine`), verify each candidate exactly against the spec, learn from a
wrong one, and once a candidate verifies demand a strictly cheaper one, until the solver
answers UNSAT. Before the arithmetic, each bound is tried on the arithmetic-free
abstractions alone, which refute most hopeless sizes quickly. With no kernel yet, the
search climbs rising caps on the objective's first term, so the first kernel it finds is
already cheap.

It stops ``extra_components`` sizes after the first size that had a kernel, when a size's
:func:`~porcupine.search.bounds.lower_bound` cannot beat the best kernel (then no larger size can
either), when the best kernel meets that bound, or when the budget runs out; it always
returns the best verified kernel so far. Sizes below the fewest components any kernel has
(:func:`~porcupine.search.bounds.fewest_components`) are not searched, and a kernel that meets the
bound of every size ends its own size at once.

When is UNSAT a proof? The constraints are a relaxation: arithmetic mod 2^width stands for
arithmetic mod T. A program correct over Z_T satisfies them as long as its integer
coefficients and the spec's cannot reach T (then "equal mod T" means "equal over the
integers"): :func:`~porcupine.search.coefficients.coefficient_bound` checks that, and only
then does the result say ``optimal``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import z3

from porcupine.budget import Budget, OutOfBudget
from porcupine.options import Engine, Options
from porcupine.outcomes import Stop
from porcupine.search.bounds import Floor, fewest_components, floor_for, lower_bound
from porcupine.search.coefficients import coefficient_bound, spec_norm
from porcupine.search.encode import SketchEncoding
from porcupine.search.refine import ExactSlots, NarrowExamples, Refiner
from porcupine.search.restrictions import Restrictions, axis_rotations, derive
from porcupine.search.sketch import Space, space_for, to_quill
from quill.cost import DEFAULT_TABLE, CostTable, Objective, measures, objective, row_us
from quill.ir import Program
from quill.noise import for_depth
from quill.params import ParameterSet
from quill.slots import T
from quill.spec import Spec
from quill.stats import counts
from quill.verify import Reference, reference, verify

log = logging.getLogger("porcupine.search.cegis")


@dataclass(frozen=True, kw_only=True)
class Found:
    """A verified kernel and its objective (a :func:`quill.cost.rank` tuple)."""

    program: Program
    rank: tuple[int, ...]
    components: int


@dataclass(frozen=True, kw_only=True)
class SearchResult:
    """What a search established."""

    best: Found | None
    optimal: bool
    scope: str  # what the optimality proof covers, or why there is none (for people)
    restrictions: Restrictions
    sizes_exhausted: tuple[int, ...]
    candidates: int
    counterexamples: int
    stopped: Stop | None  # the budget ended the search
    gave_up: bool = False  # the solver answered "unknown" with budget left


@dataclass
class _State:
    ref: Reference
    floor: Floor  # the sketch's lower bound, read from the spec once
    space: Space
    ring_dim: ParameterSet  # what kernels are priced at (ring_for)
    row: dict[str, int]
    options: Options
    budget: Budget
    refiner: Refiner
    best: Found | None = None
    first_size: int | None = None
    candidates: int = 0
    counterexamples: int = 0
    exhausted: list[int] = field(default_factory=list)


def ring_for(restrictions: Restrictions, n: int, table: CostTable = DEFAULT_TABLE) -> ParameterSet:
    """The parameter set the search prices kernels at: the one their depth needs."""
    return for_depth(restrictions.max_depth, n, table)


AXIS_SECONDS = 20.0
"""At most this long on the axis-step sketch of an image spec before the full one."""


def search(
    spec: Spec,
    budget: Budget,
    options: Options,
    initial: Program | None = None,
    rotations: tuple[int, ...] | None = None,
    fallback: Program | None = None,
    *,
    ref: Reference | None = None,
) -> SearchResult:
    """The search for a single-stage spec (see the module docstring). ``rotations``
    replaces the derived rotation amounts. ``initial``, a verified kernel, bounds the cost
    and says a kernel of its size exists; ``fallback``, a verified kernel too (the formula
    written out), only bounds the cost: the sizes are walked as without it, and it is the
    result when nothing cheaper is found.

    An image spec is first searched with whole-row and whole-column steps only (for a
    separable stencil they are all it needs, and the sketch is half the size: a 3x3 blur
    took 1 to 100 s with the diagonals too, against 1.4 s without); the kernel found
    seeds the full search, which then only has to rule out cheaper ones. ``ref``: the
    spec's reference when the caller has it (evaluating it is the dearer half of a proof)."""
    ref = reference(spec) if ref is None else ref
    restrictions = derive(ref)
    limit = spec.hints.components or options.max_components
    if rotations is not None:
        restrictions = dataclasses.replace(restrictions, rotations=rotations)
    elif (axis := axis_rotations(ref, restrictions.rotations)) is not None:
        quick = search(spec, budget.within(AXIS_SECONDS), options, initial, axis, fallback, ref=ref)
        if quick.best is not None and quick.best.program is not fallback:
            initial = quick.best.program
            # Diagonal steps make kernels shorter, not longer: the full sketch is searched
            # up to the axis kernel's size (the optimality scope says so). Without this cap,
            # the latency objective, whose lower bound cannot rule out larger sizes, spent
            # its whole budget on gx at L = 5 (over 60 s; 23 s with the cap, same kernel).
            limit = min(limit, quick.best.components)
        if budget.cancelled:
            return quick
    space = space_for(spec, restrictions)
    ring_dim = ring_for(restrictions, spec.n, options.table)
    row = row_us(options.table, ring_dim)
    engine = options.engine.resolve(ref)
    refiner: Refiner = (
        ExactSlots(ref, options.width)
        if engine is Engine.EXACT
        else NarrowExamples(ref, options.width, options.seed)
    )
    floor = floor_for(ref, restrictions, in_sketch=True)
    st = _State(ref, floor, space, ring_dim, row, options, budget, refiner)
    if initial is not None and _within_keys(initial, st):
        st.best = _known(initial, st)
        st.first_size = st.best.components  # a kernel of that size exists
        log.info("initial bound from %s: %s", initial.name, _describe(initial, st))
    elif fallback is not None and _within_keys(fallback, st):
        st.best = _known(fallback, st)
        log.info(
            "bound from the formula as written, a verified kernel: %s", _describe(fallback, st)
        )
    log.info(
        "sketch: %s; %s engine, %d-bit",
        restrictions.describe(),
        engine.value,
        options.width,
    )
    # Pricing the bound the first time runs its exhaustive terms (stencils, splats: up to
    # seconds, with no budget checks): not for a search stopped before it starts.
    fewest = limit + 1 if budget.over else fewest_components(floor)
    sound = True
    complete = True  # every size searched was exhausted
    beyond = False  # a lower bound showed that no larger size can do better
    for size in range(1, limit + 1):
        if budget.over:
            break
        if st.first_size is not None and size > st.first_size + options.extra_components:
            break
        if st.best is not None and lower_bound(floor, size, row, options.goal) >= st.best.rank:
            log.info("L=%d: cannot beat the best kernel (lower bound); done", size)
            beyond = True
            break
        if size < fewest:
            log.info("L=%d: no kernel has so few components (lower bound)", size)
            st.exhausted.append(size)
            continue
        if st.best is not None and (
            lower_bound(floor, size, row, options.goal, exact=True) >= st.best.rank
        ):
            # This size alone: a larger one may still hold a cheaper kernel (gx's wide
            # sketch: none of 3 or 4 components beats 784 us, one of 6 costs 776).
            log.info("L=%d: no kernel of this size beats the best kernel (lower bound)", size)
            st.exhausted.append(size)
            continue
        sound &= coefficient_bound(restrictions, size) + spec_norm(ref) < T
        log.info("L=%d: searching%s", size, _below(st))
        if not _exhaust(st, size):
            complete = False
            break
        st.exhausted.append(size)
        # Sizes up to this one are exhausted; every larger one is bounded from below. (The
        # best kernel meeting the bound at its own size proves nothing when it has more
        # components than the sizes searched: a size between may hold a cheaper kernel.)
        if st.best is not None and lower_bound(floor, size + 1, row, options.goal) >= st.best.rank:
            log.info("no larger size can beat the best kernel (lower bound): optimal")
            beyond = True
            break
    stopped = Stop.of(budget)
    if stopped is None and (st.best is None or st.best.program is not fallback):
        _polish_keys(st, initial)
    last = max(st.exhausted, default=0)
    optimal = st.best is not None and stopped is None and sound and complete
    # A proof covers the sizes searched: a larger best kernel (an initial or fallback one
    # nothing beat) is optimal only when the lower bound rules out every size.
    optimal = optimal and st.best is not None and (beyond or st.best.components <= last)
    sketch = f"in the sketch ({restrictions.describe()})"
    if optimal and beyond:
        scope = f"no cheaper kernel of any size {sketch}"
    elif optimal:
        scope = f"no cheaper kernel with at most {last} components {sketch}"
    elif st.best is not None and stopped is None and complete and st.best.components > last:
        scope = (
            f"nothing with at most {last} components {sketch} beats it; it has "
            f"{st.best.components}, so it is not proven optimal"
        )
    elif stopped is Stop.INTERRUPTED:
        scope = "search interrupted before a proof"
    elif stopped is not None:
        scope = "search stopped by the timeout before a proof"
    elif not complete:
        scope = f"the solver gave up (unknown) at L={last + 1}"
    else:
        scope = "the coefficient bound is too large for the narrow search to be a proof"
    return SearchResult(
        best=st.best,
        optimal=optimal,
        scope=scope,
        restrictions=restrictions,
        sizes_exhausted=tuple(st.exhausted),
        candidates=st.candidates,
        counterexamples=st.counterexamples,
        stopped=stopped,
        gave_up=stopped is None and not complete,
    )


def meets_lower_bound(
    program: Program, ref: Reference, options: Options, *, in_sketch: bool = False
) -> bool:
    """Whether ``program`` (a verified kernel for ``ref``'s spec) costs what any kernel for
    the spec must (:func:`porcupine.search.bounds.lower_bound`): then it is optimal outright,
    whatever the sketch, as a lifted kernel can be without a search at its own size. With
    ``in_sketch``, what any kernel of the spec's sketch must (the bound the search prunes
    with): then :func:`search` given it ends at once."""
    spec = ref.spec
    restrictions = derive(ref)
    ring = ring_for(restrictions, spec.n, options.table)
    row = row_us(options.table, ring)
    # Components 0: the floor over every kernel, whatever its size (least_components).
    floor = floor_for(ref, restrictions, in_sketch=in_sketch)
    least = lower_bound(floor, 0, row, options.goal)
    return objective(program, ring, options.table, options.goal) <= least


def _known(program: Program, st: _State) -> Found:
    """A verified kernel given to the search, as if found: its rank and components."""
    c = counts(program)
    rank = objective(program, st.ring_dim, st.options.table, st.options.goal)
    return Found(program=program, rank=rank, components=c.instructions - c.rotations)


def _within_keys(program: Program, st: _State) -> bool:
    """Does ``program`` respect ``--max-rotation-keys`` (and so may bound the search)?"""
    bound = st.options.max_keys
    return bound is None or measures(program, st.ring_dim, st.options.table).keys <= bound


def _exhaust(st: _State, size: int) -> bool:
    """Exhaust sketch size ``size`` below the best kernel's cost, recording every better
    verified kernel. True once the solver says UNSAT, False when the budget ended it."""
    try:
        return _exhaust_size(st, size)
    except OutOfBudget:
        return False


def _exhaust_size(st: _State, size: int) -> bool:
    enc = SketchEncoding(st.space, size, st.row, st.options.goal, st.options.seed, st.budget)
    base: list[Any] = []
    if st.options.max_keys is not None:
        base.append(enc.max_keys(st.options.max_keys))
    # With no kernel yet, look for one under rising caps: at a low cap the abstractions
    # refute quickly, and the first kernel found is already cheap, instead of descending
    # from whatever expensive kernel the solver happens to find first.
    caps = iter(_caps(st, size) if st.best is None else [])
    cap = next(caps, None)
    if cap is not None:  # one query shows most sizes hopeless at every cap at once
        hopeless = enc.check([*base, *st.refiner.abstractions(enc)], st.budget)
        if hopeless == z3.unsat:
            log.info("L=%d: exhausted", size)
            return True
        if hopeless == z3.unknown:
            return False
    while True:
        bound = list(base)
        if st.best is not None:
            bound.append(enc.cheaper(st.best.rank))
        if cap is not None:
            bound.append(enc.at_most(0, cap))
        found = _next_kernel(st, enc, bound, st.budget)
        if found == z3.unknown:
            return False
        if found == z3.unsat:
            if cap is not None:
                cap = next(caps, None)
                continue
            log.info("L=%d: exhausted", size)
            return True
        assert isinstance(found, Program)
        rank = objective(found, st.ring_dim, st.options.table, st.options.goal)
        st.best = Found(program=found, rank=rank, components=size)
        st.budget.keep(st.ref.spec, found, "synthesized")  # safe from a forced stop
        if st.first_size is None:
            st.first_size = size
        log.info("L=%d: verified kernel: %s", size, _describe(found, st))
        if lower_bound(st.floor, 0, st.row, st.options.goal) >= rank:
            log.info("L=%d: the kernel meets the lower bound of every size", size)
            return True  # nothing cheaper at this size or any other
        cap = None


def _next_kernel(
    st: _State, enc: SketchEncoding, bound: list[Any], budget: Budget
) -> Program | z3.CheckSatResult:
    """The next verified kernel of ``enc`` under ``bound``, or the solver's UNSAT (none
    exists) or UNKNOWN (out of budget). Wrong candidates teach the engine as they come."""
    blocked: list[Any] = []
    cheap_first = True  # without arithmetic, most hopeless bounds are UNSAT at once
    while True:
        if budget.over:
            return z3.unknown
        facts = [*bound, *blocked, *st.refiner.abstractions(enc)]
        if cheap_first:
            result = enc.check(facts, budget)
            if result != z3.sat:
                return result
            cheap_first = False
        result = enc.check([*facts, *st.refiner.constraints(enc)], budget)
        if result != z3.sat:
            return result
        filled = enc.filled()
        program = to_quill(filled, st.space, st.ref.spec.name)
        st.candidates += 1
        verdict = verify(program, st.ref)
        if verdict.ok:
            return program
        st.counterexamples += 1
        log.debug("L=%d: candidate %d refuted", enc.L, st.candidates)
        if not st.refiner.learn(program, verdict):
            blocked.append(enc.block(filled))


POLISH_SECONDS = 5.0
"""How long the search looks for fewer rotation keys at the optimal rank."""


def _polish_keys(st: _State, initial: Program | None) -> None:
    """Among kernels of the best kernel's size and rank, look for fewer rotation keys
    (a tie-break, so only within :data:`POLISH_SECONDS`)."""
    best = st.best
    if best is None or best.program is initial:
        return
    keys = measures(best.program, st.ring_dim, st.options.table).keys
    budget = st.budget.within(POLISH_SECONDS)
    enc = SketchEncoding(
        st.space, best.components, st.row, st.options.goal, st.options.seed, budget
    )
    while keys > 1:
        try:
            bound = [enc.same_rank(best.rank), enc.max_keys(keys - 1)]
            found = _next_kernel(st, enc, bound, budget)
        except OutOfBudget:
            return
        if not isinstance(found, Program):
            return
        keys = measures(found, st.ring_dim, st.options.table).keys
        st.best = best = Found(program=found, rank=best.rank, components=best.components)
        log.info("fewer rotation keys: %s", _describe(found, st))


def _caps(st: _State, size: int) -> list[int]:
    """Rising caps on the objective's first term for a first kernel of ``size`` components:
    one per key-switch count under ``INSTRUCTIONS``, growing latencies under ``LATENCY``."""
    lb = lower_bound(st.floor, size, st.row, st.options.goal)[0]
    if st.options.goal is Objective.INSTRUCTIONS:
        return list(range(lb, 2 * size + 2))
    return [round(lb * 1.5**k) for k in range(12)]


def _below(st: _State) -> str:
    return "" if st.best is None else f" below {_describe(st.best.program, st)}"


def _describe(program: Program, st: _State) -> str:
    """The measures the objective compares, for progress messages."""
    m = measures(program, st.ring_dim, st.options.table)
    latency = f"{m.latency_ms:.3f} ms"
    if st.options.goal is Objective.LATENCY:
        return f"{latency}, {m.keys} rotation keys"
    return f"{m.key_switches} key switches, {m.instructions} instructions, {m.keys} keys"
