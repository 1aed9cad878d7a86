"""The kernel suite: published, baseline and synthesized kernels of every benchmark.

The synthesized kernels in ``kernels/results/*.json`` (written by
``eval/synthesize_suite.py``) are re-proven equal to their specs, are no worse than the
published kernels, run correctly under real OpenFHE encryption, and (for a few fast
kernels) are found again from scratch here. openfhe is a real dependency: never skipped.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# One OpenMP thread before openfhe loads (see tests/test_backend.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from porcupine.backend import run_encrypted
from porcupine.synthesize import Options, synthesize
from quill.cost import Objective, objective
from quill.ir import Program
from quill.noise import parameters
from quill.parser import load_program, parse_program
from quill.spec import Spec, load_spec
from quill.verify import verify

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # ``eval`` is a package at the repository root
    sys.path.insert(0, str(ROOT))

from eval import synthesize_suite as suite  # noqa: E402

KERNELS = ROOT / "kernels"
SUITE: tuple[str, ...] = suite.SUITE
AT_MOST_PUBLISHED = ("rotations", "ct_ct_mults", "mult_depth")
FROM_SCRATCH = ("box_blur", "gx", "linear_regression")  # each well under 10 s


def _spec(name: str) -> Spec:
    return load_spec(KERNELS / f"{name}.spec")


def _result(name: str) -> dict[str, Any]:
    path = KERNELS / "results" / f"{name}.json"
    if not path.is_file():
        pytest.fail(
            f"no synthesized result for {name}: {path.relative_to(ROOT)} is missing; "
            f"run `.venv/bin/python -m eval.synthesize_suite {name}`"
        )
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _program(name: str) -> Program:
    return parse_program(_result(name)["program"])


def test_suite_is_every_spec() -> None:
    assert sorted(SUITE) == sorted(p.stem for p in KERNELS.glob("*.spec"))


# --- published and baseline kernels --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["published", "baselines"])
@pytest.mark.parametrize("name", SUITE)
def test_reference_kernel_verifies(kind: str, name: str) -> None:
    program = load_program(KERNELS / kind / f"{name}.quill")
    verdict = verify(program, _spec(name))
    assert verdict.ok, verdict.counterexample


@pytest.mark.parametrize("name", SUITE)
def test_published_kernel_has_the_papers_counts(name: str) -> None:
    spec = _spec(name)
    counted = suite.counts(load_program(KERNELS / "published" / f"{name}.quill"), spec)
    stated = suite.paper_counts(name)
    assert {k: counted[k] for k in stated} == stated


# --- synthesized results -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", SUITE)
def test_result_is_proven_equal_to_its_spec(name: str) -> None:
    program = _program(name)
    assert program.name == name
    verdict = verify(program, _spec(name))
    assert verdict.ok, verdict.counterexample


@pytest.mark.parametrize("name", SUITE)
def test_result_counts_are_its_programs(name: str) -> None:
    """The counts and cost stored in the file are recomputed from its program."""
    data = _result(name)
    recounted = suite.counts(_program(name), _spec(name))
    assert {k: data[k] for k in recounted} == recounted


@pytest.mark.parametrize("name", SUITE)
def test_result_is_no_worse_than_published(name: str) -> None:
    """No more rotations, products or depth than the paper's kernel, no higher cost, and no
    worse by the objective the suite is synthesized under (key switches, then instructions):
    fewer instructions, or fewer key switches bought with more (harris: the fewer-products
    pass saves a relinearization and a product for four ct*pt multiplies and adds)."""
    spec = _spec(name)
    program, paper = _program(name), load_program(KERNELS / "published" / f"{name}.quill")
    mine, published = suite.counts(program, spec), suite.counts(paper, spec)
    for key in AT_MOST_PUBLISHED:
        assert mine[key] <= published[key], (key, mine[key], published[key])
    assert mine["cost"] <= published["cost"]
    ranks = [objective(p, parameters(p, spec.n).param_set) for p in (program, paper)]
    assert ranks[0] <= ranks[1]
    if mine["instructions"] > published["instructions"]:
        assert ranks[0][0] < ranks[1][0], "more instructions without fewer key switches"


def test_hamming_distance_needs_at_most_six_instructions() -> None:
    assert len(_program("hamming_distance").body) <= 6


@pytest.mark.slow
@pytest.mark.parametrize("name", SUITE)
def test_result_blocks_are_current(name: str) -> None:
    """The published, baseline and comparison blocks are what the kernels give now."""
    data, spec = _result(name), _spec(name)
    published = suite.published_block(name, spec)
    assert data["published"] == published
    assert data["baseline"] == suite.reference_kernel("baselines", name, spec)
    assert data["comparison"] == suite.comparison(data, published)
    assert data["size"] == suite.size_of(spec)


def test_readme_is_generated_from_the_results() -> None:
    assert (KERNELS / "README.md").read_text() == suite.readme_text(suite.load_results())


# --- encrypted ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.openfhe
@pytest.mark.parametrize("name", SUITE)
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_result_runs_encrypted(name: str, seed: int) -> None:
    data, spec = _result(name), _spec(name)
    run = run_encrypted(spec, program=_program(name), seed=seed, reps=1)
    assert run.ok, run.summary()
    assert run.ct_ct_depth_used <= data["mult_depth"]


# --- from scratch --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.search
@pytest.mark.parametrize("name", FROM_SCRATCH)
def test_synthesis_from_scratch_reproduces_the_result(name: str) -> None:
    data = _result(name)
    found = synthesize(_spec(name), timeout=60, options=Options(goal=Objective(data["objective"])))
    assert found.optimal == data["optimal"]
    again = found.to_json()
    for key in ("instructions", "rotations", "additions", "ct_ct_mults", "mult_depth", "cost"):
        assert again[key] == data[key], key
