"""The application's tile choice knows the server's workers: the whole job's time is the
client's every ciphertext plus the server's rounds (ciphertexts rounded up to a multiple of
the workers), and the plan picks the option that minimizes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from porcupine.app_plan import TileOption, plan_application
from porcupine.synthesize import synthesize
from quill.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent


def _option(tiles: int, kernel_ms: float, client_ms: float) -> TileOption:
    return TileOption(
        params=(("h", 8), ("w", 8)),
        shape=(8, 8),
        param_set="n4096_q60_w20",
        tiles=tiles,
        kernel_ms=kernel_ms,
        client_ms=client_ms,
    )


@settings(max_examples=300, deadline=None)
@given(
    tiles=st.integers(1, 100_000),
    kernel_ms=st.floats(0.01, 1000, allow_nan=False),
    client_ms=st.floats(0, 100, allow_nan=False),
    workers=st.integers(1, 128),
)
def test_time_over_workers_is_rounds_of_the_kernel(
    tiles: int, kernel_ms: float, client_ms: float, workers: int
) -> None:
    o = _option(tiles, kernel_ms, client_ms)
    assert o.time_ms(1) == pytest.approx(o.total_ms)
    rounds = -(-o.ciphertexts // workers)
    assert o.time_ms(workers) == pytest.approx(o.ciphertexts * client_ms + rounds * kernel_ms)
    # More workers never take longer, and never beat a perfect split of the kernel's work.
    assert o.time_ms(workers + 1) <= o.time_ms(workers) + 1e-9
    floor = o.ciphertexts * client_ms + o.ciphertexts * kernel_ms / workers
    assert o.time_ms(workers) >= floor - 1e-6


def test_rounding_up_to_the_workers_can_favour_more_smaller_ciphertexts() -> None:
    # 5 ciphertexts of 100 ms against 8 of 60 ms (500 against 480 ms on one core): on 4
    # workers both take 2 rounds, 200 ms against 120 ms.
    few, many = _option(10, 100.0, 0.0), _option(16, 60.0, 0.0)
    assert (few.time_ms(4), many.time_ms(4)) == (200.0, 120.0)
    # And the other way: on 5 workers the 5 ciphertexts take one round, the 8 two.
    assert few.time_ms(5) == 100.0 < many.time_ms(5) == 120.0


@pytest.mark.search
@pytest.mark.parametrize("workers", [1, 2, 8, 64])
def test_the_plan_minimizes_the_time_on_its_workers(workers: int) -> None:
    spec = load_spec(ROOT / "kernels" / "box_blur.spec")
    program = synthesize(spec, timeout=60).program
    plan = plan_application(spec, program, (300, 200), workers=workers)
    assert plan.workers == workers
    best = min(o.time_ms(workers) for o in plan.options)
    assert plan.chosen.time_ms(workers) == best
    assert f"{workers} workers" in plan.describe() or workers == 1


def test_workers_must_be_positive() -> None:
    spec = load_spec(ROOT / "kernels" / "box_blur.spec")
    with pytest.raises(ValueError, match="workers must be at least 1"):
        plan_application(spec, None, (64, 64), workers=0)  # type: ignore[arg-type]
