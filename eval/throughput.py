"""Server throughput on worker processes and on Dask, memory at large sizes, cluster scaling.

    OMP_NUM_THREADS=1 python -m eval.throughput [--reps 3] [--big 4096] [--out eval/throughput.md]

One command for every figure of issue 22; it ends by printing the goal figures.

1. 512x512 Sobel and Harris on the camera photo (kernels compiled for the image with
   ``porcupine.app_plan.compile_for``; the verified programs are cached in build/throughput
   and emitted afresh on every run): a client here and a server process (``python K.py
   serve``) on 1 worker (in process), up to 2 worker processes (the pool starts when the
   request pays for it), a Dask ``LocalCluster`` of 2 worker processes, and 2 workers with
   the request streamed into the server as it is encrypted (end to end), interleaved,
   ``--reps`` times; medians; every output pixel checked against the spec's reference.
   Then a long-lived server (the Python API) on 1 worker, a started pool of 2 and the
   joined cluster, evaluating the same request again and again (:func:`steady`).
2. Threads against processes (:mod:`eval.throughput_threads`): per kernel and ring, one
   process on 1 and 2 OpenMP threads against two worker processes; the pool's start-up.
3. Box blur at 1024x1024, 2048x2048 and the largest square image up to ``--big`` that fits
   here, client and server each in their own process, with their peak memory (VmHWM of the
   process itself: ``ru_maxrss`` counts, across exec, what the parent held at fork).
4. A scaling table for a cluster (:mod:`eval.cluster_scaling`): 4096x4096 Harris on 1, 8
   and 64 workers at 1 and 10 Gbit/s, from the measured seconds and bytes per tile, one
   point checked against the Dask run of section 1.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "throughput"
# The server program's configurations: in process; 2 threads (the default engine); a pool of
# 2 worker processes (--processes); a Dask LocalCluster of 2; 2 threads with the request
# streamed into the server as the client encrypts it (end to end).
CONFIGS = ("1 worker", "2 threads", "2 processes", "Dask 2 workers", "2 threads, streamed")
ONE, THREADS, PROCESSES, DASK, STREAMED = CONFIGS

# Runs the server module as its own program and reports its peak memory and its workers'
# (VmHWM: the peak of the process's own memory; a thread samples the workers' while they live).
_SERVE = """
import json, os, runpy, sys, threading, time
import psutil
def hwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(f.read().split("VmHWM:")[1].split()[0])
    except (OSError, IndexError):
        return 0
peak = {}
def sample():
    while True:
        for child in psutil.Process().children():
            peak[child.pid] = max(peak.get(child.pid, 0), hwm(child.pid))
        time.sleep(0.1)
threading.Thread(target=sample, daemon=True).start()
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    workers = max(peak.values(), default=0)
    print(json.dumps({"server_kb": hwm(os.getpid()), "workers_kb": workers}), file=sys.stderr)
"""


def vm_hwm_kb() -> int:
    """This process's peak resident memory (VmHWM), in KiB."""
    with open("/proc/self/status") as f:
        return int(f.read().split("VmHWM:")[1].split()[0])


def _spin(_: int) -> float:
    start, x = time.perf_counter(), 0
    for i in range(5_000_000):
        x += i
    return time.perf_counter() - start


def parallelism() -> float:
    """How much of two cores this machine gives two processes now: a pure-Python loop,
    once alone and twice side by side (2.0: two free cores; 1.0: one)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_spin, [0, 0])  # warm
        one = min(sum(pool.map(_spin, [0])) for _ in range(3))
        start = time.perf_counter()
        pool.map(_spin, [0, 0])
        return 2 * one / (time.perf_counter() - start)


KERNELS = ("box_blur", "sobel", "harris")


def compiled(name: str, shape: tuple[int, int]) -> tuple[Path, dict[str, int], str]:
    """The kernel ``name`` compiled for data of ``shape``: the emitted module's path, the
    tile's spec params and the parameter set. The verified program is cached in
    build/throughput (a compile takes minutes); the module is emitted afresh each run, so
    that it carries today's runtime sections."""
    from porcupine.app_plan import compile_for
    from quill.printer import format_program
    from quill.spec import load_spec

    cache = BUILD / f"{name}_{shape[0]}x{shape[1]}.json"
    if not cache.exists():
        BUILD.mkdir(parents=True, exist_ok=True)
        k = compile_for(load_spec(ROOT / "kernels" / f"{name}.spec"), shape)
        facts = {
            "program": format_program(k.result.program),
            "params": dict(k.spec.params),
            "param_set": k.param_set.name,
        }
        cache.write_text(json.dumps(facts, indent=1))
    facts = json.loads(cache.read_text())
    suffix = f"_{shape[0]}x{shape[1]}"
    path = emitted(name, facts["params"], facts["param_set"], suffix, facts["program"])
    return path, facts["params"], facts["param_set"]


