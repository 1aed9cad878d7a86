"""The pipeline's steps around the core (:mod:`porcupine.pipeline` lists them in order):
lifting a kernel from the smallest instance, the passes over verified kernels, the initial
kernel's bound, pricing, and zero padding. Each returns a verified kernel; none calls back
into the pipeline."""

from __future__ import annotations

import dataclasses
import logging
import time

from porcupine.context import Context
from porcupine.errors import NoiseBudgetError, SynthesisError
from porcupine.layouts.spare_slots import packed_products
from porcupine.options import Options
from porcupine.outcomes import Pass, PassApplied, Source, Stop
from porcupine.passes.fewer_products import fewer_products
from porcupine.passes.rotation_forms import rearranged_rotations
from porcupine.results import Partial, SynthesisResult
from porcupine.search.cegis import meets_lower_bound
from porcupine.staging.instances import elementwise
from porcupine.staging.scale import LiftError, lift
from quill.cost import measures, objective
from quill.ir import Program
from quill.noise import NoiseBudgetExceeded, parameters
from quill.spec import Spec
from quill.stats import Counts, counts

log = logging.getLogger("porcupine")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Rewritten:
    """A verified kernel after the passes, and the passes that changed it."""

    program: Program
    passes: tuple[PassApplied, ...]


def rewrite(ctx: Context, program: Program, *, rotations: bool = True) -> Rewritten:
    """``program`` after the passes over verified kernels, each kept when the objective says
    it pays and the rewrite is verified: products refactored over Z_t
    (:mod:`porcupine.passes.fewer_products`), then, if ``rotations``, rotations rearranged for
    hoisting, flat or separable (:mod:`porcupine.passes.rotation_forms`). A pass that finds nothing
    or is stopped by ``ctx.budget`` leaves the verified kernel it was given."""
    spec, options, budget = ctx.spec, ctx.options, ctx.budget

    def fewer(p: Program) -> Program | None:
        return fewer_products(p, spec.n, options.table, options.goal, ctx.proves, budget=budget)

    def moved(p: Program) -> Program | None:
        keys = options.max_keys
        return rearranged_rotations(
            p, spec.n, options.table, options.goal, ctx.proves, keys, budget=budget
        )

    passes = [(Pass.FEWER_PRODUCTS, fewer)] + ([(Pass.ROTATIONS, moved)] if rotations else [])
    applied: list[PassApplied] = []
    for name, run in passes:
        rewritten = run(program)  # None: nothing cheaper, or the budget stopped the pass
        if rewritten is None:
            continue
        done = _applied(name, program, rewritten)
        log.info("%s: %s: %s -> %s", spec.name, name.value, _shape(done.before), _shape(done.after))
        applied.append(done)
        program = rewritten
    return Rewritten(program=program, passes=tuple(applied))


def _shape(c: Counts) -> str:
    return f"{c.instructions} instructions ({c.ct_ct_mults} ct*ct, {c.rotations} rotations)"


def _applied(name: Pass, before: Program, after: Program) -> PassApplied:
    return PassApplied(name=name, before=counts(before), after=counts(after))


def with_passes(partial: Partial, done: Rewritten) -> Partial:
    """``partial`` rewritten. A rewrite lies outside the sketch (constants it lacks, more
    components), but it is never dearer than the kernel it came from, so a proof that no
    kernel of the sketch is cheaper than that one still holds: ``optimal`` stays."""
    if not done.passes:
        return partial
    return dataclasses.replace(partial, program=done.program, passes=partial.passes + done.passes)


def stopped_if_over(ctx: Context, partial: Partial) -> Partial:
    """``partial``, said to be stopped (not optimal) when the budget ended the passes over it
    before they finished: a pass stopped early leaves its kernel, but not the proof that no
    pass would have made it cheaper."""
    stop = Stop.of(ctx.budget)
    if stop is None or partial.stopped is not None:
        return partial
    scope = f"{partial.scope}; the passes over it were stopped ({stop.value}) before they finished"
    return dataclasses.replace(partial, optimal=False, scope=scope, stopped=stop)


def lifted(ctx: Context, small: Spec, found: SynthesisResult) -> Partial | None:
    """``found`` (a kernel for the instance ``small``) lifted to ``ctx.spec``'s size and
    verified there; ``None`` when it does not lift, is wrong at that size, or needs more
    rotation keys than allowed (then the spec is synthesized at its own size)."""
    spec, options = ctx.spec, ctx.options
    sizes = ", ".join(f"{k}={v}" for k, v in small.params)
    try:
        program = lift(found.program, small, spec)
    except LiftError as e:
        log.info("%s: the kernel found at %s does not lift (%s)", spec.name, sizes, e)
        return None
    if not ctx.proves(program):
        log.info("%s: the kernel found at %s is wrong at %d slots", spec.name, sizes, spec.n)
        return None
    if not within_keys(program, options):
        # A reduction lifts to a longer one (EvalSum over more slots: more keys); at its
        # own size the search keeps to the bound.
        log.info(
            "%s: the kernel lifted from %s needs more than %d rotation keys",
            spec.name,
            sizes,
            options.max_keys,
        )
        return None
    log.info("%s: whole kernel verified (lifted from %s)", spec.name, sizes)
    ctx.budget.keep(spec, program, Source.LIFTED)  # before the bound and the passes, safe
    scope = f"lifted from the {sizes} instance ({found.optimal_scope})"
    # An elementwise kernel is optimal at every size once it is at one: on inputs that
    # repeat with the small period, any kernel for the big size runs as a kernel for the
    # small one (rotations taken mod its size), no dearer, so none is cheaper than this.
    optimal = found.optimal and elementwise(spec) and counts(program).rotations == 0
    if optimal:
        scope = f"{found.optimal_scope}, at {sizes}; an elementwise kernel is optimal at every size"
    elif meets_lower_bound(program, ctx.reference, options):
        optimal = True
        scope = f"lifted from the {sizes} instance; it meets the lower bound at {spec.n} slots"
    return Partial(
        program=program,
        optimal=optimal,
        scope=scope,
        source=Source.LIFTED,
        components=found.components,
        restrictions=found.restrictions,
        candidates=found.candidates,
        counterexamples=found.counterexamples,
        stopped=found.stopped,
        stages=found.stages,
        passes=found.passes,
    )


