"""eval/throughput.md from ``eval.throughput``'s measurements, and its goal figures."""

from __future__ import annotations

import os
import time
from typing import Any

from eval.cluster_scaling import TileCost, predict, table
from eval.throughput import CONFIGS, DASK, ONE, PROCESSES, STEADY, STREAMED, THREADS, median
from eval.throughput_threads import ONE as ONE_WAY
from eval.throughput_threads import OPENMP, POOL, SERVER_THREADS
from eval.throughput_threads import report as threads_report


def ratios(r: dict[str, Any]) -> dict[str, float]:
    """Server throughput (ciphertexts per second of the server process, start to exit) of
    each configuration, as ratios, and the streamed end to end seconds."""
    runs = r["runs"]
    speed = {c: 1 / median(runs[c], "server_wall_s") for c in (ONE, THREADS, PROCESSES, DASK)}
    return {
        "threads": speed[THREADS] / speed[ONE],
        "processes": speed[PROCESSES] / speed[ONE],
        "dask": speed[DASK] / speed[PROCESSES],
        "end_to_end": median(runs[STREAMED], "total_s"),
        "end_to_end_1": median(runs[ONE], "total_s"),
    }


def steady(rows: list[dict[str, Any]], kernel: str) -> float:
    """A started pool's 2 processes over 1 (the first ring of ``kernel``)."""
    row = next(r for r in rows if r["kernel"] == kernel)
    return float(row["per_ct_s"][ONE_WAY] / row["per_ct_s"][POOL])


def _verdict(rows: list[dict[str, Any]]) -> str:
    """Which of threads and processes won, row by row, and what the defaults are."""

    def wins(way: str, other: str) -> int:
        return sum(r["per_ct_s"][way] < r["per_ct_s"][other] for r in rows)

    pairs = f"of {len(rows)} kernel and ring pairs"
    return (
        f"Two worker processes were faster than two OpenMP threads on {wins(POOL, OPENMP)} "
        f"{pairs} in this run, two server threads on {wins(SERVER_THREADS, OPENMP)}; server "
        f"threads were faster than worker processes on {wins(SERVER_THREADS, POOL)}. "
        "The defaults: one OpenMP thread per process (the emitted "
        "module sets it at import unless OMP_NUM_THREADS says otherwise) and one server "
        "thread per core in the server's process (`--workers`; worker processes with "
        "`--processes`: section 1 measures both). OpenMP's threads inside each call also slowed a "
        "kernel 136x when another process held one of the two cores (measured when that "
        "default was set: "
        "`set_threads`' docstring); processes do not wait on each other that way."
    )