def emitted(
    name: str, params: dict[str, int], set_name: str, suffix: str, program: str | None = None
) -> Path:
    """The module of ``name``'s cached program (``program``, or the 512x512 one) at
    ``params`` emitted for parameter set ``set_name``, written to build/throughput."""
    from porcupine.backend import EmitOptions, emit_python
    from quill.params import BY_NAME
    from quill.parser import parse_program
    from quill.spec import load_spec
    from quill.verify import verify

    if program is None:
        program = json.loads((BUILD / f"{name}_512x512.json").read_text())["program"]
    spec = load_spec(ROOT / "kernels" / f"{name}.spec", params)
    kernel = parse_program(program)
    if not verify(kernel, spec).ok:  # a cache is not a proof: never emit an unverified kernel
        raise SystemExit(f"{name}: the cached program in {BUILD} is not equal to the spec")
    text = emit_python(kernel, spec, EmitOptions(param_set=BY_NAME[set_name]))
    path = BUILD / f"{name}{suffix}.py"
    path.write_text(text)
    return path


def reference(name: str, image: Any) -> Any:
    """The spec's output on the whole image."""
    from quill.spec import load_spec
    from quill.spec_array import reference_array
    from quill.spec_shapes import shape_params

    spec = load_spec(ROOT / "kernels" / f"{name}.spec")
    params = shape_params(spec, {"x": image.shape})
    return reference_array(spec.origin.source, params, {"x": image})


def correct(output: Any, want: Any) -> bool:
    """Every output pixel the spec defines is the spec's."""
    got = np.ma.getdata(output)[want.matters]
    return bool(np.array_equal(got, want.values[want.matters]))


def photo(bits: int) -> Any:
    from examples.photo import camera, quantize

    return quantize(camera(), bits)


def throughput(name: str, reps: int, address: str, bits: int) -> dict[str, Any]:
    """Section 1 for one kernel: every configuration, interleaved, ``reps`` times."""
    from porcupine.backend.app_run import run_two_party

    image = photo(bits)
    module, _, _ = compiled(name, image.shape)
    want = reference(name, image)
    runs: dict[str, list[Any]] = {c: [] for c in CONFIGS}
    for _ in range(reps):
        for config in CONFIGS:
            where: dict[str, Any] = {"dask": address} if config == DASK else {}
            where = where or {"workers": int(config[0]), "processes": config == PROCESSES}
            where["overlap"] = config == STREAMED
            run = run_two_party(module, {"x": image}, **where)
            if not correct(run.output, want):
                raise SystemExit(f"{name} on {config}: wrong output")
            runs[config].append(run)
            print(
                f"  {name} {config}: server {run.server_wall_s:.2f} s, end to end "
                f"{run.total_s:.2f} s ({run.engine})",
                file=sys.stderr,
            )
    return {"name": name, "module": module, "image": image.shape, "runs": runs}


STEADY = ("1 worker", "2 threads", "2 processes (pool started)", "Dask 2 workers (joined)")


def steady(name: str, reps: int, address: str, bits: int) -> dict[str, Any]:
    """Section 1's long-lived server (the Python API): the whole photo's request evaluated
    again and again by a server in this process on 1 worker, on 2 threads, on a pool of 2
    processes it already started, and on the Dask cluster it already joined (the bundle
    installed); interleaved,
    ``reps`` times, every response decrypted and checked. What a serving process sustains,
    without the one-time start of section 1's server program."""
    from distributed import Client

    from porcupine.backend import load_module

    image = photo(bits)
    path, _, _ = compiled(name, image.shape)
    module: Any = load_module(path)
    want = reference(name, image)
    client = module.Client()
    bundle, request = client.public_bundle(), client.encrypt(x=image)
    seconds: dict[str, list[float]] = {c: [] for c in STEADY}
    with Client(address, set_as_default=False) as dask:
        one, threads, pool, cluster = STEADY
        servers = {
            one: module.Server(bundle, workers=1),
            threads: module.Server(bundle, workers=2),
            pool: module.Server(bundle, workers=2, pool_min=1),
            cluster: module.Server(bundle, dask=dask),
        }
        try:
            for rep in range(reps + 1):  # the first starts the pool, joins the cluster: untimed
                for config, server in servers.items():
                    begin = time.perf_counter()
                    response = server.evaluate(request)
                    elapsed = time.perf_counter() - begin
                    if not correct(client.decrypt(response), want):
                        raise SystemExit(f"{name} on a long-lived {config}: wrong output")
                    if rep:
                        seconds[config].append(elapsed)
        finally:
            for server in servers.values():
                server.close()
    cts = module.request_info(io.BytesIO(request))["ciphertexts"]
    return {c: statistics.median(v) for c, v in seconds.items()} | {"ciphertexts": cts}


