"""The synthesizer's public API: ``synthesize(spec) -> SynthesisResult``.

A thin facade over the pipeline (:mod:`porcupine.pipeline`, which lists every step from a
spec to a verified kernel, in order). Nothing unverified leaves it; progress goes to the
``porcupine`` logger.
"""

from __future__ import annotations

from porcupine.budget import Budget
from porcupine.context import Context
from porcupine.errors import NoiseBudgetError, SynthesisError
from porcupine.options import Engine, Options
from porcupine.outcomes import Layout, PassApplied, Source, Stop
from porcupine.pipeline import run
from porcupine.results import InstanceKernel, StageResult, SynthesisResult
from porcupine.search.cegis import Found
from porcupine.steps import pad
from quill.ir import Program
from quill.spec import Spec

__all__ = [
    "Engine",
    "Found",
    "InstanceKernel",
    "Layout",
    "NoiseBudgetError",
    "Options",
    "PassApplied",
    "Source",
    "StageResult",
    "Stop",
    "SynthesisError",
    "SynthesisResult",
    "padded_result",
    "synthesize",
]

DIRECT_SLOTS = 64
"""Past this many slots, a search at the spec's own size is hopeless: such specs are
synthesized at a smaller instance (:mod:`porcupine.staging.instances`) and lifted."""


def synthesize(
    spec: Spec,
    *,
    timeout: float | None = None,
    budget: Budget | None = None,
    options: Options | None = None,
    initial: Program | None = None,
    layout: Layout | str = Layout.GIVEN,
    instance: InstanceKernel | None = None,
) -> SynthesisResult:
    """Find the cheapest kernel for ``spec`` that the sketch allows, proven equal to it.

    ``timeout`` (seconds) or ``budget`` bounds the whole search; when it runs out the best
    verified kernel so far is returned with ``optimal=False``. ``initial``, a kernel for
    ``spec`` (e.g. a hand-written baseline), is verified and then bounds the search: the
    result is never worse. ``layout="search"`` tries the client packings
    (:mod:`porcupine.layouts.search`) and keeps the cheapest; by default the inputs are
    packed as the spec says; ``layout="padded"`` keeps the spec's layout but lets the client
    zero pad each input (:mod:`porcupine.layouts.spare_slots`) when the spare slots make the kernel
    cheaper. A layout not among these is a ValueError. Raises :class:`SynthesisError` when
    no kernel is found. ``instance``, a kernel already synthesized for the spec's smallest
    instance (:mod:`porcupine.staging.instances`), is lifted instead of searching there again.
    """
    chosen = Layout.parse(layout)
    ctx = Context(
        spec=spec,
        options=options or Options(),
        budget=budget or Budget.seconds(timeout),
        initial=initial,
        instance=instance,
    )
    return run(ctx, chosen)


def padded_result(
    spec: Spec, options: Options, natural: SynthesisResult, budget: Budget
) -> SynthesisResult:
    """``natural`` (a kernel for ``spec`` in its own packing), or, when it is cheaper, the
    kernel with its products packed into the spare slots of a zero-padded packing: the
    pipeline's last step (:func:`porcupine.steps.pad`) on its own."""
    return pad(Context(spec=spec, options=options, budget=budget), natural)
