"""``compile_for``: the spec at its own size and at the tile chosen for the data both lift the
kernel of one smallest instance, which is synthesized once and handed to each
(:class:`porcupine.synthesize.InstanceKernel`); the kernels are those a synthesis of each
size on its own finds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from helpers import KERNELS

from porcupine import pipeline
from porcupine.app_plan import compile_for, smallest_kernel
from porcupine.budget import Budget, Kept
from porcupine.core import core as search_core
from porcupine.errors import SynthesisError
from porcupine.outcomes import Source
from porcupine.staging.instances import smallest_instance
from porcupine.synthesize import InstanceKernel, Options, synthesize
from quill.parser import load_program, parse_program
from quill.spec import load_spec

pytestmark = pytest.mark.search

# box_blur is its own smallest instance; dot_product (n = 8) has a smaller one (n = 4).
CASES = [("box_blur", (300, 200)), ("dot_product", (100_000,))]


def _counting_core(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[tuple[str, int], ...]]:
    """Count the pipeline's core step (the search) by the params of the spec it runs on."""
    runs: Counter[tuple[tuple[str, int], ...]] = Counter()
    core: Callable[..., Any] = search_core  # the step the pipeline calls as `core`

    def counted(ctx: Any) -> Any:
        runs[ctx.spec.params] += 1
        return core(ctx)

    monkeypatch.setattr(pipeline, "core", counted)
    return runs


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_the_smallest_instance_is_searched_once(
    monkeypatch: pytest.MonkeyPatch, name: str, shape: tuple[int, ...]
) -> None:
    spec = load_spec(KERNELS / f"{name}.spec")
    small = smallest_instance(spec) or spec
    runs = _counting_core(monkeypatch)
    compiled = compile_for(spec, shape)
    assert compiled.tiled and compiled.spec.n > spec.n  # the tile is larger: it was lifted
    assert runs == Counter({small.params: 1})
    assert compiled.result.source is Source.LIFTED


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_the_kernels_are_those_each_size_finds_on_its_own(
    name: str, shape: tuple[int, ...]
) -> None:
    spec = load_spec(KERNELS / f"{name}.spec")
    compiled = compile_for(spec, shape)
    alone = synthesize(compiled.spec)
    assert compiled.result.program == alone.program
    assert compiled.result.optimal == alone.optimal
    _, own = smallest_kernel(spec, Options())
    assert own.program == synthesize(spec).program


def test_an_instance_kernel_of_another_spec_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    blur, dot = (load_spec(KERNELS / f"{n}.spec") for n in ("box_blur", "dot_product"))
    handed = InstanceKernel(spec=dot, result=synthesize(dot))
    runs = _counting_core(monkeypatch)
    result = synthesize(blur.at({"w": 8, "h": 8}), instance=handed)
    assert runs == Counter({blur.params: 1})  # box_blur's own smallest instance, searched
    assert result.source is Source.LIFTED


def test_the_initial_kernel_is_kept_not_used_to_search() -> None:
    spec = load_spec(KERNELS / "box_blur.spec")
    baseline = load_program(KERNELS / "baselines" / "box_blur.quill")
    budget = Budget.seconds(None)
    budget.keeper.watch(spec, lambda p, _n: (0,) if p is baseline else (1,))  # it, once offered
    with_initial = compile_for(spec, (300, 200), budget=budget, initial=baseline)
    assert budget.keeper.best == Kept(program=baseline, source=Source.INITIAL)
    assert with_initial.result.program == compile_for(spec, (300, 200)).result.program
    wrong = parse_program("kernel box_blur(x: ct) {\n    v1 = rot(x, 1)\n    return v1\n}\n")
    with pytest.raises(SynthesisError, match="not equal"):
        compile_for(spec, (300, 200), budget=Budget.seconds(None), initial=wrong)
