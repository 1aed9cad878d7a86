"""A server on a cluster, predicted from what one tile costs here: seconds and bytes.

:func:`predict` is the model; :func:`table` prints it for a 4096x4096 Harris on 1, 8 and 64
workers at 1 and 10 Gbit/s; ``eval.throughput`` checks one point of it against a real run
here (a Dask ``LocalCluster`` of 2 workers on 512x512 Harris) and writes both into
eval/throughput.md.

The model's assumptions (stated with the table): the server sends every tile's ciphertexts
over its one link to a worker and gets the result back over the same link (a full-duplex
link: up and down each at the link's rate); transfer and computation overlap (several tiles
in flight per worker); the bundle goes to each worker once, over the same link, before the
first tile; workers compute at this machine's one-core speed per tile and share nothing
else; the server's own dispatch work per tile (its CPU: pickling, the scheduler) is one
more bottleneck. The client's encryption and decryption are not counted (they run on the
client's machine, or overlap with the server's work).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class TileCost:
    """What one ciphertext of a kernel costs, measured here."""

    seconds: float  # evaluation on one worker (one core, one thread), with (de)serialization
    up_bytes: float  # the request's bytes per ciphertext
    down_bytes: float  # the response's bytes per ciphertext
    bundle_bytes: float  # sent to each worker once
    start_s: float  # the engine's start-up (workers loading the bundle)
    dispatch_s: float  # the server process's own seconds per ciphertext it hands out


def predict(cost: TileCost, ciphertexts: int, workers: int, bits_per_s: float) -> float:
    """Seconds for ``ciphertexts`` on ``workers`` over a link of ``bits_per_s``:
    start + bundle to every worker + the slowest of computation (spread over the workers),
    the link (each direction) and the server's dispatch."""
    bundle = workers * cost.bundle_bytes * 8 / bits_per_s
    compute = ciphertexts * cost.seconds / workers
    link = ciphertexts * max(cost.up_bytes, cost.down_bytes) * 8 / bits_per_s
    dispatch = ciphertexts * cost.dispatch_s
    return cost.start_s + bundle + max(compute, link, dispatch)


def bottleneck(cost: TileCost, ciphertexts: int, workers: int, bits_per_s: float) -> str:
    """Which of computation, link and dispatch bounds :func:`predict`."""
    parts = {
        "compute": ciphertexts * cost.seconds / workers,
        "link": ciphertexts * max(cost.up_bytes, cost.down_bytes) * 8 / bits_per_s,
        "dispatch": ciphertexts * cost.dispatch_s,
    }
    return max(parts, key=lambda k: parts[k])


def table(cost: TileCost, ciphertexts: int) -> list[str]:
    """A markdown table: 1, 8 and 64 workers at 1 and 10 Gbit/s (what bounds each)."""
    lines = ["| workers | 1 Gbit/s | 10 Gbit/s |", "| ---: | ---: | ---: |"]
    for workers in (1, 8, 64):
        cells = []
        for bits in (1e9, 10e9):
            seconds = predict(cost, ciphertexts, workers, bits)
            cells.append(f"{seconds:.1f} s ({bottleneck(cost, ciphertexts, workers, bits)})")
        lines.append(f"| {workers} | {' | '.join(cells)} |")
    return lines
