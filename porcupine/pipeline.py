"""From a spec to a verified kernel: every step, in order, and why it sits where it does.

    packing -> instance -> core -> initial -> passes -> price -> pad

Each step takes the :class:`~porcupine.context.Context` (the spec, its reference evaluated
once, the options, the budget, the initial kernel) and hands on a verified kernel; the
helpers live in :mod:`porcupine.core` (the core step) and :mod:`porcupine.steps` (the rest).
Nothing unverified leaves a step, and nothing here calls :func:`porcupine.synthesize`,
which is a thin facade over :func:`run`.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from porcupine import steps
from porcupine.budget import Budget
from porcupine.context import Context
from porcupine.core import core, direct_kernel
from porcupine.errors import SynthesisError
from porcupine.layouts.choices import requested
from porcupine.layouts.packing import Packing
from porcupine.layouts.search import search_layouts
from porcupine.outcomes import Layout, Source, Stop
from porcupine.results import Partial, SynthesisResult
from porcupine.staging.instances import smallest_instance

log = logging.getLogger("porcupine")


def run(ctx: Context, layout: Layout) -> SynthesisResult:
    """The pipeline for ``ctx``; ``layout`` says how the client packs the inputs."""
    if layout is Layout.SEARCH:
        return searched_layouts(ctx)
    packed, packing = packing_step(ctx)
    if layout is Layout.PADDED and packing is not None:
        raise SynthesisError(
            f"{ctx.spec.name}: --layout padded pads the spec's own layout, but its packing "
            f"clauses ask for {packing.name}: drop one or the other"
        )
    result = kernel(packed)
    if layout is Layout.PADDED:
        result = steps.pad(packed, result)  # last: it derives a kernel of another (padded) spec
    if packing is None:
        return result
    return dataclasses.replace(result, kernel=ctx.spec.name, packing=packing)


def packing_step(ctx: Context) -> tuple[Context, Packing | None]:
    """1. Packing. First, because every later step works on the kernel's own inputs: a spec
    whose ``packing`` clauses ask for a client packing is synthesized as the packed spec
    (an initial kernel must then be one over the packed ciphertexts)."""
    packing = requested(ctx.spec)
    if packing.name == "natural":
        return ctx, None
    log.info("%s: packed as asked (%s)", ctx.spec.name, packing.name)
    ctx.budget.keeper.packed(ctx.spec, packing)  # its kernels are the command's, packed
    return dataclasses.replace(ctx.for_spec(packing.spec), initial=ctx.initial), packing


def kernel(ctx: Context) -> SynthesisResult:
    """Steps 2-6 for a spec in its own packing, from the initial kernel's check to the price."""
    initial = ctx.initial
    if initial is not None:
        if not ctx.proves(initial):
            raise SynthesisError(
                f"the initial kernel {initial.name} is not equal to {ctx.spec.name}"
            )
        ctx.budget.keep(ctx.spec, initial, Source.INITIAL)  # safe from a forced stop
    try:
        partial = instance(ctx) or core(ctx)
    except SynthesisError:
        if initial is None or not ctx.budget.over:
            raise
        partial = steps.initial_kept(ctx, Stop.of(ctx.budget))
    return steps.price(ctx, passes(ctx, initial_bound(ctx, partial)))


