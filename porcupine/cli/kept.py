"""What ``synth`` reports when its work is stopped by force: the kept kernel.

A search or pass that looks at its budget stops itself and returns its best verified kernel
as its result. Work that does not (a proof, a step of pure Python) is stopped by force
(:mod:`porcupine.cli.guard`) and returns nothing; the cheapest verified kernel of the spec
found before, which synthesis handed to the budget's :class:`~porcupine.budget.Keeper`, is
then the result, marked stopped and not optimal.
"""

from __future__ import annotations

from porcupine.budget import Budget, Kept
from porcupine.errors import NoiseBudgetError
from porcupine.options import Options
from porcupine.outcomes import Source, Stop
from porcupine.passes.rewriting import rank
from porcupine.synthesize import SynthesisResult
from quill.cost import measures
from quill.noise import NoiseBudgetExceeded, parameters
from quill.spec import Spec
from quill.stats import counts

STOPS = {
    "interrupted": "Ctrl-C",
    "timeout": "the timeout",
    "memory": "the memory limit",
}
"""What stopped the work, by the ``stopped`` value of a result."""


def watch(budget: Budget, spec: Spec, options: Options) -> None:
    """Have ``budget`` keep the cheapest verified kernel of ``spec`` by the objective (at the
    parameter set each needs, within the rotation-key bound)."""
    budget.keeper.watch(
        spec, lambda p, n: rank(p, n, options.table, options.goal, options.max_keys)
    )


def kept_result(
    spec: Spec, options: Options, budget: Budget, stopped: str, seconds: float
) -> SynthesisResult | None:
    """The kernel ``budget`` kept for ``spec`` as a result stopped by ``stopped`` (a key of
    :data:`STOPS`), or ``None`` when none was kept. :class:`NoiseBudgetError` when the only
    kernel kept is correct but too noisy for every parameter set."""
    best = budget.keeper.best
    if best is None:
        unranked = budget.keeper.unranked
        if unranked is not None:
            try:
                parameters(unranked.program, _slots(spec, unranked), options.table)
            except NoiseBudgetExceeded as e:
                raise NoiseBudgetError(unranked.program, e) from None
        return None  # (or over the rotation-key bound: not a kernel to report)
    program = best.program
    params = parameters(program, _slots(spec, best), options.table)  # it has a rank
    c = counts(program)
    return SynthesisResult(
        kernel=spec.name,
        program=program,
        optimal=False,
        optimal_scope=f"not proven: {STOPS[stopped]} stopped the work; the best verified "
        "kernel found by then",
        measures=measures(program, params.param_set, options.table),
        params=params,
        options=options,
        seconds=seconds,
        source=Source(best.source),
        components=c.instructions - c.rotations,
        restrictions="",
        candidates=0,
        counterexamples=0,
        stopped=Stop(stopped),
        packing=best.packing,
    )


def _slots(spec: Spec, kept: Kept) -> int:
    """The slots ``kept`` runs over: its packing's, or the spec's."""
    return spec.n if kept.packing is None else kept.packing.slots
