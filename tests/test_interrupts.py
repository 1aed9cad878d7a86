"""Every pass stops when its budget does, and the best verified kernel is kept.

The passes (porcupine.passes.fewer_products, .rotation_forms, .slot_packing) look at their budget
between steps: stopped at any of those checks, a pass returns nothing, so its caller keeps
the kernel it had. The budget's Keeper holds the cheapest verified kernel of the command's
spec, whatever stops the work (porcupine.cli.kept reports it). The real commands, stopped
by real signals and deadlines, are in tests/test_stops.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from porcupine.budget import Budget, Keeper, Kept
from porcupine.cli.kept import kept_result, watch
from porcupine.context import Context
from porcupine.errors import NoiseBudgetError
from porcupine.layouts.choices import requested
from porcupine.layouts.spare_slots import packed_products
from porcupine.options import Options
from porcupine.passes.fewer_products import fewer_products
from porcupine.passes.rotation_forms import rearranged_rotations
from porcupine.pipeline import instance
from quill.cost import DEFAULT_TABLE, Objective
from quill.ir import Program
from quill.parser import load_program, parse_program
from quill.spec import Spec, load_spec, parse_spec
from quill.verify import verify

KERNELS = Path(__file__).parent.parent / "kernels"


class Countdown(Budget):
    """A budget with no deadline that is cancelled (as by Ctrl-C) at its ``checks``-th check,
    and counts the checks it was asked for."""

    def __init__(self, checks: int | None = None) -> None:
        super().__init__()
        self.left = checks
        self.checks = 0

    def check(self, place: str = "") -> None:
        self.checks += 1
        if self.left is not None and self.checks == self.left:
            self.cancel()
        super().check(place)


Pass = Callable[[Budget], object]


def _fewer(name: str, kind: str = "baselines") -> Pass:
    spec = load_spec(KERNELS / f"{name}.spec")
    program = load_program(KERNELS / kind / f"{name}.quill")

    def run(budget: Budget) -> object:
        return fewer_products(
            program, spec.n, DEFAULT_TABLE, Objective.LATENCY, _proof(spec), budget=budget
        )

    return run


def _rotations(name: str, kind: str = "published") -> Pass:
    spec = load_spec(KERNELS / f"{name}.spec")
    program = load_program(KERNELS / kind / f"{name}.quill")

    def run(budget: Budget) -> object:
        return rearranged_rotations(
            program, spec.n, DEFAULT_TABLE, Objective.LATENCY, _proof(spec), budget=budget
        )

    return run


def _packing(name: str) -> Pass:
    spec = load_spec(KERNELS / f"{name}.spec")
    program = load_program(KERNELS / "baselines" / f"{name}.quill")
    return lambda budget: packed_products(program, spec, Options(), budget)


def _proof(spec: Spec) -> Callable[[Program], bool]:
    return lambda p: verify(p, spec).ok


def _stopped_at_every_check(run: Pass) -> None:
    """``run`` finds a rewrite with a budget that never ends, and returns nothing when its
    budget ends at any of the checks it makes."""
    full = Countdown()
    assert run(full) is not None  # the pass has a rewrite to lose
    assert full.checks >= 2  # at least one check before its work and one before its proof
    for k in range(1, full.checks + 1):
        budget = Countdown(k)
        assert run(budget) is None, f"stopped at check {k} of {full.checks}"
        assert budget.checks == k  # it stopped at that check: no work after it


def test_fewer_products_stops_at_every_check() -> None:
    _stopped_at_every_check(_fewer("sobel"))


def test_rotation_forms_stops_at_every_check() -> None:
    _stopped_at_every_check(_rotations("box_blur"))


@pytest.mark.slow
def test_slot_packing_stops_at_every_check() -> None:
    _stopped_at_every_check(_packing("sobel"))


@pytest.mark.slow
def test_the_passes_on_harris_stop_at_their_first_and_last_checks() -> None:
    # Harris, where Ctrl-C used to lose the kernel: its passes take seconds (each proof at
    # 64 slots about one), so every check is not tried, only the first and the last (before
    # the proof).
    for run in (_fewer("harris"), _rotations("harris")):
        full = Countdown()
        assert run(full) is not None
        for k in (1, full.checks):
            budget = Countdown(k)
            assert run(budget) is None and budget.checks == k


# -- the Keeper ---------------------------------------------------------------------------

SPEC = """spec twice
param n = 4
slots n
input x: ct vector(n)
output y[k]: vector(n) = 4 * x[k]
"""

DEAR = """kernel twice(x: ct) {
    a = add(x, x)
    b = add(a, x)
    y = add(b, x)
    return y
}
"""

CHEAP = """kernel twice(x: ct) {
    a = add(x, x)
    y = add(a, a)
    return y
}
"""


PACKED = """spec pk
param n = 8
slots n
input a: ct vector(4)
input b: ct vector(4) packing with a
output y[k]: vector(n) = a[k] * b[k] where k < 4
"""
PACKED_KERNEL = """kernel pk(a__b: ct) {
    v1 = rot(a__b, 4)
    v2 = mul(a__b, v1)
    return v2
}
"""


def _kernels() -> tuple[Spec, Program, Program]:
    spec = parse_spec(SPEC)
    dear, cheap = parse_program(DEAR), parse_program(CHEAP)
    assert verify(dear, spec).ok and verify(cheap, spec).ok
    return spec, dear, cheap


def test_the_keeper_keeps_the_cheapest_kernel_of_the_watched_spec_only() -> None:
    spec, dear, cheap = _kernels()
    budget = Budget()
    budget.keep(spec, dear, "initial")
    assert budget.keeper.best is None  # nothing is watched: nothing kept
    watch(budget, spec, Options())
    budget.keep(spec, dear, "initial")
    assert budget.keeper.best == Kept(program=dear, source="initial")
    budget.within(1.0).keep(spec, cheap, "synthesized")  # a budget cut from it keeps too
    assert budget.keeper.best == Kept(program=cheap, source="synthesized")
    budget.keep(spec, dear, "direct")  # dearer: not kept
    assert budget.keeper.best == Kept(program=cheap, source="synthesized")
    other = parse_spec(SPEC)  # an equal spec, but not the command's (a step, an instance)
    budget.keep(other, dear, "synthesized")
    assert budget.keeper.best == Kept(program=cheap, source="synthesized")


def test_the_keeper_keeps_a_kernel_of_a_packing_named_for_the_watched_spec() -> None:
    spec = parse_spec(PACKED)
    packing = requested(spec)
    program = parse_program(PACKED_KERNEL)
    assert verify(program, packing.spec).ok
    budget = Budget()
    watch(budget, spec, Options())
    budget.keep(packing.spec, program, "direct")  # a spec the keeper was not told of
    assert budget.keeper.best is None
    budget.keeper.packed(parse_spec(PACKED), packing)  # named for another spec: ignored
    budget.keep(packing.spec, program, "direct")
    assert budget.keeper.best is None
    budget.keeper.packed(spec, packing)
    budget.keep(packing.spec, program, "direct")
    assert budget.keeper.best == Kept(program=program, source="direct", packing=packing)
    result = kept_result(spec, Options(), budget, "timeout", 1.0)
    assert result is not None and result.packing is packing and result.program is program


def test_the_kept_kernel_is_reported_as_stopped_and_not_optimal() -> None:
    spec, _, cheap = _kernels()
    budget = Budget()
    watch(budget, spec, Options())
    assert kept_result(spec, Options(), budget, "timeout", 1.0) is None
    budget.keep(spec, cheap, "direct")
    result = kept_result(spec, Options(), budget, "interrupted", 1.0)
    assert result is not None and result.program is cheap
    assert result.stopped == "interrupted" and not result.optimal and result.source == "direct"
    assert "Ctrl-C stopped the work" in result.optimal_scope
    assert verify(result.program, spec).ok


def test_a_kernel_over_the_noise_budget_is_kept_to_say_so() -> None:
    spec = parse_spec(SPEC.replace("4 * x[k]", "x[k]^64"))
    body = "\n".join(f"    v{i} = mul(v{i - 1}, x)" for i in range(2, 64))  # v_i = x^(i+1)
    noisy = parse_program(
        f"kernel twice(x: ct) {{\n    v1 = mul(x, x)\n{body}\n    return v63\n}}\n"
    )
    assert verify(noisy, spec).ok
    budget = Budget()
    watch(budget, spec, Options())
    budget.keep(spec, noisy, "direct")
    assert budget.keeper.best is None
    assert budget.keeper.unranked == Kept(program=noisy, source="direct")
    with pytest.raises(NoiseBudgetError):
        kept_result(spec, Options(), budget, "timeout", 1.0)


class Recording(Keeper):
    """A keeper that also lists the sources of the kernels of the watched spec offered."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def offer(self, spec: Spec, program: Program, source: str) -> None:
        if self._spec is spec:
            self.sources.append(source)
        super().offer(spec, program, source)


@pytest.mark.search
def test_the_instance_step_keeps_the_formula_written_out_first_and_the_lifted_kernel() -> None:
    # The keeper ignores kernels of the smaller instance: before the instance is searched,
    # only the full-size formula written out can be kept (harris_flat at --timeout 10 ended
    # with none), and the lifted kernel must be kept as soon as it is proven, before the
    # lower bound and the passes that follow.
    spec = load_spec(KERNELS / "box_blur.spec", {"w": 8, "h": 8})
    keeper = Recording()
    budget = Budget(keeper=keeper)
    watch(budget, spec, Options())
    partial = instance(Context(spec=spec, options=Options(), budget=budget))
    assert partial is not None and partial.source == "lifted"
    assert keeper.sources == ["direct", "lifted"]