def median(runs: list[Any], field: str) -> float:
    return statistics.median(float(getattr(r, field)) for r in runs)


def big_child(name: str, size: int, workers: int) -> dict[str, Any]:
    """Section 3 in this (fresh) process: the client here, the server as a subprocess."""
    from porcupine.backend import load_module

    module: Any = load_module(compiled(name, (size, size))[0])
    image = np.random.default_rng(size).integers(0, 256, size=(size, size))
    with tempfile.TemporaryDirectory(prefix="porcupine-big-") as tmp:
        bundle, request, response = (Path(tmp) / f for f in ("b.bin", "r.bin", "o.bin"))
        start = time.perf_counter()
        client = module.Client()
        with bundle.open("wb") as out:
            client.public_bundle_into(out)
        with request.open("wb") as out:
            client.encrypt_into(out, x=image)
        encrypted = time.perf_counter()
        command = [sys.executable, "-c", _SERVE, str(module.__file__), "serve"]
        files = [str(bundle), str(request), str(response)]
        served = subprocess.run(
            [*command, *files, "--workers", str(workers), "--quiet"],
            capture_output=True,
            text=True,
            check=True,
        )
        done = time.perf_counter()
        with response.open("rb") as stream:
            output = client.decrypt_stream(stream)
        decrypted = time.perf_counter()
        client_kb = vm_hwm_kb()  # before the check below computes the reference
        memory = json.loads(served.stderr.strip().splitlines()[-1])
        timing = json.loads(served.stdout.strip().splitlines()[-1])
        sizes = request.stat().st_size, response.stat().st_size
    tiles = module.plan_tiles((size, size)).count
    return {
        "size": size,
        "tiles": tiles,
        "tile": list(module.tile_shape()),
        "ring": module.RING_DIM,
        "correct": correct(output, reference(name, image)),
        "encrypt_s": encrypted - start,
        "server_s": done - encrypted,
        "decrypt_s": decrypted - done,
        "request_mb": sizes[0] / 1e6,
        "response_mb": sizes[1] / 1e6,
        "arrays_mb": size * size * (8 + 8 + 8 + 1) / 1e6,
        "client_kb": client_kb,
        "engine": timing["engine"],
        **memory,
    }


def big(name: str, size: int, workers: int) -> dict[str, Any]:
    """Section 3 for one size, in a fresh process (its peak memory is its own)."""
    command = [sys.executable, "-m", "eval.throughput", "--big-child", f"{name}:{size}:{workers}"]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise SystemExit(f"box blur at {size}x{size} failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def largest(name: str, most: int, workers: int) -> list[dict[str, Any]]:
    """1024x1024 and 2048x2048, then the largest power of two up to ``most`` that runs."""
    rows = [big(name, s, workers) for s in (1024, 2048) if s <= most]
    size = most
    while size > 2048:
        try:
            rows.append(big(name, size, workers))
            break
        except (SystemExit, MemoryError) as e:
            print(f"  {size}x{size} did not run: {e}", file=sys.stderr)
            size //= 2
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--big", type=int, default=4096, help="the largest box blur image")
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "throughput.md")
    parser.add_argument("--big-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.big_child:
        name, size, workers = args.big_child.split(":")
        print(json.dumps(big_child(name, int(size), int(workers))))
        return 0
    from distributed import LocalCluster

    from eval.throughput_report import report
    from eval.throughput_threads import measure

    load_start = os.getloadavg()[0]
    args.parallel, results = [parallelism()], []
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        for name in ("sobel", "harris"):
            results.append(throughput(name, args.reps, cluster.scheduler_address, 8))
            results[-1]["steady"] = steady(name, args.reps, cluster.scheduler_address, 8)
            args.parallel.append(parallelism())
    threads = measure({k: compiled(k, (512, 512)) for k in KERNELS}, args.reps, 12)
    blur = largest("box_blur", args.big, 2)
    args.load = (load_start, os.getloadavg()[0])
    text, goals = report(results, blur, threads, args)
    args.out.write_text(text)
    print(text)
    print("\ngoal figures (under the load stated):\n" + "\n".join(goals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
