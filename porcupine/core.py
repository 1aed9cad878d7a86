"""The pipeline's core step (:mod:`porcupine.pipeline`): a verified kernel for a spec at its
own size, by the first of these that applies:

* **stages**: the spec's own ``stage`` definitions, each searched over the slots later
  steps read, then composed, simplified and verified whole;
* **direct lowering**: a spec whose reads need data movement gets its formula written out
  with masks (:mod:`porcupine.lowering`): the sketch has no per-slot masks;
* **decomposition**: a flat formula with products of compound factors goes through
  automatic stages (:mod:`porcupine.staging.decompose`), and, when small, a whole search below them;
* **search**: the sketch search (:mod:`porcupine.search.cegis`), bounded by the formula written
  out (with its products refactored) so that it always has a verified kernel to return.
"""

from __future__ import annotations

import dataclasses
import logging

from porcupine.budget import Budget
from porcupine.context import Context
from porcupine.errors import SynthesisError
from porcupine.lowering import lower, needs_movement
from porcupine.outcomes import Source, Stop
from porcupine.results import Partial, StageResult
from porcupine.search.cegis import SearchResult, meets_lower_bound, search
from porcupine.search.diagnose import why_nothing
from porcupine.staging.decompose import decompose
from porcupine.steps import Rewritten, cheaper, rewrite, with_passes
from quill.ir import Param, Program
from quill.spec import Spec
from quill.stats import counts
from quill.transform import inline, simplify
from quill.verify import verify

log = logging.getLogger("porcupine")


def core(ctx: Context) -> Partial:
    """Synthesize ``ctx.spec`` at its own size: by its stages, by direct lowering, by
    automatic stages, or by the search (see the module docstring)."""
    spec = ctx.spec
    if spec.stages:
        return multi_step(ctx)  # a step out of time takes its formula written out
    if needs_movement(spec) and (lowered := _lowered(ctx)) is not None:
        return lowered
    # The formula written out is a verified kernel from the start, kept before any search:
    # a stop at any point still has it to return. (An initial kernel plays that part.)
    written = direct_kernel(ctx) if ctx.initial is None else None
    if written is not None:
        ctx.budget.keep(spec, written, Source.DIRECT)
    try:
        staged = decompose(spec, ctx.reference)
        if staged is not None:
            return _decomposed(ctx, staged, written)
        return _searched(ctx, written)
    except SynthesisError:
        if written is None or not ctx.budget.over:
            raise
        log.info("%s: stopped before a kernel was found; the formula as written", spec.name)
        stop = Stop.of(ctx.budget)
        scope = f"search {stop.value if stop else None} before a proof"
        return Partial(
            program=written, optimal=False, scope=scope, source=Source.DIRECT, stopped=stop
        )


def _searched(ctx: Context, direct: Program | None) -> Partial:
    """The sketch search, bounded by ``direct`` (the formula written out, verified, when
    there is no initial kernel), and the passes that prepare that bound."""
    spec, options = ctx.spec, ctx.options
    # Whatever the search finds in the time given must beat the formula written out, and
    # when it finds nothing that is the result. Its products refactored first, so that the
    # search has the cheaper bound to beat. Not its rotations: the search stops a size after
    # the first that holds a kernel cheaper than the bound, and the cheapest arrangement of
    # rotations leaves it none to find (gy then searched its whole 120 s, not 10 s); they
    # are rearranged after the search.
    rewritten = None if direct is None else rewrite(ctx, direct, rotations=False)
    shape = None if rewritten is None else counts(rewritten.program)
    if rewritten is not None and shape is not None and shape.rotations and not shape.ct_ct_mults:
        # ... unless the cheapest arrangement of a linear kernel is provably the best kernel
        # (of the sketch at least: then the search, bounded by it, ends at once)
        moved = rewrite(ctx, rewritten.program)
        ref = ctx.reference
        if moved.passes and (
            meets_lower_bound(moved.program, ref, options)
            or meets_lower_bound(moved.program, ref, options, in_sketch=True)
        ):
            rewritten = Rewritten(program=moved.program, passes=rewritten.passes + moved.passes)
    fallback = None if rewritten is None else rewritten.program
    if fallback is not None:
        ctx.budget.keep(spec, fallback, Source.DIRECT)
    left = ctx.budget.remaining_ms()  # the search stops a second early: what follows must fit
    searched = (
        ctx.budget if left is None else ctx.budget.within(max(0.0, left / 1000 - AFTER_SEARCH_S))
    )
    found = search(spec, searched, options, ctx.initial, fallback=fallback, ref=ctx.reference)
    partial = _from_search(ctx, found, ctx.initial)
    if rewritten is not None and partial.program is fallback:
        log.info("%s: nothing beat the formula as written", spec.name)
        partial = with_passes(dataclasses.replace(partial, source=Source.DIRECT), rewritten)
    return partial


