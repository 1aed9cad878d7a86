"""The synthesizer's public API: ``synthesize(spec) -> SynthesisResult``.

A single-stage spec goes straight to the sketch search (:mod:`porcupine.search`). A
multi-step spec (with ``stage`` definitions) is synthesized step by step, each stage against
the slots later steps read, then the last step over the stages as inputs; the stages are
inlined, common subexpressions merged, and the whole kernel verified against the full spec.
A spec whose smallest instance has the same formula (:mod:`porcupine.instances`) is
synthesized there and lifted (:mod:`porcupine.scale`), then verified at its own size; a
flat formula with products of compound factors goes through automatic stages
(:mod:`porcupine.decompose`). Nothing unverified leaves
this module; progress goes to the ``porcupine`` logger.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable

from porcupine.budget import Budget
from porcupine.decompose import decompose
from porcupine.diagnose import why_nothing
from porcupine.errors import NoiseBudgetError, SynthesisError
from porcupine.fewer_products import fewer_products
from porcupine.instances import elementwise, smallest_instance
from porcupine.layout_search import search_layouts
from porcupine.lowering import lower, needs_movement
from porcupine.packings import requested
from porcupine.results import Partial, StageResult, SynthesisResult
from porcupine.rotation_forms import rearranged_rotations
from porcupine.scale import LiftError, lift
from porcupine.search import Engine, Found, Options, SearchResult, meets_lower_bound, search
from porcupine.slot_packing import packed_products
from quill.cost import measures, objective
from quill.ir import Param, Program
from quill.noise import NoiseBudgetExceeded, parameters
from quill.spec import Spec
from quill.stats import counts
from quill.transform import inline, simplify
from quill.verify import Reference, reference, verify

__all__ = [
    "Engine",
    "Found",
    "NoiseBudgetError",
    "Options",
    "StageResult",
    "SynthesisError",
    "SynthesisResult",
    "synthesize",
]

log = logging.getLogger("porcupine")

DIRECT_SLOTS = 64
"""Past this many slots, a search at the spec's own size is hopeless: such specs are
synthesized at a smaller instance (:mod:`porcupine.instances`) and lifted."""


def synthesize(
    spec: Spec,
    *,
    timeout: float | None = None,
    budget: Budget | None = None,
    options: Options | None = None,
    initial: Program | None = None,
    layout: str = "given",
) -> SynthesisResult:
    """Find the cheapest kernel for ``spec`` that the sketch allows, proven equal to it.

    ``timeout`` (seconds) or ``budget`` bounds the whole search; when it runs out the best
    verified kernel so far is returned with ``optimal=False``. ``initial``, a kernel for
    ``spec`` (e.g. a hand-written baseline), is verified and then bounds the search: the
    result is never worse. ``layout="search"`` tries the client packings
    (:mod:`porcupine.layout_search`) and keeps the cheapest; by default the inputs are
    packed as the spec says; ``layout="padded"`` keeps the spec's layout but lets the client
    zero pad each input (:mod:`porcupine.slot_packing`) when the spare slots make the kernel
    cheaper. Raises :class:`SynthesisError` when no kernel is found.
    """
    options = options or Options()
    budget = budget or Budget.seconds(timeout)
    start = time.monotonic()
    if layout == "search":
        return _search_layouts(spec, budget, options, start)
    packing = requested(spec)
    if packing.name != "natural":
        log.info("%s: packed as asked (%s)", spec.name, packing.name)
        found = synthesize(packing.spec, budget=budget, options=options)
        return dataclasses.replace(found, kernel=spec.name, packing=packing)
    if initial is not None and not verify(initial, spec).ok:
        raise SynthesisError(f"the initial kernel {initial.name} is not equal to {spec.name}")
    try:
        small = smallest_instance(spec)
        partial = None if small is None else _lifted(spec, small, budget, options)
        if partial is None:
            partial = _at_size(spec, budget, options, initial)
    except SynthesisError:
        if initial is None or not budget.over:
            raise
        log.info("%s: stopped before a kernel was found; keeping the initial kernel", spec.name)
        partial = Partial(
            initial, False, f"search {budget.stop_reason()} before a proof", "initial", 0, "",
            0, 0, budget.stop_reason(),
        )  # fmt: skip
    if initial is not None and partial.program is not initial:
        partial = _no_worse_than(partial, initial, spec, options)
    result = _result(spec, options, _refactored(spec, options, partial), start)
    return padded_result(spec, options, result, budget) if layout == "padded" else result


def padded_result(
    spec: Spec, options: Options, natural: SynthesisResult, budget: Budget
) -> SynthesisResult:
    """``natural`` (a kernel in the spec's own packing), or, when it is cheaper, the kernel
    with its products packed into the spare slots of a zero-padded packing
    (:mod:`porcupine.slot_packing`), proven equal to the padded spec."""
    start = time.monotonic() - natural.seconds
    found = packed_products(natural.program, spec, options, budget)
    if found is None:
        return natural
    before, after = found.products
    log.info("%s: %d ct*ct products packed into %d (%s)", spec.name, before, after,
             found.packing.name)  # fmt: skip
    partial = Partial(
        found.program,
        False,  # a kernel of another spec: the natural kernel's proof says nothing of it
        f"{natural.optimal_scope}; then its {before} products packed into {after} in the "
        f"spare slots of {found.packing.name} (not searched: no optimality claim)",
        natural.source, natural.components, natural.restrictions, natural.candidates,
        natural.counterexamples, natural.stopped, natural.stages,
    )  # fmt: skip
    result = _result(found.packing.spec, options, partial, start)
    return dataclasses.replace(result, kernel=spec.name, packing=found.packing)


def _proof(spec: Spec) -> Callable[[Program], bool]:
    """The check a pass's rewrite must pass: verification against ``spec``, whose reference
    is evaluated once, when first needed (at 64 slots it is the dearer half of a proof)."""

    @functools.cache
    def ref() -> Reference:
        return reference(spec)

    def verified(candidate: Program) -> bool:
        return verify(candidate, ref()).ok

    return verified


@dataclasses.dataclass(frozen=True)
class _Rewritten:
    """A verified kernel after the passes, and what they did to it."""

    program: Program
    steps: tuple[str, ...]


def _passes(
    spec: Spec, options: Options, program: Program, *, rotations: bool = True
) -> _Rewritten:
    """``program`` after the passes over verified kernels, each kept when the objective says
    it pays and the rewrite is verified: products refactored over Z_t
    (:mod:`porcupine.fewer_products`), then, if ``rotations``, rotations rearranged for
    hoisting, flat or separable (:mod:`porcupine.rotation_forms`)."""
    steps: list[str] = []
    proof = _proof(spec)
    fewer = fewer_products(program, spec.n, options.table, options.goal, proof)
    if fewer is not None:
        log.info("%s: %d ct*ct products refactored into %d over Z_t", spec.name,
                 counts(program).ct_ct_mults, counts(fewer).ct_ct_mults)  # fmt: skip
        program = fewer
        steps.append("refactored into fewer products")
    moved = None
    if rotations:
        moved = rearranged_rotations(
            program, spec.n, options.table, options.goal, proof, options.max_keys
        )
    if moved is not None:
        log.info("%s: rotations rearranged for hoisting (%d -> %d)", spec.name,
                 counts(program).rotations, counts(moved).rotations)  # fmt: skip
        program = moved
        steps.append("rotations rearranged")
    return _Rewritten(program, tuple(steps))


def _refactored(spec: Spec, options: Options, partial: Partial) -> Partial:
    """``partial`` after the passes (:func:`_passes`)."""
    done = _passes(spec, options, partial.program)
    if not done.steps:
        return partial
    return _outside_sketch(dataclasses.replace(partial, program=done.program), done.steps)


def _outside_sketch(partial: Partial, steps: tuple[str, ...]) -> Partial:
    """``partial`` (already rewritten) with the passes' steps in its scope. A rewrite lies
    outside the sketch (constants it lacks, more components), but it is never dearer than
    the kernel it came from, so a proof that no kernel of the sketch is cheaper than that
    one (or, for the formula written out, than the rewrite itself) still holds."""
    scope = f"{partial.scope}; then {' and '.join(steps)}" + (
        " (outside the sketch; no kernel in it is cheaper)" if partial.optimal else ""
    )
    return dataclasses.replace(partial, scope=scope)


def _search_layouts(spec: Spec, budget: Budget, options: Options, start: float) -> SynthesisResult:
    best, tried = search_layouts(spec, budget, options)
    if best.result is None:
        reasons = "; ".join(f"{t.packing.name}: {t.error}" for t in tried)
        raise SynthesisError(f"{spec.name}: no packing gave a kernel ({reasons})")
    packing = None if best.packing.name == "natural" else best.packing
    return dataclasses.replace(
        best.result,
        kernel=spec.name,
        packing=packing,
        layouts=tuple(t.summary() for t in tried),
        seconds=time.monotonic() - start,
    )


def _at_size(spec: Spec, budget: Budget, options: Options, initial: Program | None) -> Partial:
    """Synthesize ``spec`` at its own size: by its stages, by automatic ones, or whole."""
    if spec.stages:
        return _multi_step(spec, budget, options)
    if needs_movement(spec) and (lowered := _lowered(spec)) is not None:
        return lowered
    staged = decompose(spec)
    if staged is not None:
        return _decomposed(spec, staged, budget, options, initial)
    # The formula written out is a verified kernel from the start: whatever the search
    # finds in the time given must beat it, and when it finds nothing it is the result.
    # Its products refactored first, so that the search has the cheaper bound to beat. Not
    # its rotations: the search stops a size after the first that holds a kernel cheaper
    # than the bound, and the cheapest arrangement of rotations leaves it none to find (gy
    # then searched its whole 120 s, not 10 s); they are rearranged after the search.
    direct = _direct(spec) if initial is None else None
    rewritten = None if direct is None else _passes(spec, options, direct, rotations=False)
    fallback = None if rewritten is None else rewritten.program
    left = budget.remaining_ms()  # the search stops a second early: what follows it must fit
    searched = budget if left is None else budget.within(max(0.0, left / 1000 - AFTER_SEARCH_S))
    found = search(spec, searched, options, initial, fallback=fallback)
    partial = _from_search(spec, found, budget, initial, options.max_keys)
    if fallback is not None and partial.program is fallback:
        log.info("%s: nothing beat the formula as written", spec.name)
        partial = dataclasses.replace(partial, source="direct")
        if rewritten is not None and rewritten.steps:
            partial = _outside_sketch(partial, rewritten.steps)
    return partial


def _lowered(spec: Spec) -> Partial | None:
    """The direct kernel with masks (:mod:`porcupine.lowering`), verified, for a spec whose
    reads need data movement: the sketch has no per-slot masks."""
    program = _direct(spec)
    if program is None:
        return None
    log.info("%s: reads need data movement: a direct kernel with masks", spec.name)
    scope = "a direct kernel with masks; the sketch has no per-slot masks, so none was searched"
    return Partial(program, False, scope, "lowered", len(program.body), "", 0, 0, None)


def _direct(spec: Spec) -> Program | None:
    """The formula written out as a kernel (:func:`porcupine.lowering.lower`), if verified."""
    program = lower(spec)
    return program if program is not None and verify(program, spec).ok else None


AFTER_SEARCH_S = 1.0
"""Of a deadline, the seconds kept from a search for the passes and checks after it: a
search stopped at the deadline overran it by up to a second on a loaded machine, and the
command line ends work a second past its deadline, losing the verified kernel it held."""

STEP_SHARE = 0.8
"""Of the time left, the share a step of a multi-step spec may search, split evenly among
the steps still to come; the rest is kept for composing, verifying and lifting. A step that
finds nothing in its share takes its formula written out (:func:`_direct`), so one hard
step cannot leave the whole kernel without a result."""


def _step_kernel(step: Spec, found: SearchResult, budget: Budget, keys: int | None) -> Program:
    """The step's kernel: the search's, or, when only its share of the time ran out, the
    step's formula written out."""
    if found.best is not None:
        return found.best.program
    if found.stopped == "timeout" and not budget.cancelled:  # the whole budget may be over
        direct = _direct(step)
        if direct is not None:
            log.info("step %s: nothing found in its share of the time; the formula as written",
                     step.name)  # fmt: skip
            return direct
    raise _nothing_found(step, found, budget, keys)


def _from_search(
    spec: Spec,
    found: SearchResult,
    budget: Budget,
    initial: Program | None,
    keys: int | None = None,  # the rotation-key bound searched under
) -> Partial:
    if found.best is None:
        raise _nothing_found(spec, found, budget, keys)
    source = "initial" if initial is not None and found.best.program is initial else "synthesized"
    return Partial(
        found.best.program, found.optimal, found.scope, source, found.best.components,
        found.restrictions.describe(), found.candidates, found.counterexamples, found.stopped,
    )  # fmt: skip


def _no_worse_than(partial: Partial, initial: Program, spec: Spec, options: Options) -> Partial:
    """``partial``, or the (verified) initial kernel when that is cheaper."""
    if _cheaper(initial, partial.program, spec, options):
        log.info("the initial kernel %s is cheaper than the one found; keeping it", initial.name)
        return Partial(
            initial, False, "not proven", "initial", 0, partial.restrictions,
            partial.candidates, partial.counterexamples, partial.stopped, partial.stages,
        )  # fmt: skip
    return partial


def _result(spec: Spec, options: Options, partial: Partial, start: float) -> SynthesisResult:
    try:
        params = parameters(partial.program, spec.n, options.table)
    except NoiseBudgetExceeded as e:
        raise NoiseBudgetError(partial.program, e) from None
    priced = measures(partial.program, params.param_set, options.table)
    keys = priced.keys
    if options.max_keys is not None and keys > options.max_keys:
        # Staged, lifted, lowered and initial kernels are not searched under the key bound,
        # so it is enforced here, on whatever kernel would be returned.
        raise SynthesisError(
            f"{spec.name}: the best kernel found needs {keys} rotation keys, more than "
            f"--max-rotation-keys {options.max_keys}; allow more keys or more time"
        )
    return SynthesisResult(
        kernel=spec.name,
        program=partial.program,
        optimal=partial.optimal,
        optimal_scope=partial.scope,
        measures=priced,
        params=params,
        options=options,
        seconds=time.monotonic() - start,
        source=partial.source,
        components=partial.components,
        restrictions=partial.restrictions,
        candidates=partial.candidates,
        counterexamples=partial.counterexamples,
        stopped=partial.stopped,
        stages=partial.stages,
    )


def _nothing_found(
    spec: Spec, found: SearchResult, budget: Budget, keys: int | None = None
) -> SynthesisError:
    if found.stopped == "interrupted":
        return SynthesisError(f"{spec.name}: interrupted before a verified kernel was found")
    if found.stopped == "timeout":
        return SynthesisError(
            f"{spec.name}: no verified kernel within the timeout; allow more time (--timeout)"
        )
    if found.scope.startswith("the solver gave up"):
        return SynthesisError(f"{spec.name}: no kernel found: {found.scope}")
    most = max(found.sizes_exhausted, default=0)
    why = why_nothing(reference(spec), found.restrictions, most)
    if keys is not None:  # the bound, not the sketch, may be what rules every kernel out
        why = f"no kernel with at most {keys} rotation keys was found ({why})"
    return SynthesisError(f"{spec.name}: {why}")


def _multi_step(spec: Spec, budget: Budget, options: Options) -> Partial:
    """Synthesize each stage over the stages it reads, in dependency order, then the output
    over the stages; inline and simplify, and verify the whole against ``spec``."""
    params = tuple(Param(d.name, d.kind) for d in spec.inputs)
    steps = {s.name: spec.stage_spec(s.name).with_stages_as_inputs() for s in spec.stages}
    steps[spec.output.name] = spec.with_stages_as_inputs()
    composed: dict[str, Program] = {}  # step -> its program over the spec's own inputs
    stages: list[StageResult] = []
    candidates = counterexamples = components = 0
    restrictions = ""
    stopped: str | None = None
    order = [s.name for s in spec.stages] + [spec.output.name]  # stages are in order
    for k, name in enumerate(order):
        step = steps[name]
        log.info("step %s: %d slots matter", name, len(step.output_slots()))
        found = search(step, budget.share(STEP_SHARE / (len(order) - k)), options)
        kernel = _step_kernel(step, found, budget, options.max_keys)
        optimal = found.optimal and found.best is not None
        stages.append(StageResult(name, kernel, optimal))
        reads = {d.name: composed[d.name] for d in step.inputs if d.name in composed}
        composed[name] = inline(kernel, reads, params, spec.name)
        candidates += found.candidates
        counterexamples += found.counterexamples
        c = counts(kernel)
        components += c.instructions - c.rotations
        restrictions = found.restrictions.describe()
        stopped = stopped or (found.stopped if budget.over else None)  # not a step's share
    program = simplify(composed[spec.output.name])
    verdict = verify(program, spec)
    if not verdict.ok:  # each step is verified; this guards the composition
        raise SynthesisError(f"{spec.name}: composed kernel failed verification: {verdict}")
    scope = (
        "each step proven optimal on its own; the composition is not"
        if all(s.optimal for s in stages)
        else "not proven"
    )
    return Partial(
        program, False, scope, "synthesized", components, restrictions, candidates,
        counterexamples, stopped, tuple(stages),
    )  # fmt: skip


DIRECT_COMPONENTS = 6
"""A flat spec whose staged kernel has at most this many components is also searched
whole, seeded with that kernel: small enough for a proof, and cheaper kernels may cross
the stages (Roberts cross: 5 components)."""

WHOLE_SECONDS = 60.0
"""How long that whole search may take; past it the staged kernel stands, unproven."""


def _decomposed(
    spec: Spec, staged: Spec, budget: Budget, options: Options, initial: Program | None
) -> Partial:
    """Synthesize ``spec`` through its automatic stages; when the kernel is small, search
    the flat spec too, seeded with it, for a cheaper kernel or a proof."""
    log.info(
        "%s: synthesizing through automatic stages %s", spec.name, [s.name for s in staged.stages]
    )
    partial = _multi_step(staged, budget, options)
    if not verify(partial.program, spec).ok:  # the stages are checked equal; this guards it
        raise SynthesisError(f"{spec.name}: the staged kernel does not compute the spec")
    log.info("%s: whole kernel verified (staged, %d instructions)", spec.name,
             len(partial.program.body))  # fmt: skip
    if partial.components > DIRECT_COMPONENTS or budget.over:
        return partial
    log.info("%s: searching the whole formula below the staged kernel", spec.name)
    seed = (
        initial
        if initial is not None and _cheaper(initial, partial.program, spec, options)
        else partial.program
    )
    found = search(spec, budget.within(WHOLE_SECONDS), options, seed)
    if found.stopped == "timeout" and not budget.expired:
        log.info("%s: the whole search did not finish in %.0f s", spec.name, WHOLE_SECONDS)
        found = dataclasses.replace(found, stopped=None)  # the command's budget is not over
    whole = _from_search(spec, found, budget, seed, options.max_keys)
    if whole.program is partial.program:
        return dataclasses.replace(whole, source="synthesized", stages=partial.stages)
    return whole


def _cheaper(a: Program, b: Program, spec: Spec, options: Options) -> bool:
    """Whether ``a`` ranks below ``b`` (priced at the ring dimension ``b`` needs) and keeps
    to the rotation-key bound."""
    if not _within_keys(a, options):
        return False
    ring = parameters(b, spec.n, options.table).param_set
    return objective(a, ring, options.table, options.goal) < objective(
        b, ring, options.table, options.goal
    )


def _within_keys(program: Program, options: Options) -> bool:
    """Whether ``program`` keeps to the rotation-key bound (``--max-rotation-keys``)."""
    return options.max_keys is None or len(counts(program).rotation_keys) <= options.max_keys


def _lifted(spec: Spec, small: Spec, budget: Budget, options: Options) -> Partial | None:
    """Synthesize ``small``, lift the kernel to ``spec``'s size and verify it there;
    ``None`` when it does not lift or is wrong at that size (then ``spec`` is synthesized
    at its own size)."""
    sizes = ", ".join(f"{k}={v}" for k, v in small.params)
    log.info("%s: synthesizing at %s (%d slots) and lifting to %d slots", spec.name, sizes,
             small.n, spec.n)  # fmt: skip
    try:
        found = synthesize(small, budget=budget, options=options)
    except SynthesisError as e:  # at its own size the formula written out may still be one
        log.info("%s: nothing found at %s (%s)", spec.name, sizes, e)
        return None
    try:
        program = lift(found.program, small, spec)
    except LiftError as e:
        log.info("%s: the kernel found at %s does not lift (%s)", spec.name, sizes, e)
        return None
    ref = reference(spec)  # evaluated once: for the proof and for the lower bound
    if not verify(program, ref).ok:
        log.info("%s: the kernel found at %s is wrong at %d slots", spec.name, sizes, spec.n)
        return None
    if not _within_keys(program, options):
        # A reduction lifts to a longer one (EvalSum over more slots: more keys); at its
        # own size the search keeps to the bound.
        log.info("%s: the kernel lifted from %s needs more than %d rotation keys", spec.name,
                 sizes, options.max_keys)  # fmt: skip
        return None
    log.info("%s: whole kernel verified (lifted from %s)", spec.name, sizes)
    scope = f"lifted from the {sizes} instance ({found.optimal_scope})"
    # An elementwise kernel is optimal at every size once it is at one: on inputs that
    # repeat with the small period, any kernel for the big size runs as a kernel for the
    # small one (rotations taken mod its size), no dearer, so none is cheaper than this.
    optimal = found.optimal and elementwise(spec) and counts(program).rotations == 0
    if optimal:
        scope = f"{found.optimal_scope}, at {sizes}; an elementwise kernel is optimal at every size"
    elif meets_lower_bound(program, ref, options):
        optimal = True
        scope = f"lifted from the {sizes} instance; it meets the lower bound at {spec.n} slots"
    return Partial(
        program, optimal, scope, "lifted", found.components, found.restrictions,
        found.candidates, found.counterexamples, found.stopped, found.stages,
    )  # fmt: skip
