"""Random specs, as a user writes them: each ends in a verified kernel or in a clear error,
never in an internal one (issue 24).

The specs come from :func:`strategies.spec_texts` (the grammar of ``eval/spec_grammar.py``,
which the seeded bench ``python -m eval.spec_fuzz`` draws from too, over hundreds of specs).
A kernel is checked here on its own: proven equal to the spec (through its packing, itself
proven equal to the spec, when the spec asks for one) and run by the interpreter on random
inputs against the spec's reference. An error is a :class:`QuillError` with a location in
the spec (the CLI's exit 2), or a :class:`SynthesisError` with a message (exit 1); any other
exception fails the test. Few examples and a short budget per spec: the bench is where the
volume is.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import spec_texts

from eval.spec_fuzz import classify
from eval.spec_grammar import FAMILIES, GeneratedSpec, seeded
from porcupine.errors import SynthesisError
from porcupine.layouts.choices import requested
from porcupine.layouts.packing import check
from porcupine.synthesize import synthesize
from quill.errors import QuillError
from quill.spec import parse_spec
from quill.verify import agrees_on_random, verify

BUDGET = 3.0  # seconds of search per spec: the formula written out is there from the start
SETTINGS = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def _ends_well(generated: GeneratedSpec) -> None:
    """A verified kernel, a located QuillError, or a SynthesisError that says why."""
    text = generated.text
    try:
        spec = parse_spec(text, file="fuzz.spec")
        result = synthesize(spec, timeout=BUDGET)
    except QuillError as e:
        assert e.location is not None and e.location.file == "fuzz.spec", f"{text}\n{e}"
        assert e.message, text
        return
    except SynthesisError as e:
        assert str(e), text
        return
    target = spec
    if result.packing is not None:
        packing = requested(spec)
        assert packing.name == result.packing.name, text
        assert check(packing, spec), text
        target = packing.spec
    assert verify(result.program, target).ok, f"{text}\n{result.program}"
    assert agrees_on_random(result.program, target, draws=3), f"{text}\n{result.program}"


@pytest.mark.slow
@pytest.mark.search
@SETTINGS
@given(spec_texts())
def test_every_random_spec_ends_in_a_kernel_or_a_located_error(generated: GeneratedSpec) -> None:
    _ends_well(generated)


@pytest.mark.slow
@pytest.mark.search
@SETTINGS
@given(spec_texts("packing"))
def test_every_packing_clause_ends_in_a_kernel_or_a_located_error(
    generated: GeneratedSpec,
) -> None:
    _ends_well(generated)


@settings(max_examples=80, deadline=None, database=None)
@given(spec_texts())
def test_the_grammar_writes_specs_that_parse(generated: GeneratedSpec) -> None:
    # The valid ones resolve; the invalid ones (packing clauses) are caught here or later.
    try:
        spec = parse_spec(generated.text, file="fuzz.spec")
    except QuillError as e:
        assert not generated.valid, f"{generated.text}\n{e}"
        assert e.location is not None
        return
    assert spec.output_slots()


def test_the_bench_draws_the_same_specs_from_a_seed() -> None:
    first = seeded(60, 0)
    assert first == seeded(60, 0) and first != seeded(60, 1)
    assert {g.family for g in first} == set(FAMILIES)


@pytest.mark.parametrize(
    ("code", "stderr", "outcome"),
    [
        (0, "", "kernel"),
        (2, "porcupine: f.spec:3:7: error: x\n", "located error"),
        (2, "porcupine: error: no location\n", "unlocated error"),
        (1, "porcupine: internal error: ValueError: boom\n", "internal error"),
        (1, "porcupine: --timeout 10 s reached while synthesizing (stopped after 11.0 s)\n",
         "timeout without kernel"),
        (1, "porcupine: s: no verified kernel within the timeout\n", "nothing found"),
        (-9, "", "internal error"),
    ],
)  # fmt: skip
def test_the_bench_classifies_what_synth_said(code: int, stderr: str, outcome: str) -> None:
    assert classify(code, "", stderr)[0] == outcome