def _lowered(ctx: Context) -> Partial | None:
    """The direct kernel with masks (:mod:`porcupine.lowering`), verified, for a spec whose
    reads need data movement: the sketch has no per-slot masks."""
    program = direct_kernel(ctx)
    if program is None:
        return None
    log.info("%s: reads need data movement: a direct kernel with masks", ctx.spec.name)
    scope = "a direct kernel with masks; the sketch has no per-slot masks, so none was searched"
    return Partial(
        program=program,
        optimal=False,
        scope=scope,
        source=Source.LOWERED,
        components=len(program.body),
    )


def direct_kernel(ctx: Context) -> Program | None:
    """The formula written out as a kernel (:func:`porcupine.lowering.lower`), if verified."""
    program = lower(ctx.spec)
    return program if program is not None and ctx.proves(program) else None


AFTER_SEARCH_S = 1.0
"""Of a deadline, the seconds kept from a search for the passes and checks after it: a
search stopped at the deadline overran it by up to a second on a loaded machine, and the
command line ends work a second past its deadline, losing the verified kernel it held."""

STEP_SHARE = 0.8
"""Of the time left, the share a step of a multi-step spec may search, split evenly among
the steps still to come; the rest is kept for composing, verifying and lifting. A step that
finds nothing in its share takes its formula written out (:func:`direct_kernel`), so one
hard step cannot leave the whole kernel without a result."""


def step_kernel(ctx: Context, found: SearchResult, budget: Budget) -> Program:
    """The kernel of the step ``ctx.spec``: the search's, or, when only its share of the
    time ran out (``budget``, the command's, is not over), the step's formula written out."""
    if found.best is not None:
        return found.best.program
    if found.stopped is Stop.TIMEOUT and not budget.cancelled:  # the whole budget may be over
        direct = direct_kernel(ctx)
        if direct is not None:
            log.info(
                "step %s: nothing found in its share of the time; the formula as written",
                ctx.spec.name,
            )
            return direct
    raise nothing_found(ctx, found, budget)


def _from_search(ctx: Context, found: SearchResult, initial: Program | None) -> Partial:
    if found.best is None:
        raise nothing_found(ctx, found, ctx.budget)
    source = Source.INITIAL if found.best.program is initial else Source.SYNTHESIZED
    return Partial(
        program=found.best.program,
        optimal=found.optimal,
        scope=found.scope,
        source=source,
        components=found.best.components,
        restrictions=found.restrictions.describe(),
        candidates=found.candidates,
        counterexamples=found.counterexamples,
        stopped=found.stopped,
    )


def nothing_found(ctx: Context, found: SearchResult, budget: Budget) -> SynthesisError:
    """Why the search of ``ctx.spec`` gave no kernel, and what to try."""
    name, keys = ctx.spec.name, ctx.options.max_keys
    if found.stopped is Stop.INTERRUPTED:
        return SynthesisError(f"{name}: interrupted before a verified kernel was found")
    if found.stopped is Stop.TIMEOUT:
        return SynthesisError(
            f"{name}: no verified kernel within the timeout; allow more time (--timeout)"
        )
    if found.gave_up:
        return SynthesisError(f"{name}: no kernel found: {found.scope}")
    most = max(found.sizes_exhausted, default=0)
    why = why_nothing(ctx.reference, found.restrictions, most)
    if keys is not None:  # the bound, not the sketch, may be what rules every kernel out
        why = f"no kernel with at most {keys} rotation keys was found ({why})"
    return SynthesisError(f"{name}: {why}")


def _least(step: Context) -> Program | None:
    """The step's formula written out (:func:`direct_kernel`) when it costs what every
    kernel of the step's sketch must: its search, bounded by it, then ends at once. Only
    then: a search bounded by a kernel it did not find walks every size (it stops a size
    past the first that held a kernel it found), where unbounded it finds one and stops.

    Without it, conv2d's step ``f11 * x[i+1][j+1]`` (one rotation and a product) was
    searched in the axis sketch first, which reaches offset 5 only with two rotations, for
    the step's whole share (3.1 s of ``--timeout 10``). If that search found its
    two-rotation kernel in time, the staged kernel was dearer than the formula written
    out, and the whole formula was searched to the timeout (9 s, not proven); if it did
    not, the step took its formula written out and conv2d ended in about 4 s: which one
    depended on the machine's speed (a loaded machine gave the faster end)."""
    written = direct_kernel(step)
    if written is None or not meets_lower_bound(
        written, step.reference, step.options, in_sketch=True
    ):
        return None
    return written


