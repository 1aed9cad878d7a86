"""The parameter sets and the choice among them: every set is what OpenFHE builds at 128-bit
classic security, and the chooser picks the cheapest set the noise model proves safe."""

from __future__ import annotations

import math
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before openfhe loads (see test_backend.py)

import openfhe
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import programs, slot_counts

from porcupine.backend import runtime
from porcupine.backend.planning import context_settings, new_context
from quill.cost import DEFAULT_TABLE, CostTable, measures
from quill.noise import (
    MARGIN_BITS,
    NoiseBudgetExceeded,
    accepts,
    assess,
    for_depth,
    parameters,
    reference_program,
    shared_parameters,
)
from quill.params import MAX_LOG2_Q, SECURITY, SETS, ParameterSet, by_name
from quill.parser import parse_program
from quill.relin import place_relinearizations

MANY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.openfhe
@pytest.mark.parametrize("param_set", SETS, ids=lambda s: s.name)
def test_every_set_is_what_openfhe_builds_at_128_bit_classic(param_set: ParameterSet) -> None:
    cc = new_context(param_set, SECURITY)
    assert cc.GetRingDimension() == param_set.ring_dim
    assert cc.GetElementParams().GetModulus() == param_set.modulus
    assert cc.GetDigitSize() == param_set.digit_size
    assert cc.GetKeySwitchTechnique() == getattr(openfhe, param_set.key_switching)
    assert runtime.fixed_settings(cc) == (SECURITY, param_set.multiplication)
    assert all(q.bit_length() == param_set.scaling_mod_size for q in param_set.towers)
    assert param_set.log2_q <= MAX_LOG2_Q[param_set.ring_dim]  # the HE standard's bound


@pytest.mark.openfhe
def test_openfhe_refuses_a_set_beyond_the_standard() -> None:
    # What the bound above means: 2 x 60-bit towers do not fit N = 4096 at 128 bits.
    settings = {**context_settings(by_name("n4096_q108_w27")), "scaling_mod_size": 60}
    with pytest.raises(RuntimeError, match="does not meet the security requirement"):
        openfhe.GenCryptoContext(runtime.context_parameters(openfhe.HEStd_128_classic, **settings))


@pytest.mark.slow
@MANY
@given(data=st.data(), slots=slot_counts)
def test_the_chooser_picks_the_cheapest_set_the_model_proves_safe(
    data: st.DataObject, slots: int
) -> None:
    program = place_relinearizations(data.draw(programs(slots=slots, max_instrs=10)))
    safe = [s for s in SETS if accepts(s, program, slots)]
    if not safe:
        with pytest.raises(NoiseBudgetExceeded):
            parameters(program, slots)
        return
    chosen = parameters(program, slots)
    assert chosen.param_set in safe and chosen.param_set.slots >= slots
    assert chosen.margin_bits >= MARGIN_BITS
    assert chosen == assess(program, chosen.param_set)
    latency = measures(program, chosen.param_set).latency_us
    assert all(measures(program, s).latency_us >= latency for s in safe)


def _squarings(count: int) -> str:
    body = "".join(f"  v{i + 1} = mul(v{i}, v{i})\n" for i in range(count))
    return f"kernel k(v0: ct) {{\n{body}  return v{count}\n}}\n"


def test_the_margin_is_required_of_the_noisiest_value() -> None:
    # Two squarings fit the 108-bit sets of N = 4096 (measured: three fail); and the margin
    # counts for every value, not only the result.
    s = by_name("n4096_q108_w27")
    assert accepts(s, parse_program(_squarings(2)))
    assert not accepts(s, parse_program(_squarings(3)))
    dropped = _squarings(3).replace("return v3", "w = add(v0, v0)\n  return w")
    assert accepts(s, parse_program(dropped))  # v3 is dead: not emitted, not counted
    kept = _squarings(3).replace("return v3", "w = sub(v3, v3)\n  return w")
    assert not accepts(s, parse_program(kept))


def test_a_row_must_hold_the_slots_and_every_evalsum_window() -> None:
    linear = parse_program("kernel k(x: ct) {\n  y = rot(x, 1)\n  return y\n}\n")
    assert parameters(linear, 1024).ring_dim == 2048
    assert parameters(linear, 1025).ring_dim == 4096
    window = parse_program("kernel k(x: ct) {\n  y = sum(x, 2048)\n  return y\n}\n")
    assert parameters(window, 16).ring_dim >= 4096
    with pytest.raises(NoiseBudgetExceeded, match="needs 16384 slots in a row, more than"):
        parameters(linear, 16384)


def test_only_sets_the_table_prices_are_chosen() -> None:
    program = reference_program(1)
    only = by_name("n8192_q216_w27")
    table = CostTable({only.name: DEFAULT_TABLE.at(only)}, source="one set")
    assert parameters(program, 16, table).param_set == only
    with pytest.raises(KeyError, match="no row for parameter set n4096_q108_w0"):
        table.at(by_name("n4096_q108_w0"))


@pytest.mark.parametrize("depth", range(4))
def test_the_search_prices_a_depth_at_a_set_that_holds_it(depth: int) -> None:
    assert accepts(for_depth(depth, 16), reference_program(depth), 16)


def test_sets_by_name() -> None:
    assert by_name("n4096_q108_w0").towers == by_name("n4096_q108_w27").towers
    assert math.isclose(by_name("n2048_q50_w10").capacity_bits, 50 - math.log2(65537) - 1)
    with pytest.raises(KeyError, match="no parameter set 'n4096'; the sets are n2048_q50_w10"):
        by_name("n4096")


def test_shared_parameters_hold_every_program() -> None:
    programs = [reference_program(d) for d in range(3)]
    shared = shared_parameters(programs, 16)
    assert all(accepts(shared.param_set, p, 16) for p in programs)
    assert shared.noise_bits == max(assess(p, shared.param_set).noise_bits for p in programs)