def cluster(harris: dict[str, Any], starts: list[dict[str, Any]]) -> tuple[TileCost, int, Any]:
    """The tile cost of 512x512 Harris (its 1-worker runs, the pool's start-up and dispatch),
    the ciphertexts of a 4096x4096 image, and its module."""
    from porcupine.backend import load_module

    module: Any = load_module(harris["module"])
    one = harris["runs"][ONE]
    cts = one[0].ciphertexts
    start = next(s for s in starts if s["kernel"] == "harris")
    cost = TileCost(
        seconds=median(one, "evaluate_s") / cts,
        up_bytes=median(one, "upload_bytes") / cts,
        down_bytes=median(one, "download_bytes") / cts,
        bundle_bytes=median(one, "bundle_bytes"),
        start_s=start["start_s"],
        dispatch_s=start["dispatch_s"],
    )
    big = -(-module.plan_tiles((4096, 4096)).count // module.ROWS)
    return cost, big, module


def report(
    results: list[dict[str, Any]],
    blur: list[dict[str, Any]],
    threads: tuple[list[Any], list[Any]],
    args: Any,
) -> tuple[str, list[str]]:
    """The markdown report and the goal figures (lines)."""
    load_start, load_end = args.load
    free = ", ".join(f"{p:.2f}x" for p in args.parallel)
    out = [
        "# Server throughput: threads, worker processes and Dask",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} by `python -m eval.throughput --reps "
        f"{args.reps} --big {args.big}` on {os.cpu_count()} cores shared with other work "
        f"(load average {load_start:.2f} at the start, {load_end:.2f} at the end). "
        "Client here, server a second process (`python K.py serve`), OpenFHE on one thread "
        "per process; medians of the repetitions, configurations interleaved. Server: the "
        "server process from start to exit (bundle load, workers started, every tile; the "
        "request read from a file written before; with worker processes, the server starts them "
        "before it reads the bundle); evaluate: its evaluation alone. Streamed: the server "
        "starts first, and the client streams the bundle into it as soon as its keys are "
        "made and then the request as it encrypts (the default of `run_two_party` with "
        "workers); its server time is what is left after the last ciphertext is sent. "
        "The Dask cluster (a `LocalCluster`, 2 worker processes of 1 thread) is started "
        "once, before the runs.",
        "",
        f"The cores free for this benchmark, measured before and after each kernel's runs as "
        f"the speed-up of two busy-looping processes over one: {free} (2.00x would be two "
        "free cores). Speed-ups from workers are bounded by it: below about 1.8x the figures "
        "below say more about the other work on the machine than about the server; re-run "
        f"quiet with `OMP_NUM_THREADS=1 .venv/bin/python -m eval.throughput --reps {args.reps} "
        f"--big {args.big}`.",
        "",
        "## 512x512 camera photo",
        "",
        "| kernel | ciphertexts | config | engine | server s | evaluate s | end to end s | "
        "correct |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        runs = r["runs"]
        cts = runs[ONE][0].ciphertexts
        for config in CONFIGS:
            engines = "/".join(sorted({x.engine for x in runs[config]}))
            out.append(
                f"| {r['name']} | {cts} | {config} | {engines} | "
                f"{median(runs[config], 'server_wall_s'):.2f} | "
                f"{median(runs[config], 'evaluate_s'):.2f} | "
                f"{median(runs[config], 'total_s'):.2f} | all {r['image'][0]}x{r['image'][1]} |"
            )
    out += [
        "",
        "A long-lived server (the Python API, `Server(bundle, ...)` kept between requests): "
        "the same whole-photo request evaluated again and again on 1 worker, on 2 threads, "
        "on a pool of 2 processes it started before, and on the Dask cluster it joined before "
        "(bundle installed); "
        "interleaved, medians, every response decrypted and checked. This is the throughput "
        "a serving process sustains; the server program above pays its start once per run.",
        "",
        "| kernel | ciphertexts | config | s per request | ciphertexts per s | over 1 worker |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        st = r["steady"]
        for config in STEADY:
            out.append(
                f"| {r['name']} | {st['ciphertexts']} | {config} | {st[config]:.2f} | "
                f"{st['ciphertexts'] / st[config]:.1f} | {st[STEADY[0]] / st[config]:.2f}x |"
            )
    rows, starts = threads
    out += ["", "Server throughput ratios (server process, start to exit):", ""]
    for r in results:
        q = ratios(r)
        out.append(
            f"- {r['name']}: 2 threads / 1 worker = {q['threads']:.2f}x; 2 processes / 1 "
            f"worker = {q['processes']:.2f}x (a started pool, as a long-lived server has it: "
            f"{steady(rows, r['name']):.2f}x); Dask / process pool = {q['dask']:.2f}x; end "
            f"to end {q['end_to_end_1']:.2f} s on 1 worker, {q['end_to_end']:.2f} s on 2 "
            "threads streamed"
        )
    out += [
        "",
        "## Threads or processes",
        "",
        "Per ciphertext of a request (median, interleaved): one server process on one "
        "OpenMP thread, the same on two OpenMP threads inside each OpenFHE call, two threads "
        "of the server's process of one OpenMP thread each (the default engine), and two "
        "worker processes of one thread (a pool already started; the server's process also "
        "evaluates a tile whenever the result it waits for is not ready, its default). Each "
        "kernel at the ring "
        "the compiler chose for 512x512 and, where its noise holds, the same program at the "
        "next ring up. Then the pool's start-up (two workers, until both loaded the bundle) "
        "and the server process's own CPU per ciphertext it hands out (pickling, pipes; "
        "every tile on the workers).",
        "",
        *threads_report(rows, starts),
        "",
        _verdict(rows),
        "",
        "## Box blur on a large image: memory",
        "",
        "Client and server each in a fresh process; peak resident memory (VmHWM) of the "
        "client (read before the check computes the reference), of the server process, and "
        "of its largest worker. `ru_maxrss`, which the previous report used, counts what the "
        "parent process held when it forked the server (Linux keeps it across exec): the "
        "server's growth with the image it showed was the client's. Image arrays: the "
        "client's input, output and its mask as numpy holds them (int64, int64, bool).",
        "",
        "| image | tiles (tile, ring) | engine | encrypt s | server s | decrypt s | request MB "
        "| image arrays MB | client MB | server MB | worker MB | correct |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for b in blur:
        out.append(
            f"| {b['size']}x{b['size']} | {b['tiles']} ({b['tile'][0]}x{b['tile'][1]}, "
            f"{b['ring']}) | {b['engine']} | {b['encrypt_s']:.1f} | {b['server_s']:.1f} | "
            f"{b['decrypt_s']:.1f} | {b['request_mb']:.0f} | {b['arrays_mb']:.0f} | "
            f"{b['client_kb'] / 1024:.0f} | {b['server_kb'] / 1024:.0f} | "
            f"{b['workers_kb'] / 1024:.0f} | {b['correct']} |"
        )
    harris = next(r for r in results if r["name"] == "harris")
    cost, big_cts, _ = cluster(harris, starts)
    dask_runs = harris["runs"][DASK]
    cts = dask_runs[0].ciphertexts
    predicted = predict(cost, cts, 2, 10e9)
    free_predicted = predict(
        TileCost(**{**cost.__dict__, "seconds": cost.seconds * 2 / min(args.parallel)}),
        cts,
        2,
        10e9,
    )
    out += [
        "",
        "## A cluster: 4096x4096 Harris, predicted",
        "",
        f"From the 512x512 Harris runs: {cost.seconds * 1e3:.1f} ms per ciphertext on one "
        f"worker (its evaluate time over its {cts} ciphertexts, (de)serialization "
        f"included), {cost.up_bytes / 1e6:.2f} MB up and {cost.down_bytes / 1e6:.2f} MB "
        f"down per ciphertext, a {cost.bundle_bytes / 1e6:.1f} MB bundle, "
        f"{cost.start_s:.2f} s to start and {cost.dispatch_s * 1e3:.2f} ms of the server's "
        f"own time per ciphertext (section 2). A 4096x4096 image is {big_cts} ciphertexts of "
        "this kernel (two tiles each). Assumed (eval/cluster_scaling.py): every ciphertext "
        "crosses the server's one full-duplex link to a worker and back; transfer, "
        "computation and the server's dispatch overlap (several tiles in flight per worker); "
        "the bundle goes to each worker once over the same link; workers compute at this "
        "machine's one-core speed and share nothing else; time = start + bundle transfer + "
        "the largest of computation / workers, link, dispatch (named in each cell). The "
        "client's encryption and decryption are not included.",
        "",
        *table(cost, big_cts),
        "",
        f"Checked here: the Dask `LocalCluster` of 2 workers on 512x512 Harris (section 1), "
        f"predicted {predicted:.2f} s (two free cores; {free_predicted:.2f} s with the "
        f"fewest free cores measured, {min(args.parallel):.2f}), measured "
        f"{median(dask_runs, 'server_wall_s'):.2f} s (server process, start to exit).",
        "",
    ]
    goals = []
    for r in results:
        q, st = ratios(r), r["steady"]
        goals.append(
            f"{r['name']} 512x512, a long-lived server: 2 threads / 1 = "
            f"{st[STEADY[0]] / st[STEADY[1]]:.2f}x (goal 1.8x), 2 processes / 1 = "
            f"{st[STEADY[0]] / st[STEADY[2]]:.2f}x; Dask / process pool = "
            f"{st[STEADY[2]] / st[STEADY[3]]:.2f}x (goal >= 0.85x), Dask / threads = "
            f"{st[STEADY[1]] / st[STEADY[3]]:.2f}x; the server program, start to exit: 2 "
            f"threads / 1 = {q['threads']:.2f}x, 2 processes / 1 = {q['processes']:.2f}x, Dask "
            f"/ process pool = {q['dask']:.2f}x"
        )
    one = harris["runs"][ONE]
    work = sum(median(one, f) for f in ("keygen_s", "encrypt_s", "evaluate_s", "decrypt_s"))
    goals.append(
        f"harris 512x512 end to end, 2 threads streamed: {ratios(harris)['end_to_end']:.2f} s "
        f"(goal < 2 s; its work on one core, keys + encryption + evaluation + decryption of "
        f"the 1-worker run, is {work:.2f} s: at best {work / 2:.2f} s on two free cores)"
    )
    last = blur[-1]
    goals.append(
        f"box blur {last['size']}x{last['size']}: peak server {last['server_kb'] / 1024:.0f} MB, "
        f"worker {last['workers_kb'] / 1024:.0f} MB, client {last['client_kb'] / 1024:.0f} MB "
        f"(1024x1024: server {blur[0]['server_kb'] / 1024:.0f} MB); correct {last['correct']}"
    )
    goals.append(f"free cores measured: {free} (load average {load_start:.2f} -> {load_end:.2f})")
    out += ["## Goal figures", "", *(f"- {g}" for g in goals), ""]
    return "\n".join(out), goals