def initial_kept(ctx: Context, stopped: Stop | None) -> Partial:
    """The initial kernel as the result, when the budget ended the search before it found
    one: verified (the pipeline checks it first), not proven optimal."""
    assert ctx.initial is not None
    log.info("%s: stopped before a kernel was found; keeping the initial kernel", ctx.spec.name)
    scope = f"search {stopped.value if stopped else None} before a proof"
    return Partial(
        program=ctx.initial, optimal=False, scope=scope, source=Source.INITIAL, stopped=stopped
    )


def no_worse_than_initial(ctx: Context, partial: Partial) -> Partial:
    """``partial``, or the (verified) initial kernel when that is cheaper."""
    initial = ctx.initial
    if initial is None or partial.program is initial:
        return partial
    if not cheaper(initial, partial.program, ctx.spec, ctx.options):
        return partial
    log.info("the initial kernel %s is cheaper than the one found; keeping it", initial.name)
    return dataclasses.replace(
        partial,
        program=initial,
        optimal=False,
        scope="not proven",
        source=Source.INITIAL,
        components=0,
        passes=(),
    )


def price(ctx: Context, partial: Partial) -> SynthesisResult:
    """The result: ``partial`` with the parameters its noise needs and its measures there.
    Raises :class:`NoiseBudgetError` past every parameter set, and :class:`SynthesisError`
    past the rotation-key bound (staged, lifted, lowered and initial kernels are not
    searched under it, so it is enforced here, on whatever kernel would be returned)."""
    spec, options = ctx.spec, ctx.options
    try:
        params = parameters(partial.program, spec.n, options.table)
    except NoiseBudgetExceeded as e:
        raise NoiseBudgetError(partial.program, e) from None
    priced = measures(partial.program, params.param_set, options.table)
    if options.max_keys is not None and priced.keys > options.max_keys:
        raise SynthesisError(
            f"{spec.name}: the best kernel found needs {priced.keys} rotation keys, more than "
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
        seconds=time.monotonic() - ctx.start,
        source=partial.source,
        components=partial.components,
        restrictions=partial.restrictions,
        candidates=partial.candidates,
        counterexamples=partial.counterexamples,
        stopped=partial.stopped,
        stages=partial.stages,
        passes=partial.passes,
    )


def pad(ctx: Context, natural: SynthesisResult) -> SynthesisResult:
    """``natural`` (a kernel in the spec's own packing), or, when it is cheaper, the kernel
    with its products packed into the spare slots of a zero-padded packing
    (:mod:`porcupine.layouts.spare_slots`), proven equal to the padded spec. That is a kernel of
    another spec: the natural kernel's proof says nothing of it, so it is not optimal."""
    spec = ctx.spec
    found = packed_products(natural.program, spec, ctx.options, ctx.budget)
    stop = Stop.of(ctx.budget)
    if found is None and stop is not None and natural.stopped is None:  # the pass was stopped
        scope = f"{natural.optimal_scope}; packing its products was stopped ({stop.value})"
        return dataclasses.replace(natural, optimal=False, optimal_scope=scope, stopped=stop)
    if found is None:
        return natural
    ctx.budget.keeper.packed(spec, found.packing)  # verified: kept with its packing
    ctx.budget.keep(found.packing.spec, found.program, natural.source)
    before, after = found.products
    log.info(
        "%s: %d ct*ct products packed into %d (%s)", spec.name, before, after, found.packing.name
    )
    packing_pass = _applied(Pass.SLOT_PACKING, natural.program, found.program)
    partial = Partial(
        program=found.program,
        optimal=False,
        scope=natural.optimal_scope,
        source=natural.source,
        components=natural.components,
        restrictions=natural.restrictions,
        candidates=natural.candidates,
        counterexamples=natural.counterexamples,
        stopped=natural.stopped,
        stages=natural.stages,
        passes=(*natural.passes, packing_pass),
    )
    started = time.monotonic() - natural.seconds
    result = price(dataclasses.replace(ctx.for_spec(found.packing.spec), start=started), partial)
    return dataclasses.replace(result, kernel=spec.name, packing=found.packing)


def cheaper(a: Program, b: Program, spec: Spec, options: Options) -> bool:
    """Whether ``a`` ranks below ``b`` (priced at the ring dimension ``b`` needs) and keeps
    to the rotation-key bound."""
    if not within_keys(a, options):
        return False
    ring = parameters(b, spec.n, options.table).param_set
    return objective(a, ring, options.table, options.goal) < objective(
        b, ring, options.table, options.goal
    )


def within_keys(program: Program, options: Options) -> bool:
    """Whether ``program`` keeps to the rotation-key bound (``--max-rotation-keys``)."""
    return options.max_keys is None or len(counts(program).rotation_keys) <= options.max_keys
