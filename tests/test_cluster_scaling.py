"""The cluster model of eval/cluster_scaling.py: time is start-up, the bundle to every
worker, then the slowest of computation, the link and the server's dispatch."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eval.cluster_scaling import TileCost, bottleneck, predict, table

costs = st.builds(
    TileCost,
    seconds=st.floats(1e-4, 10),
    up_bytes=st.floats(0, 1e7),
    down_bytes=st.floats(0, 1e7),
    bundle_bytes=st.floats(0, 1e8),
    start_s=st.floats(0, 10),
    dispatch_s=st.floats(0, 0.1),
)


@settings(max_examples=300, deadline=None)
@given(cost=costs, cts=st.integers(1, 10**5), workers=st.integers(1, 256))
def test_prediction_is_bounded_by_each_part(cost: TileCost, cts: int, workers: int) -> None:
    bits = 1e9
    got = predict(cost, cts, workers, bits)
    fixed = cost.start_s + workers * cost.bundle_bytes * 8 / bits
    parts = {
        "compute": cts * cost.seconds / workers,
        "link": cts * max(cost.up_bytes, cost.down_bytes) * 8 / bits,
        "dispatch": cts * cost.dispatch_s,
    }
    assert got == pytest.approx(fixed + max(parts.values()))
    assert parts[bottleneck(cost, cts, workers, bits)] == max(parts.values())
    # A faster link never makes it slower.
    assert predict(cost, cts, workers, 10 * bits) <= got + 1e-9


def test_the_table_has_a_row_per_worker_count() -> None:
    cost = TileCost(
        seconds=0.1, up_bytes=4e5, down_bytes=4e5, bundle_bytes=1e7, start_s=0.5, dispatch_s=0.002
    )
    lines = table(cost, 2312)
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["1", "8", "64"]
    assert "(compute)" in lines[2] and "(dispatch)" in lines[4]  # 64 workers: the server
