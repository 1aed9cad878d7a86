"""``porcupine calibrate``: measure every row of the cost table on this machine.

Each ring dimension gets a BFV context (t = 65537) at the depth that makes OpenFHE choose
it (depth 2 for N = 8192, depth 4 for N = 16384, as in ``openfhe-bfv.md``), and every op
of :data:`quill.cost.KEYS` runs ``reps`` times on random full-row ciphertexts, the ops
interleaved so that a burst of load hits them all alike. OpenFHE runs on one thread
(``porcupine.backend`` sets ``OMP_NUM_THREADS=1`` unless it is set), as in the reference
measurements.
"""

from __future__ import annotations

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
import openfhe

from quill.cost import KEYS, CostTable, save_table
from quill.noise import RING_DIM
from quill.slots import T

DEPTH_FOR_RING: dict[int, int] = {8192: 2, 16384: 4}
"""The depth each calibrated ring dimension is measured at (the op rows carry the extra
RNS limbs a deeper circuit adds, so the depth matters as well as N)."""


def _depth(ring_dim: int) -> int:
    if ring_dim in DEPTH_FOR_RING:
        return DEPTH_FOR_RING[ring_dim]
    fitting = [d for d, n in RING_DIM.items() if n <= ring_dim]
    return max(fitting) if fitting else 1


def bfv_context(ring_dim: int, depth: int) -> tuple[Any, Any]:
    """A BFV context of exactly ``ring_dim`` and ``depth`` with every key calibration
    uses: ``(cc, keys)``. OpenFHE refuses a ring too small for 128-bit security."""
    params = openfhe.CCParamsBFVRNS()
    params.SetPlaintextModulus(T)
    params.SetMultiplicativeDepth(depth)
    cc = openfhe.GenCryptoContext(params)
    if cc.GetRingDimension() != ring_dim:
        params.SetRingDim(ring_dim)
        cc = openfhe.GenCryptoContext(params)
    for feature in (openfhe.PKE, openfhe.KEYSWITCH, openfhe.LEVELEDSHE):
        cc.Enable(feature)
    keys = cc.KeyGen()
    cc.EvalMultKeyGen(keys.secretKey)
    cc.EvalRotateKeyGen(keys.secretKey, [1])
    return cc, keys


def _operations(cc: Any, keys: Any, rng: np.random.Generator) -> dict[str, Callable[[], object]]:
    """One closure per :data:`KEYS` row, on random full-row operands."""
    row = cc.GetRingDimension() // 2

    def plaintext() -> Any:
        return cc.MakePackedPlaintext(rng.integers(0, T, row).tolist())

    a, b = (cc.Encrypt(keys.publicKey, plaintext()) for _ in range(2))
    pt = plaintext()
    order = cc.GetCyclotomicOrder()
    pre = cc.EvalFastRotationPrecompute(a)
    product = cc.EvalMultNoRelin(a, b)
    fresh = itertools.count(2)  # a key for a new index each time, as a kernel's keys are
    ops: dict[str, Callable[[], object]] = {
        "add": lambda: cc.EvalAdd(a, b),
        "add_pt": lambda: cc.EvalAdd(a, pt),
        "mul_pt": lambda: cc.EvalMult(a, pt),
        "mul_cc": lambda: cc.EvalMultNoRelin(a, b),
        "relin": lambda: cc.Relinearize(product),
        "rotate": lambda: cc.EvalRotate(a, 1),
        "rotate_precompute": lambda: cc.EvalFastRotationPrecompute(a),
        "rotate_hoisted": lambda: cc.EvalFastRotation(a, 1, order, pre),
        "rotation_keygen": lambda: cc.EvalRotateKeyGen(keys.secretKey, [next(fresh)]),
    }
    assert set(ops) == set(KEYS)
    return ops


def measure_row(
    ring_dim: int, reps: int = 20, seed: int = 0, depth: int | None = None
) -> dict[str, float]:
    """Median milliseconds of every :data:`KEYS` op at ``ring_dim``."""
    cc, keys = bfv_context(ring_dim, _depth(ring_dim) if depth is None else depth)
    ops = _operations(cc, keys, np.random.default_rng(seed))
    for op in ops.values():  # warm caches and lazily built tables
        op()
    times: dict[str, list[float]] = {k: [] for k in KEYS}
    for _ in range(reps):
        for key in KEYS:
            start = time.perf_counter()
            ops[key]()
            times[key].append((time.perf_counter() - start) * 1e3)
    return {k: round(statistics.median(v), 4) for k, v in times.items()}


def calibrate(
    ring_dims: Sequence[int] = (8192, 16384),
    reps: int = 20,
    progress: Callable[[str], None] | None = None,
) -> CostTable:
    """Measure a cost table on this machine: median ms of each op at each ring dimension."""
    say = progress or (lambda _msg: None)
    table: dict[int, dict[str, float]] = {}
    for ring_dim in ring_dims:
        say(f"measuring N = {ring_dim} (depth {_depth(ring_dim)}), {reps} repetitions")
        table[ring_dim] = measure_row(ring_dim, reps)
    source = f"porcupine calibrate: {platform.node()}, one thread, {reps} repetitions"
    return CostTable(table, source=source)


def calibrate_and_save(
    path: str | Path,
    reps: int = 20,
    ring_dims: Sequence[int] = (8192, 16384),
    progress: Callable[[str], None] | None = None,
) -> CostTable:
    """:func:`calibrate`, then save the table as JSON with the machine and versions."""
    table = calibrate(ring_dims, reps, progress)
    save_table(
        table,
        path,
        machine=f"{platform.node()} ({platform.machine()}, {platform.platform()})",
        python=sys.version.split()[0],
        openfhe=importlib.metadata.version("openfhe"),
        omp_num_threads=os.environ.get("OMP_NUM_THREADS", "unset"),
        reps=reps,
        depths={str(n): _depth(n) for n in ring_dims},
    )
    return table
