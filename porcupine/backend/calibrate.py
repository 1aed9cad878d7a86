"""``porcupine calibrate``: measure every row of the cost table, for every parameter set.

Each parameter set of :mod:`quill.params` gets its context, built as emitted kernels build
theirs, and every op of :data:`quill.cost.KEYS` runs ``reps`` times on random full-row
ciphertexts. Each round visits every set in turn (the order reversed every round, so that a
burst of load on the machine hits them all alike); within a set each op is warmed by one
call and timed over :data:`BURST` back-to-back calls, as a kernel runs its ops; each row is
the median over the rounds. OpenFHE runs on one thread
(``porcupine.backend`` sets ``OMP_NUM_THREADS=1`` unless it is set), as in the reference
measurements.
"""

from __future__ import annotations

import datetime
import functools
import gc
import importlib.metadata
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from porcupine.backend.planning import new_context
from porcupine.backend.runtime import encrypt_plaintext
from quill.cost import KEYS, CostTable, save_table
from quill.ops import OPS, Kind, OpInfo, sum_keys
from quill.params import SETS, ParameterSet
from quill.slots import T

SUM_ROUNDS = {"sum4": 4, "sum2": 2}

BURST = 1
"""Calls an op is timed over per round, right after one untimed warm-up call of the same op
on the same set. A kernel runs its ops back to back in one context with warm caches; timing
each op once between other sets' ops (as this module did before) priced cheap ops cold: at
N = 2048 an addition at 0.049 ms against 0.010-0.012 ms warm, a rotation at 0.256 against
0.20-0.22, so the table overpriced the kernels there by 1.25-1.4x (``eval/cost_check.py``)
while the larger sets were within 10%. Bursts of 8 calls priced cheap ops the same but
heavy ones (EvalMultNoRelin, Relinearize) 1.4-1.5x above what the kernels measured."""

ONCE = frozenset({"rotation_keygen"})
"""Rows timed with one call per round: each makes a key kept in the context."""
"""The EvalSum windows that time one radix-4 and one radix-2 round of EvalSum."""


def _operations(param_set: ParameterSet, rng: np.random.Generator) -> dict[str, Callable[[], Any]]:
    """One closure per :data:`KEYS` row on ``param_set``, on random full-row operands."""
    cc: Any = new_context(param_set, advanced_she=True)
    keys = cc.KeyGen()
    cc.EvalMultKeyGen(keys.secretKey)
    have = sorted({1, *(k for window in SUM_ROUNDS.values() for k in sum_keys(window))})
    cc.EvalRotateKeyGen(keys.secretKey, have)
    row = cc.GetRingDimension() // 2

    def plaintext() -> Any:
        return cc.MakePackedPlaintext(rng.integers(0, T, row).tolist())

    a, b = (cc.Encrypt(keys.publicKey, plaintext()) for _ in range(2))
    pt = plaintext()
    order = cc.GetCyclotomicOrder()
    pre = cc.EvalFastRotationPrecompute(a)
    product = cc.EvalMultNoRelin(a, b)
    # A key for a new index each time, as a kernel's keys are: OpenFHE skips existing ones.
    fresh = itertools.count(max(have) + 1)
    # Each op row as the op table calls it (the first op priced by the row), on a and b,
    # pt, a rotation by one, a relinearization of a product; EvalSum by its rounds below.
    ops: dict[str, Callable[[], Any]] = {}
    for info in OPS.values():
        if not info.sums and info.cost not in ops:
            args = _arguments(info, (a, b), pt, product)
            ops[info.cost] = functools.partial(getattr(cc, info.openfhe), *args)
    ops |= {
        "rotate_precompute": lambda: cc.EvalFastRotationPrecompute(a),
        "rotate_hoisted": lambda: cc.EvalFastRotation(a, 1, order, pre),
        "rotation_keygen": lambda: cc.EvalRotateKeyGen(keys.secretKey, [next(fresh)]),
        "encrypt": lambda: encrypt_plaintext(cc, keys, pt),  # as clients do
        "decrypt": lambda: cc.Decrypt(keys.secretKey, a),
    }
    for key, window in SUM_ROUNDS.items():
        ops[key] = functools.partial(cc.EvalSum, a, window)
    assert set(ops) == set(KEYS)
    return {key: ops[key] for key in KEYS}  # warmed in this order


