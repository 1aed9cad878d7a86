"""The backend's contexts for the evaluation (``porcupine/backend/contexts.py``): OpenFHE's
defaults for a depth, the matching parameter set, timed keys and their serialized size,
and a session in a context built elsewhere."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before openfhe loads (see test_backend.py)

import numpy as np

from porcupine.backend import EmitOptions, emitted_module
from porcupine.backend.contexts import (
    ContextSession,
    clear_rotation_keys,
    context_facts,
    default_context,
    matching_set,
    rotation_key_bytes,
    timed_keys,
)
from quill.params import by_name
from quill.parser import load_program
from quill.spec import load_spec

pytestmark = [pytest.mark.openfhe]

KERNELS = Path(__file__).resolve().parent.parent / "kernels"


def test_defaults_are_what_openfhe_picks_for_a_depth() -> None:
    # OpenFHE's own choice (shared/reference/openfhe-bfv.md): 60-bit towers, one per level
    # plus one, BV with a whole tower per digit; N from the security table.
    for depth, ring, log2_q, name in ((1, 8192, 120, "n8192_q120_w0"),
                                      (2, 8192, 180, "n8192_q180_w0")):  # fmt: skip
        cc = default_context(depth)
        facts = context_facts(cc)
        assert (facts.ring_dim, facts.digit_size, facts.key_switching) == (ring, 0, "BV")
        assert math.isclose(facts.log2_q, log2_q, abs_tol=0.01)
        assert matching_set(cc).name == name


def test_matching_set_of_a_chosen_set_is_itself() -> None:
    from porcupine.backend.planning import new_context

    for name in ("n4096_q60_w20", "n4096_q108_w12", "n8192_q120_w30"):
        assert matching_set(new_context(by_name(name))).name == name


def test_timed_keys_count_time_and_size_the_rotation_keys() -> None:
    cc = default_context(1)
    keys, one = timed_keys(cc, [1], ct_ct_mult=False)
    _, three = timed_keys(cc, [1, 2, 4], ct_ct_mult=True)
    assert (one.rotation_keys, three.rotation_keys) == (1, 3)
    assert one.relin_s == 0 < three.relin_s and one.rotation_s > 0
    assert math.isclose(three.evaluation_keys_s, three.relin_s + three.rotation_s)
    # Three keys of one context serialize to about three times one key.
    assert 2.9 < three.rotation_key_bytes / one.rotation_key_bytes < 3.1
    assert rotation_key_bytes(keys.secretKey.GetKeyTag()) == one.rotation_key_bytes
    clear_rotation_keys()
    assert rotation_key_bytes(keys.secretKey.GetKeyTag()) == 0


def test_a_kernel_runs_correctly_in_openfhe_defaults() -> None:
    spec = load_spec(KERNELS / "box_blur.spec")
    program = load_program(KERNELS / "baselines/box_blur.quill")
    cc = default_context(1)
    module = emitted_module(program, spec, EmitOptions(param_set=matching_set(cc)))
    session = ContextSession(cc, [module])
    assert session.ring_dim == 8192 and session.keygen.rotation_keys == 3
    inputs = spec.random_inputs(np.random.default_rng(1))
    args = session.arguments(module, inputs)
    _, bad = session.check(module, spec, inputs, args)
    assert bad == () and session.run(module, args)[1] > 0
    clear_rotation_keys()
