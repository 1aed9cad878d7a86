"""Server throughput on worker processes and on Dask, memory at large sizes, cluster scaling.

    OMP_NUM_THREADS=1 python -m eval.throughput [--reps 3] [--big 4096] [--out eval/throughput.md]

1. 512x512 Sobel and Harris on the camera photo (kernels compiled for the image with
   ``porcupine.app_plan.compile_for``): a client here and a server process
   (``python K.py serve``) on 1 worker (in process), 2 worker processes, and a Dask
   ``LocalCluster`` of 2 worker processes, interleaved, ``--reps`` times; medians; every
   output pixel checked against the spec's reference.
2. Box blur on the largest square image up to ``--big`` that fits here, client and server
   each in their own process, with their peak memory (``ru_maxrss``), against a 1024x1024
   image: the server's memory is bounded by the tiles in flight, not by the image.
3. A scaling table for a cluster: 4096x4096 Harris on 1, 8 and 64 workers at 1 and 10
   Gbit/s, predicted from the measured seconds and bytes per tile (assumptions stated).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
CONFIGS = ("1 worker", "2 workers", "Dask 2 workers")

# Runs the server module as its own program, then reports its peak memory and its workers'.
_SERVE = (
    "import atexit, json, resource, runpy, sys\n"
    "def report():\n"
    "    me, kids = (resource.getrusage(w).ru_maxrss for w in "
    "(resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))\n"
    "    print(json.dumps({'server_kb': me, 'workers_kb': kids}), file=sys.stderr)\n"
    "atexit.register(report)\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


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


def compiled(name: str, shape: tuple[int, int]) -> Path:
    """The kernel ``name`` compiled for data of ``shape`` (cached in build/throughput)."""
    from porcupine.app_plan import compile_for
    from porcupine.backend import EmitOptions, emit_python
    from quill.spec import load_spec

    path = BUILD / f"{name}_{shape[0]}x{shape[1]}.py"
    if not path.exists():
        BUILD.mkdir(parents=True, exist_ok=True)
        k = compile_for(load_spec(ROOT / "kernels" / f"{name}.spec"), shape)
        path.write_text(emit_python(k.result.program, k.spec, EmitOptions(param_set=k.param_set)))
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
    module = compiled(name, image.shape)
    want = reference(name, image)
    runs: dict[str, list[Any]] = {c: [] for c in CONFIGS}
    for _ in range(reps):
        for config in CONFIGS:
            where: dict[str, Any] = {"dask": address} if "Dask" in config else {}
            where = where or {"workers": int(config[0])}
            run = run_two_party(module, {"x": image}, **where)
            if not correct(run.output, want):
                raise SystemExit(f"{name} on {config}: wrong output")
            runs[config].append(run)
            print(f"  {name} {config}: server {run.server_wall_s:.2f} s", file=sys.stderr)
    return {"name": name, "module": module, "image": image.shape, "runs": runs}


def median(runs: list[Any], field: str) -> float:
    return statistics.median(float(getattr(r, field)) for r in runs)


def big_child(name: str, size: int, workers: int) -> dict[str, Any]:
    """Section 2 in this (fresh) process: the client here, the server as a subprocess."""
    from porcupine.backend import load_module

    module: Any = load_module(compiled(name, (size, size)))
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
        memory = json.loads(served.stderr.strip().splitlines()[-1])
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
        "client_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        **memory,
    }


def big(name: str, size: int, workers: int) -> dict[str, Any]:
    """Section 2 for one size, in a fresh process (its peak memory is its own)."""
    command = [sys.executable, "-m", "eval.throughput", "--big-child", f"{name}:{size}:{workers}"]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise SystemExit(f"box blur at {size}x{size} failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def largest(name: str, most: int, workers: int) -> list[dict[str, Any]]:
    """1024x1024, then the largest power of two up to ``most`` that runs here."""
    rows = [big(name, 1024, workers)]
    size = most
    while size > 1024:
        try:
            rows.append(big(name, size, workers))
            break
        except (SystemExit, MemoryError) as e:
            print(f"  {size}x{size} did not run: {e}", file=sys.stderr)
            size //= 2
    return rows


def scaling(harris: dict[str, Any]) -> tuple[list[str], dict[str, float]]:
    """Section 3: predicted seconds for 4096x4096 Harris on W workers at B bit/s."""
    from porcupine.backend import load_module

    module: Any = load_module(harris["module"])
    one = harris["runs"]["1 worker"]
    tiles = one[0].ciphertexts
    per_tile = median(one, "evaluate_s") / tiles
    up = median(one, "upload_bytes") / tiles
    down = median(one, "download_bytes") / tiles
    bundle = median(one, "bundle_bytes")
    two = harris["runs"]["2 workers"]
    start = max(0.0, median(two, "server_wall_s") - median(two, "evaluate_s"))
    big_tiles = module.plan_tiles((4096, 4096)).count
    facts = {
        "per_tile": per_tile,
        "up": up,
        "down": down,
        "bundle": bundle,
        "tiles": big_tiles,
        "start": start,
        "check_predicted": tiles * per_tile / 2,
        "check_measured": median(two, "evaluate_s"),
    }
    lines = ["| workers | 1 Gbit/s | 10 Gbit/s |", "| ---: | ---: | ---: |"]
    for workers in (1, 8, 64):
        cells = []
        for bits in (1e9, 10e9):
            compute = big_tiles * per_tile / workers
            wire = big_tiles * (up + down) * 8 / bits
            ship = workers * bundle * 8 / bits
            cells.append(f"{start + ship + max(compute, wire):.1f} s")
        lines.append(f"| {workers} | {' | '.join(cells)} |")
    return lines, facts


def report(results: list[dict[str, Any]], blur: list[dict[str, Any]], args: Any) -> str:
    load_start, load_end = args.load
    free = ", ".join(f"{p:.2f}x" for p in args.parallel)
    out = [
        "# Server throughput: worker processes and Dask",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} by `python -m eval.throughput --reps "
        f"{args.reps} --big {args.big}` on {os.cpu_count()} cores shared with other work "
        f"(load average {load_start:.2f} at the start, {load_end:.2f} at the end). "
        "Client here, server a second process (`python K.py serve`), OpenFHE on one thread "
        "per process; medians of the repetitions, configurations interleaved. Server: the "
        "server process from start to exit (bundle load, workers started, every tile); "
        "evaluate: its evaluation alone (workers' start included). The Dask cluster (a "
        "`LocalCluster`, 2 worker processes of 1 thread) is started once, before the runs.",
        "",
        f"The cores free for this benchmark, measured before and after each kernel's runs as "
        f"the speed-up of two busy-looping processes over one: {free} (2.00x would be two "
        "free cores). Speed-ups from workers are bounded by it.",
        "",
        "## 512x512 camera photo",
        "",
        "| kernel | tiles | config | server s | evaluate s | tiles/s | end to end s | correct |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    ratios = []
    for r in results:
        runs = r["runs"]
        tiles = runs[CONFIGS[0]][0].ciphertexts
        speed = {}
        for config in CONFIGS:
            server, evaluate = (
                median(runs[config], "server_wall_s"),
                median(runs[config], "evaluate_s"),
            )
            speed[config] = tiles / server
            total = median(runs[config], "total_s")
            out.append(
                f"| {r['name']} | {tiles} | {config} | {server:.2f} | {evaluate:.2f} | "
                f"{tiles / server:.1f} | {total:.2f} | all {r['image'][0]}x{r['image'][1]} |"
            )
        ratios.append(
            f"- {r['name']}: 2 workers / 1 worker = {speed[CONFIGS[1]] / speed[CONFIGS[0]]:.2f}x; "
            f"Dask / local pool = {speed[CONFIGS[2]] / speed[CONFIGS[1]]:.2f}x "
            "(server throughput, tiles per server second)"
        )
    out += ["", "Throughput ratios:", "", *ratios, ""]
    out += [
        "## Box blur on a large image: memory",
        "",
        "Client and server each in a fresh process; peak resident memory (`ru_maxrss`) of "
        "the client, of the server process, and of its largest worker.",
        "",
        "| image | tiles (tile, ring) | encrypt s | server s | decrypt s | request MB | "
        "client MB | server MB | worker MB | correct |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for b in blur:
        out.append(
            f"| {b['size']}x{b['size']} | {b['tiles']} ({b['tile'][0]}x{b['tile'][1]}, "
            f"{b['ring']}) | {b['encrypt_s']:.1f} | {b['server_s']:.1f} | {b['decrypt_s']:.1f} "
            f"| {b['request_mb']:.0f} | {b['client_kb'] / 1024:.0f} | "
            f"{b['server_kb'] / 1024:.0f} | {b['workers_kb'] / 1024:.0f} | {b['correct']} |"
        )
    lines, f = scaling(next(r for r in results if r["name"] == "harris"))
    out += [
        "",
        "## A cluster: 4096x4096 Harris, predicted",
        "",
        f"From the 512x512 Harris runs: {f['per_tile'] * 1e3:.1f} ms per tile on one worker "
        f"(its evaluate time over its tiles), {f['up'] / 1e6:.2f} MB up and "
        f"{f['down'] / 1e6:.2f} MB down per tile, a {f['bundle'] / 1e6:.1f} MB bundle, "
        f"{f['start']:.1f} s to start (the 2-worker server's time outside evaluation). A "
        f"4096x4096 image is {f['tiles']} tiles of this kernel. Assumed: every tile crosses "
        "the server's one link to a worker and back, transfer and compute overlap (three "
        "tiles in flight per worker), the bundle goes to each worker once over the same "
        "link, workers compute at this machine's one-core speed and nothing else is shared; "
        "time = start + bundle transfer + max(compute / workers, transfer). The client's "
        "encryption and decryption (one core, not parallel here) are not included.",
        "",
        *lines,
        "",
        f"Checked here: 2 workers on 512x512 Harris, predicted {f['check_predicted']:.2f} s of "
        f"evaluation (two free cores), measured {f['check_measured']:.2f} s (workers' start "
        "included; see the free cores above).",
        "",
    ]
    return "\n".join(out)


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

    load_start = os.getloadavg()[0]
    args.parallel, results = [parallelism()], []
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        for name in ("sobel", "harris"):
            results.append(throughput(name, args.reps, cluster.scheduler_address, 8))
            args.parallel.append(parallelism())
    blur = largest("box_blur", args.big, 2)
    args.load = (load_start, os.getloadavg()[0])
    text = report(results, blur, args)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
