"""The OpenFHE backend, behind one small interface.

Only this package imports ``openfhe``; the rest of Porcupine reaches it through the names
below. :func:`plan` decides how a verified Quill program runs; :func:`emit_python` turns it
and its spec into a standalone Python module (the runtime, :mod:`porcupine.backend.runtime`,
with the kernel's constants and code; it imports only ``openfhe`` and ``numpy``);
:func:`run_encrypted` runs a kernel encrypted and checks it against the spec, and
:func:`run_cleartext` does the same on the cleartext backend
(:mod:`porcupine.backend.cleartext`), without encryption; :func:`compare_latency` times
several kernels of one spec interleaved in one context. The choices of how a kernel is
emitted (cost table, hoisting, parameter set, security, client packing) travel as one
:class:`EmitOptions` record, whose defaults leave them to the compiler. :func:`calibrate`
measures the cost table. :mod:`porcupine.backend.contexts` builds contexts other than a
kernel's own (OpenFHE's defaults for a depth), times key generation and sizes the rotation
keys, for the evaluation.
"""

from __future__ import annotations

import os

# OpenFHE sizes its OpenMP parallelism once, when the library loads, so this must come
# before any import of openfhe. One thread, as the cost table was measured: on a shared
# two-core machine, two OpenMP threads made a rotation's median swing from 1 to 9 ms under
# load. An explicit OMP_NUM_THREADS wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from porcupine.backend.calibrate import calibrate, calibrate_and_save
from porcupine.backend.cleartext import CleartextError
from porcupine.backend.contexts import (
    ContextFacts,
    ContextSession,
    KeyGenStats,
    clear_rotation_keys,
    context_facts,
    default_context,
    matching_set,
    timed_keys,
)
from porcupine.backend.kernel_module import EmittedKernel, emitted_module, load_module
from porcupine.backend.openfhe_emit import RESERVED_INPUT_NAMES, emit_python, emit_to_path
from porcupine.backend.openfhe_run import (
    DepthProbe,
    Mismatch,
    RunResult,
    Session,
    WrongDecryption,
    compare_latency,
    run_cleartext,
    run_encrypted,
)
from porcupine.backend.options import EmitOptions
from porcupine.backend.planning import EmitPlan, SpecLike, plan
from porcupine.backend.program_spec import ProgramSpec
from porcupine.files import write_atomically

__all__ = [
    "RESERVED_INPUT_NAMES",
    "CleartextError",
    "ContextFacts",
    "ContextSession",
    "DepthProbe",
    "EmitOptions",
    "EmitPlan",
    "EmittedKernel",
    "KeyGenStats",
    "Mismatch",
    "ProgramSpec",
    "RunResult",
    "Session",
    "SpecLike",
    "WrongDecryption",
    "calibrate",
    "calibrate_and_save",
    "clear_rotation_keys",
    "compare_latency",
    "context_facts",
    "default_context",
    "emit_python",
    "emit_to_path",
    "emitted_module",
    "load_module",
    "matching_set",
    "plan",
    "run_cleartext",
    "run_encrypted",
    "timed_keys",
    "write_atomically",
]