def multi_step(ctx: Context) -> Partial:
    """Synthesize each stage over the stages it reads, in dependency order, then the output
    over the stages; inline and simplify, and verify the whole against ``ctx.spec``."""
    spec, budget, options = ctx.spec, ctx.budget, ctx.options
    params = tuple(Param(d.name, d.kind) for d in spec.inputs)
    steps = {s.name: spec.stage_spec(s.name).with_stages_as_inputs() for s in spec.stages}
    steps[spec.output.name] = spec.with_stages_as_inputs()
    composed: dict[str, Program] = {}  # step -> its program over the spec's own inputs
    stages: list[StageResult] = []
    candidates = counterexamples = components = 0
    restrictions = ""
    stopped: Stop | None = None
    order = [s.name for s in spec.stages] + [spec.output.name]  # stages are in order
    for k, name in enumerate(order):
        step = ctx.for_spec(steps[name])
        log.info("step %s: %d slots matter", name, len(step.spec.output_slots()))
        share = budget.share(STEP_SHARE / (len(order) - k))
        found = search(step.spec, share, options, ref=step.reference, fallback=_least(step))
        kernel = step_kernel(step, found, budget)
        optimal = found.optimal and found.best is not None
        stages.append(StageResult(name=name, program=kernel, optimal=optimal))
        reads = {d.name: composed[d.name] for d in step.spec.inputs if d.name in composed}
        composed[name] = inline(kernel, reads, params, spec.name)
        candidates += found.candidates
        counterexamples += found.counterexamples
        c = counts(kernel)
        components += c.instructions - c.rotations
        restrictions = found.restrictions.describe()
        stopped = stopped or (found.stopped if budget.over else None)  # not a step's share
    program = simplify(composed[spec.output.name])
    verdict = verify(program, ctx.reference)
    if not verdict.ok:  # each step is verified; this guards the composition
        raise SynthesisError(f"{spec.name}: composed kernel failed verification: {verdict}")
    scope = (
        "each step proven optimal on its own; the composition is not"
        if all(s.optimal for s in stages)
        else "not proven"
    )
    return Partial(
        program=program,
        optimal=False,
        scope=scope,
        source=Source.SYNTHESIZED,
        components=components,
        restrictions=restrictions,
        candidates=candidates,
        counterexamples=counterexamples,
        stopped=stopped,
        stages=tuple(stages),
    )


DIRECT_COMPONENTS = 6
"""A flat spec whose staged kernel has at most this many components is also searched
whole, seeded with that kernel: small enough for a proof, and cheaper kernels may cross
the stages (Roberts cross: 5 components)."""

WHOLE_SECONDS = 60.0
"""How long that whole search may take; past it the staged kernel stands, unproven."""


def _decomposed(ctx: Context, staged: Spec, written: Program | None) -> Partial:
    """Synthesize ``ctx.spec`` through its automatic stages ``staged``; when the kernel is
    small, search the flat spec too, seeded with it, for a cheaper kernel or a proof.
    ``written``: the formula written out, verified, as :func:`core` made it (with no
    initial kernel)."""
    spec, budget, options, initial = ctx.spec, ctx.budget, ctx.options, ctx.initial
    log.info(
        "%s: synthesizing through automatic stages %s", spec.name, [s.name for s in staged.stages]
    )
    partial = multi_step(ctx.for_staged(staged))  # its kernel proven equal to ``spec``
    ctx.budget.keep(spec, partial.program, Source.SYNTHESIZED)
    log.info(
        "%s: whole kernel verified (staged, %d instructions)", spec.name, len(partial.program.body)
    )
    seed = partial.program
    direct = written if initial is None else direct_kernel(ctx)  # core's, when it made one
    for other in (initial, direct):  # direct: the formula normalized, if cheaper
        if other is not None and cheaper(other, seed, spec, options):
            seed = other
    if (partial.components > DIRECT_COMPONENTS and seed is partial.program) or budget.over:
        return partial
    # Products refactored first, as for the formula written out (core): the search's lower
    # bound can then rule out every size at once (energy3, point_distance).
    base, refactored = seed, rewrite(ctx, seed, rotations=False)
    seed = refactored.program
    ctx.budget.keep(spec, seed, Source.SYNTHESIZED)  # verified by the pass: safe from a forced stop
    log.info("%s: searching the whole formula below the staged kernel", spec.name)
    found = search(spec, budget.within(WHOLE_SECONDS), options, seed, ref=ctx.reference)
    if found.stopped is Stop.TIMEOUT and not budget.expired:
        log.info("%s: the whole search did not finish in %.0f s", spec.name, WHOLE_SECONDS)
        found = dataclasses.replace(found, stopped=None)  # the command's budget is not over
    whole = _from_search(ctx, found, seed)
    if whole.program is seed:  # the scope says the refactoring (none: no passes)
        whole = with_passes(dataclasses.replace(whole, program=base), refactored)
    if whole.program is seed and base is partial.program:
        return dataclasses.replace(whole, source=Source.SYNTHESIZED, stages=partial.stages)
    return whole