def instance(ctx: Context) -> Partial | None:
    """2. Instance. Before the core, because a search past a few dozen slots is hopeless: a
    spec whose smallest instance has the same formula (:mod:`porcupine.staging.instances`)
    runs the core, the passes and the price there, and the kernel is lifted
    (:mod:`porcupine.staging.scale`) and verified at full size. ``None`` when there is no
    such instance, or its kernel does not lift: then the core runs at full size.

    The formula written out at full size is verified and kept first, as the core does at
    its own size: the budget keeps only kernels of the command's spec, so a stop before the
    lifted kernel is verified had nothing to report (harris_flat at ``--timeout 10``: its
    instance's stages, passes and the full-size proof did not fit). It costs one proof at
    full size, as the lifted kernel's does.

    That proof's time is kept from the instance's work (its stages, search and passes), so
    that the lifted kernel's proof, which costs about as much, still fits before the
    deadline: harris_flat at ``--timeout 10`` spent its whole budget at the instance and
    the proof of its lifted kernel (0.75 s at 64 slots; 1.3 s for the formula written
    out, measured) was stopped by force, leaving the formula written out (129 ms against
    about 60 ms for a lifted kernel)."""
    small = smallest_instance(ctx.spec)
    if small is None:
        return None
    proof_s = 0.0
    if ctx.initial is None:
        _ = ctx.reference  # evaluated once, for every proof at full size
        started = time.monotonic()
        if (written := direct_kernel(ctx)) is not None:
            ctx.budget.keep(ctx.spec, written, Source.DIRECT)
            proof_s = time.monotonic() - started
    sizes = ", ".join(f"{k}={v}" for k, v in small.params)
    log.info("%s: synthesizing at %s and lifting to %d slots", ctx.spec.name, sizes, ctx.spec.n)
    left = ctx.budget.remaining_ms()
    budget = None if left is None else ctx.budget.within(max(0.0, left / 1000 - proof_s))
    at_small = ctx.for_spec(small, budget)
    given = ctx.instance  # found before, for this instance: lifted, not searched again
    try:
        if given is not None and given.spec == small:
            found = given.result
        else:
            found = steps.price(at_small, passes(at_small, core(at_small)))
    except SynthesisError as e:  # at its own size the formula written out may still be one
        log.info("%s: nothing found at %s (%s)", ctx.spec.name, sizes, e)
        return None
    return steps.lifted(ctx, small, found)


# 3. Core: porcupine.core.core -- stages | direct lowering | decomposition | search. The one
# step that searches; everything before it chooses what to search, everything after it
# rewrites, checks and prices a verified kernel.


def initial_bound(ctx: Context, partial: Partial) -> Partial:
    """4. Initial kernel. After the core and before the passes: the result is never worse
    than the kernel the user gave, and the passes then work on whichever is kept."""
    return steps.no_worse_than_initial(ctx, partial)


def passes(ctx: Context, partial: Partial) -> Partial:
    """5. Passes over verified kernels (:func:`porcupine.steps.rewrite`). After the core,
    because they rewrite a kernel it proved, outside the sketch (constants it lacks, more
    components) and never dearer, so the core's proof still holds. A pass stopped by the
    budget leaves the kernel it was given; the kernels before and after are kept."""
    ctx.budget.keep(ctx.spec, partial.program, partial.source)
    done = steps.with_passes(partial, steps.rewrite(ctx, partial.program))
    ctx.budget.keep(ctx.spec, done.program, done.source)
    return steps.stopped_if_over(ctx, done)


# 6. Price: porcupine.steps.price -- the parameters the kernel's noise needs and its
# measures there; after the passes, which change both; the rotation-key bound checked last.
# 7. Pad: porcupine.steps.pad (with --layout padded) -- last, because it derives from the
# priced natural kernel a kernel of another spec, the zero-padded packing.


def searched_layouts(ctx: Context) -> SynthesisResult:
    """``--layout search``: the steps above once per client packing, each in a share of
    the budget (the natural one with the initial kernel, then padded), the cheapest kept."""

    def kernel_for(packing: Packing, budget: Budget) -> SynthesisResult:
        natural = packing.spec is ctx.spec  # the initial kernel is one for it
        ctx.budget.keeper.packed(ctx.spec, packing)  # safe from a forced stop, as natural's
        sub = ctx.with_budget(budget) if natural else ctx.for_spec(packing.spec, budget)
        return run(sub, Layout.GIVEN)

    best, tried = search_layouts(
        ctx.spec, ctx.budget, ctx.options, kernel_for, lambda natural: steps.pad(ctx, natural)
    )
    if best.result is None:
        reasons = "; ".join(f"{t.packing.name}: {t.error}" for t in tried)
        raise SynthesisError(f"{ctx.spec.name}: no packing gave a kernel ({reasons})")
    return dataclasses.replace(
        best.result,
        kernel=ctx.spec.name,
        packing=None if best.packing.name == "natural" else best.packing,
        layouts=tuple(t.summary() for t in tried),
        seconds=time.monotonic() - ctx.start,
    )