def _arguments(info: OpInfo, cts: tuple[Any, Any], pt: Any, product: Any) -> tuple[Any, ...]:
    """Operands for timing the op of ``info``: its operand kinds filled from ``cts`` and
    ``pt`` (a product for a relinearization), and an amount of one if it takes one."""
    if info.relinearizes:
        return (product,)
    ciphertexts = iter(cts)
    args = tuple(pt if kind is Kind.PT else next(ciphertexts) for kind in info.operands)
    return (*args, 1) if info.has_amount else args


def measure(
    sets: Sequence[ParameterSet],
    reps: int = 20,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    burst: int = BURST,
) -> dict[str, dict[str, float]]:
    """Median milliseconds of every :data:`KEYS` op on each of ``sets``: per round, each
    set in turn (the order reversed every round), each op warmed by one call and then timed
    over ``burst`` back-to-back calls (see :data:`BURST`)."""
    say = progress or (lambda _msg: None)
    rng = np.random.default_rng(seed)
    ops: dict[tuple[str, str], Callable[[], Any]] = {}
    for param_set in sets:
        say(f"building {param_set.name} (N = {param_set.ring_dim}) and its keys")
        for key, op in _operations(param_set, rng).items():
            ops[param_set.name, key] = op
    for op in ops.values():  # warm caches and lazily built tables
        op()
    times: dict[tuple[str, str], list[float]] = {k: [] for k in ops}
    order = [s.name for s in sets]
    gc.collect()
    gc.disable()
    try:
        for rep in range(reps):
            say(f"round {rep + 1} of {reps}")
            for name in order:
                for key in KEYS:
                    op, calls = ops[name, key], 1 if key in ONCE else burst
                    op()  # the first call after another op or set pays for cold caches
                    start = time.perf_counter()
                    for _ in range(calls):
                        op()
                    times[name, key].append((time.perf_counter() - start) * 1e3 / calls)
            order.reverse()
    finally:
        gc.enable()
    return {
        s.name: {key: round(statistics.median(times[s.name, key]), 4) for key in KEYS} for s in sets
    }


def calibrate(
    sets: Sequence[ParameterSet] = SETS,
    reps: int = 20,
    progress: Callable[[str], None] | None = None,
) -> CostTable:
    """Measure a cost table on this machine: median ms of each op on each parameter set."""
    table = measure(sets, reps, progress=progress)
    source = (
        f"porcupine calibrate: {platform.node()}, one thread, {reps} interleaved repetitions, "
        f"{datetime.date.today().isoformat()}"
    )
    return CostTable(table, source=source)


def calibrate_and_save(
    path: str | Path,
    reps: int = 20,
    sets: Sequence[ParameterSet] = SETS,
    progress: Callable[[str], None] | None = None,
) -> CostTable:
    """:func:`calibrate`, then save the table as JSON with the machine and versions."""
    table = calibrate(sets, reps, progress)
    save_table(
        table,
        path,
        machine=f"{platform.node()} ({platform.machine()}, {platform.platform()}, "
        f"{os.cpu_count()} cores)",
        python=sys.version.split()[0],
        openfhe=importlib.metadata.version("openfhe"),
        omp_num_threads=os.environ.get("OMP_NUM_THREADS", "unset"),
        date=datetime.date.today().isoformat(),
        reps=reps,
        note="Rows per quill.params parameter set. mul_cc is EvalMultNoRelin (the tensor "
        "product); relin is Relinearize: a relinearizing EvalMult is their sum. sum4 / sum2 "
        "are EvalSum(ct, 4) / EvalSum(ct, 2): one radix-4 / radix-2 round of EvalSum. "
        "rotation_keygen is EvalRotateKeyGen for one new index. Each op is timed once per "
        "round right after one untimed call of the same op on the same set (warm caches, as "
        "in a kernel); rounds visit the sets in turn, reversing the order every round.",
    )
    return table
