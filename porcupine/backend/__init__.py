"""The OpenFHE backend, behind one small interface.

Only this package imports ``openfhe``; the rest of Porcupine reaches it through the names
below. :func:`emit_python` turns a verified Quill program and its spec into a standalone
Python module (imports only ``openfhe`` and ``numpy``); :func:`run_encrypted` runs a kernel
encrypted and checks it against the spec; :func:`compare_latency` times several kernels of
one spec interleaved in one context; :func:`calibrate` measures the cost table.
"""

from __future__ import annotations

import os

# OpenFHE sizes its OpenMP parallelism once, when the library loads, so this must come
# before any import of openfhe. One thread, as the cost table was measured: on a shared
# two-core machine, two OpenMP threads made a rotation's median swing from 1 to 9 ms under
# load. An explicit OMP_NUM_THREADS wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from porcupine.backend.calibrate import calibrate, calibrate_and_save
from porcupine.backend.openfhe_emit import (
    EmitPlan,
    SpecLike,
    emit_python,
    emit_to_path,
    plan,
)
from porcupine.backend.openfhe_run import (
    Mismatch,
    ProgramSpec,
    RunResult,
    Session,
    WrongDecryption,
    compare_latency,
    emitted_module,
    load_module,
    run_encrypted,
)
from porcupine.files import write_atomically

__all__ = [
    "EmitPlan",
    "Mismatch",
    "ProgramSpec",
    "RunResult",
    "Session",
    "SpecLike",
    "WrongDecryption",
    "calibrate",
    "calibrate_and_save",
    "compare_latency",
    "emit_python",
    "emit_to_path",
    "emitted_module",
    "load_module",
    "plan",
    "run_encrypted",
    "write_atomically",
]
