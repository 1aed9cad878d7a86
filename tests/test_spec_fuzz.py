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

from eval.spec_grammar import GeneratedSpec
from porcupine.errors import SynthesisError
from porcupine.layouts import check
from porcupine.packings import requested
from porcupine.synthesize import synthesize
from quill.errors import QuillError
from quill.spec import parse_spec
from quill.verify import agrees_on_random, verify

pytestmark = [pytest.mark.slow, pytest.mark.search]

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


@SETTINGS
@given(spec_texts())
def test_every_random_spec_ends_in_a_kernel_or_a_located_error(generated: GeneratedSpec) -> None:
    _ends_well(generated)


@SETTINGS
@given(spec_texts("packing"))
def test_every_packing_clause_ends_in_a_kernel_or_a_located_error(
    generated: GeneratedSpec,
) -> None:
    _ends_well(generated)
