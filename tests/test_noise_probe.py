"""The noise model under real OpenFHE, at the small parameter sets (N <= 4096; every set is
probed by ``eval/noise_probe.py``): the exact noise measurement, worst-case inputs, the
model's constants against measurements, and encrypted probes at the edge of each set that
must decrypt every slot correctly with no more noise than predicted."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before openfhe loads (see test_backend.py)

from typing import Any

import numpy as np
import pytest

from porcupine.backend.noise_probe import PATTERNS, edge, primitives, run
from porcupine.backend.planning import new_context
from porcupine.backend.rawnoise import RawDecryptor, packing_root, worst_slots
from quill.noise import MARGIN_BITS
from quill.params import SETS, ParameterSet, by_name
from quill.slots import T

SMALL = [s for s in SETS if s.ring_dim <= 4096]
EDGES = [(s, pattern) for s in SMALL for pattern in PATTERNS if edge(pattern, s)]


@pytest.mark.slow
@pytest.mark.openfhe
@pytest.mark.parametrize("name", ["n2048_q50_w10", "n4096_q108_w12"])
def test_worst_case_inputs_have_every_coefficient_at_half_t(name: str) -> None:
    cc: Any = new_context(by_name(name))
    keys = cc.KeyGen()
    decryptor = RawDecryptor(cc, keys.secretKey)
    values = worst_slots(
        cc.GetRingDimension(), packing_root(cc, keys, decryptor), np.random.default_rng(1)
    )
    ciphertext = cc.Encrypt(keys.publicKey, cc.MakePackedPlaintext([int(v) for v in values]))
    assert set(decryptor.plaintext(ciphertext)) == {(T - 1) // 2, (T + 1) // 2}
    plain = cc.Decrypt(keys.secretKey, ciphertext)
    plain.SetLength(len(values))
    assert np.array_equal(np.array(plain.GetPackedValue()) % T, values)
    assert 0 < decryptor.noise(ciphertext).bits < by_name(name).noise.fresh


@pytest.mark.openfhe
def test_the_measured_budget_says_when_decryption_fails() -> None:
    # One squaring past the edge (measured: 3 squarings fail on 2 x 54-bit towers), the
    # noise has wrapped around: uniform, it reads as the capacity, with no budget left.
    s = by_name("n4096_q108_w27")
    build, _ = PATTERNS["square"]
    inside, beyond = run(build(edge("square", s)), s), run(build(edge("square", s) + 1), s)
    assert inside.budget > MARGIN_BITS and inside.wrong_slots == 0
    assert beyond.budget < 0.01 and beyond.wrong_slots > 0


@pytest.mark.slow
@pytest.mark.openfhe
@pytest.mark.parametrize("param_set", SMALL, ids=lambda s: s.name)
def test_the_constants_bound_the_measured_primitives(param_set: ParameterSet) -> None:
    measured = primitives(param_set, seed=4)
    model = param_set.noise
    # OpenFHE's keys and encryptions are not seeded: say what was measured if one fails
    assert measured.fresh <= model.fresh, measured
    assert max(measured.key_switch, measured.relin_key_switch) <= model.key_switch, measured
    assert measured.mul_pt <= model.mul_pt and measured.mul_cc <= model.mul_cc, measured
    assert abs(measured.add_pt) < 0.1, measured  # a plaintext addend adds no noise


@pytest.mark.slow
@pytest.mark.openfhe
@pytest.mark.parametrize(("param_set", "pattern"), EDGES, ids=[f"{s.name}-{p}" for s, p in EDGES])
def test_the_longest_chain_the_model_accepts_decrypts_correctly(
    param_set: ParameterSet, pattern: str
) -> None:
    build, _ = PATTERNS[pattern]
    probe = run(build(edge(pattern, param_set)), param_set, seed=0)
    assert probe.wrong_slots == 0, probe
    assert probe.slack >= 0, probe  # the model never undershoots


def test_every_small_set_is_probed_beyond_rotations() -> None:
    # The smallest set holds only linear kernels (and one multiply by a constant); every
    # other holds a multiply by a plaintext.
    linear = ("rot_add", "evalsum", "mul_const", "rot_mul_const")
    probed = {s.name for s, pattern in EDGES if pattern not in linear}
    assert probed == {s.name for s in SMALL} - {"n2048_q50_w10"}
