"""The synthesizer's result records are built by keyword only (issue: results are structure,
not positional tuples that silently shift when a field is added)."""

from __future__ import annotations

import dataclasses

import pytest

from porcupine.context import Context
from porcupine.layouts.search import Tried
from porcupine.outcomes import PassApplied
from porcupine.results import Partial, StageResult, SynthesisResult
from porcupine.search.cegis import Found, SearchResult
from porcupine.steps import Rewritten

RECORDS = (
    Context,
    Found,
    Partial,
    PassApplied,
    Rewritten,
    SearchResult,
    StageResult,
    SynthesisResult,
    Tried,
)


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.__name__)
def test_a_result_record_is_frozen_and_keyword_only(record: type) -> None:
    assert record.__dataclass_params__.frozen  # type: ignore[attr-defined]
    positional = [f.name for f in dataclasses.fields(record) if not f.kw_only]
    assert positional == [], f"{record.__name__} takes {positional} by position"
    with pytest.raises(TypeError):
        record(*range(len(dataclasses.fields(record))))
