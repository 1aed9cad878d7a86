"""Threads or processes for a server's cores, and what a pool costs to start.

Used by ``eval.throughput`` (its ``--threads`` section); alone:

    OMP_NUM_THREADS=1 python -m eval.throughput_threads [--reps 3] [--count 12]

For box blur, Sobel and Harris, each at the ring the compiler chose for a 512x512 image and
at the next ring up (the same verified program emitted for the larger parameter set), the
server's throughput on ``count`` ciphertexts in four ways, interleaved: one process on one
OpenMP thread (the baseline), one process on two OpenMP threads inside each OpenFHE call
(``set_threads(2)``), two threads of the server's process of one OpenMP thread each (the
default engine, warmed up), and two worker processes of one thread each (a pool already started,
as a long-lived server has it; the server's process also evaluates a tile whenever the
result it waits for is not ready, as it does by default). Also the pool's start-up (until
both workers have loaded the bundle) and the server process's own seconds per ciphertext
it hands to a worker.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ONE = "1 process, 1 thread"
OPENMP = "1 process, 2 OpenMP threads"
SERVER_THREADS = "2 server threads, 1 OpenMP thread each"
POOL = "2 worker processes, 1 thread"
WAYS = (ONE, OPENMP, SERVER_THREADS, POOL)


def _request(module: Any, count: int) -> tuple[Any, bytes, bytes]:
    """A client, its bundle, and a request of at least ``count`` ciphertexts (a stencil's
    random image tall enough for 2 x ``count`` tiles)."""
    client = module.Client()
    height, width = module.tile_shape()
    rows = height
    while module.plan_tiles((rows, width)).count < 2 * count:
        rows += max(1, height // 4)
    image = np.random.default_rng(count).integers(0, 16, size=(rows, width))
    bundle, request = client.public_bundle(), client.encrypt(x=image)
    return client, bundle, request


def _evaluate(server: Any, request: bytes) -> float:
    start = time.perf_counter()
    server.evaluate(request)
    return time.perf_counter() - start


def ways(path: Path, reps: int, count: int) -> dict[str, Any]:
    """The four ways on one module: median seconds per ciphertext each, interleaved."""
    from porcupine.backend import load_module

    module: Any = load_module(path)
    _, bundle, request = _request(module, count)
    cts = module.request_info(io.BytesIO(request))["ciphertexts"]
    alone = module.Server(bundle, workers=1)
    threads = module.Server(bundle, workers=2)
    pool = module.Server(bundle, workers=2, pool_min=0)
    threads.evaluate(request)  # warms the engine up, as a long-lived server has it
    pool.evaluate(request)  # starts the pool: a long-lived server's steady state
    seconds: dict[str, list[float]] = {w: [] for w in WAYS}
    try:
        for _ in range(reps):
            module.set_threads(1)
            seconds[ONE].append(_evaluate(alone, request) / cts)
            module.set_threads(2)
            seconds[OPENMP].append(_evaluate(alone, request) / cts)
            module.set_threads(1)
            seconds[SERVER_THREADS].append(_evaluate(threads, request) / cts)
            seconds[POOL].append(_evaluate(pool, request) / cts)
    finally:
        module.set_threads(1)
        threads.close()
        pool.close()
    per = {w: statistics.median(s) for w, s in seconds.items()}
    return {"ring": module.RING_DIM, "ciphertexts": cts, "per_ct_s": per}


def startup(path: Path, reps: int) -> dict[str, float]:
    """The pool's start-up (two workers, until both loaded the bundle) and the server
    process's CPU seconds per ciphertext it hands out (median of ``reps``)."""
    from porcupine.backend import load_module

    module: Any = load_module(path)
    _, bundle, request = _request(module, 24)
    cts = module.request_info(io.BytesIO(request))["ciphertexts"]
    starts, dispatch = [], []
    for _ in range(reps):
        server = module.Server(bundle, workers=2, pool_min=0)
        begin = time.perf_counter()
        engine = module.Engine.pool(2, server._id, server.bundle)
        while not engine.ready():
            time.sleep(0.005)
        starts.append(time.perf_counter() - begin)
        stream = io.BytesIO(request)
        header = module._read_header(stream, module._REQUEST, "request")
        tasks = server._tasks(stream, module._plan_of(header, "r"), header["inputs"], {}, cts)
        cpu = time.process_time()  # the workers evaluate every tile: this process only sends
        for _ in module.ordered(engine, "_serve_tile", ((server._id, t) for t in tasks), str):
            pass
        dispatch.append((time.process_time() - cpu) / cts)
        engine.close()
    size = len(bundle)
    return {
        "start_s": statistics.median(starts),
        "dispatch_s": statistics.median(dispatch),
        "bundle_mb": size / 1e6,
    }


def rings(path: Path, name: str, spec_params: dict[str, int], set_name: str) -> list[Path]:
    """``path``, and the same program emitted at the next larger ring (when its noise
    holds there)."""
    from eval.throughput import emitted
    from quill.params import BY_NAME, SETS

    ring = BY_NAME[set_name].ring_dim
    larger = [s for s in SETS if s.ring_dim == 2 * ring and s.log2_q >= BY_NAME[set_name].log2_q]
    out = [path]
    for s in sorted(larger, key=lambda s: s.log2_q)[:1]:
        out.append(emitted(name, spec_params, s.name, f"_n{s.ring_dim}"))
    return out


def report(rows: list[dict[str, Any]], starts: list[dict[str, Any]]) -> list[str]:
    """Markdown: the threads-vs-processes table and the start-up figures."""
    out = [
        "| kernel | N | ciphertexts | "
        + " | ".join(f"{w} ms/ct" for w in WAYS)
        + " | 2 OpenMP threads / 1 | 2 server threads / 1 | 2 workers / 1 |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in WAYS) + " | ---: | ---: | ---: |",
    ]
    for r in rows:
        per = r["per_ct_s"]
        base = per[ONE]
        out.append(
            f"| {r['kernel']} | {r['ring']} | {r['ciphertexts']} | "
            + " | ".join(f"{per[w] * 1e3:.1f}" for w in WAYS)
            + " | "
            + " | ".join(f"{base / per[w]:.2f}x" for w in WAYS[1:])
            + " |"
        )
    out += ["", "| kernel | bundle MB | pool start-up s (2 workers) | dispatch ms per ct |"]
    out += ["| --- | ---: | ---: | ---: |"]
    for s in starts:
        out.append(
            f"| {s['kernel']} | {s['bundle_mb']:.1f} | {s['start_s']:.2f} | "
            f"{s['dispatch_s'] * 1e3:.2f} |"
        )
    return out


def measure(kernels: dict[str, Any], reps: int, count: int) -> tuple[list[Any], list[Any]]:
    """Both tables' rows for ``kernels`` (name -> (module path, spec params, set name))."""
    rows, starts = [], []
    for name, (path, params, set_name) in kernels.items():
        for module in rings(path, name, params, set_name):
            row = ways(module, reps, count)
            rows.append({"kernel": name, **row})
            print(f"  threads/processes {name} N={row['ring']}: {row['per_ct_s']}", file=sys.stderr)
        starts.append({"kernel": name, **startup(path, reps)})
    return rows, starts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--count", type=int, default=12, help="ciphertexts per evaluation")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from eval.throughput import KERNELS, compiled

    kernels = {name: compiled(name, (512, 512)) for name in KERNELS}
    rows, starts = measure(kernels, args.reps, args.count)
    print("\n".join(report(rows, starts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
