"""Run emitted kernels under real OpenFHE: build a context, encrypt, run, decrypt, compare.

Everything goes through the emitted module's own functions (``new_context``,
``generate_keys``, ``encrypt``/``encode``, ``kernel``, ``decode_slots``), so what is measured
and checked here is exactly what an application using the module gets. A wrong decryption
is reported, never retried: it means the noise model (:mod:`quill.noise`) picked too small
parameters, and that is a bug to fix there.
"""

from __future__ import annotations

import importlib.util
import itertools
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import openfhe

from porcupine.backend.openfhe_emit import SpecLike, emit_python
from porcupine.files import write_atomically
from quill.cost import DEFAULT_TABLE, CostTable
from quill.interp import interpret
from quill.ir import Program
from quill.slots import T
from quill.spec import Definition, Domain, InputDecl, Layout
from quill.spec_ast import Num

Slots = npt.NDArray[np.int64]
_counter = itertools.count()


class WrongDecryption(AssertionError):
    """An encrypted run decrypted to something other than the spec's reference."""


@dataclass(frozen=True)
class Mismatch:
    """An output slot that matters where the decryption differs from the reference."""

    slot: int
    expected: int
    got: int


@dataclass(frozen=True)
class RunResult:
    """The outcome of one encrypted run of a kernel (see :func:`run_encrypted`)."""

    kernel: str
    ok: bool
    mismatches: tuple[Mismatch, ...]
    kernel_ms: float  # median over the timed repetitions, kernel call only
    keygen_s: float  # key pair, relinearization and rotation keys
    setup_s: float  # context creation plus key generation
    ct_ct_depth_used: int  # GetNoiseScaleDeg() - 1 of the output ciphertext
    mult_depth: int  # configured multiplicative depth of the context
    ring_dim: int
    reps: int
    output_slots: int  # how many slots matter

    def summary(self) -> str:
        """A few human-readable lines."""
        verdict = (
            f"correct on all {self.output_slots} output slots that matter"
            if self.ok
            else f"WRONG at {len(self.mismatches)} of {self.output_slots} slots, e.g. "
            + ", ".join(
                f"slot {m.slot}: want {m.expected}, got {m.got}" for m in self.mismatches[:3]
            )
        )
        return (
            f"{self.kernel}: {verdict}\n"
            f"  kernel {self.kernel_ms:.3f} ms (median of {self.reps}); setup "
            f"{self.setup_s:.2f} s (key generation {self.keygen_s:.2f} s)\n"
            f"  BFV multiplicative depth {self.mult_depth}, N = {self.ring_dim}; ct*ct depth "
            f"used {self.ct_ct_depth_used}"
        )


# --- modules ---------------------------------------------------------------------------


def load_module(path: str | Path) -> ModuleType:
    """Import an emitted kernel module from ``path`` (under a fresh module name)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no emitted kernel module {path}")
    name = f"_porcupine_kernel_{path.stem}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def emitted_module(
    program: Program,
    spec: SpecLike,
    table: CostTable = DEFAULT_TABLE,
    *,
    hoist: bool | None = None,
    mult_depth: int | None = None,
) -> ModuleType:
    """Emit ``program`` (see :func:`emit_python`) to a temporary file and import it."""
    text = emit_python(program, spec, table, hoist=hoist, mult_depth=mult_depth)
    with tempfile.TemporaryDirectory(prefix="porcupine-") as tmp:
        return load_module(write_atomically(Path(tmp) / f"{program.name}.py", text))


# --- one context for one or more kernels ---------------------------------------------


class Session:
    """A context and key pair that serve one or more emitted modules of the same spec.

    The context has the largest ``MULT_DEPTH`` of the modules (or ``mult_depth``), the
    union of their rotation keys, and a relinearization key if any needs one; creation
    and key generation are timed separately from kernel runs.
    """

    def __init__(
        self,
        modules: Sequence[ModuleType],
        *,
        mult_depth: int | None = None,
        security: Any = None,
    ) -> None:
        if not modules:
            raise ValueError("a session needs at least one kernel module")
        first = modules[0]
        depth = mult_depth if mult_depth is not None else max(m.MULT_DEPTH for m in modules)
        rotations = tuple(sorted({k for m in modules for k in m.ROTATION_INDICES}))
        ct_ct = any(m.CT_CT_MULT for m in modules)
        level = openfhe.HEStd_128_classic if security is None else security
        start = time.perf_counter()
        self.cc = first.new_context(level, depth)
        keygen_start = time.perf_counter()
        self.keys = first.generate_keys(self.cc, rotations, ct_ct)
        end = time.perf_counter()
        self.keygen_s = end - keygen_start
        self.setup_s = end - start
        self.mult_depth = depth

    @property
    def ring_dim(self) -> int:
        return int(self.cc.GetRingDimension())

    def arguments(self, module: ModuleType, slot_inputs: Mapping[str, Slots]) -> dict[str, Any]:
        """Encrypt (ciphertext inputs) or encode (plaintext inputs) the inputs given as
        slot vectors, through the module's own natural-shape ``encrypt``/``encode``."""
        args: dict[str, Any] = {}
        for name, kind in module.INPUTS.items():
            natural = np.asarray(slot_inputs[name], dtype=np.int64)[module.INPUT_LAYOUTS[name]]
            if kind == "ct":
                args[name] = module.encrypt(self.cc, self.keys, name, natural)
            else:
                args[name] = module.encode(self.cc, name, natural)
        return args

    def run(self, module: ModuleType, args: Mapping[str, Any]) -> tuple[Any, float]:
        """Run the module's kernel once: (output ciphertext, milliseconds)."""
        start = time.perf_counter()
        out = module.kernel(self.cc, **args)
        return out, (time.perf_counter() - start) * 1e3

    def decrypt(self, module: ModuleType, ciphertext: Any) -> Slots:
        """The first SLOTS slots of ``ciphertext``, in [0, t)."""
        slots: Slots = module.decode_slots(self.cc, self.keys, ciphertext)
        return slots

    def check(
        self,
        module: ModuleType,
        spec: SpecLike,
        slot_inputs: Mapping[str, Slots],
        args: Mapping[str, Any] | None = None,
    ) -> tuple[Any, tuple[Mismatch, ...]]:
        """Run the kernel once on ``slot_inputs`` (already encrypted as ``args``, if
        given) and compare its decryption with the spec: (output, mismatches)."""
        out, _ = self.run(module, args if args is not None else self.arguments(module, slot_inputs))
        got = self.decrypt(module, out)
        return out, compare(spec, encrypted_slots(module, slot_inputs), got)


def encrypted_slots(module: ModuleType, slot_inputs: Mapping[str, Slots]) -> dict[str, Slots]:
    """The slot vectors the module's ``encode`` actually produces from ``slot_inputs``:
    the laid-out elements, zeros elsewhere. The reference is computed on these."""
    out: dict[str, Slots] = {}
    for name in module.INPUTS:
        layout = module.INPUT_LAYOUTS[name]
        vec = np.zeros(module.SLOTS, dtype=np.int64)
        vec[layout] = np.asarray(slot_inputs[name], dtype=np.int64)[layout] % T
        out[name] = vec
    return out


def compare(spec: SpecLike, inputs: Mapping[str, Slots], got: Slots) -> tuple[Mismatch, ...]:
    """The output slots that matter where ``got`` differs from the spec's reference."""
    want = spec.reference(dict(inputs))
    return tuple(
        Mismatch(s, int(want[s]) % T, int(got[s]))
        for s in sorted(want)
        if int(got[s]) != int(want[s]) % T
    )


def _module_for(
    spec: SpecLike,
    program: Program | None,
    module_path: str | Path | None,
    table: CostTable,
    hoist: bool | None,
) -> tuple[ModuleType, str]:
    if (program is None) == (module_path is None):
        raise ValueError("give exactly one of program= and module_path=")
    if program is not None:
        return emitted_module(program, spec, table, hoist=hoist), program.name
    assert module_path is not None
    module = load_module(module_path)
    if spec.n != module.SLOTS:
        raise ValueError(
            f"{module_path} is a kernel on {module.SLOTS} slots, the spec has {spec.n}"
        )
    return module, Path(module_path).stem


def run_encrypted(
    spec: SpecLike,
    *,
    program: Program | None = None,
    module_path: str | Path | None = None,
    inputs: Mapping[str, Slots] | None = None,
    seed: int = 0,
    reps: int = 10,
    table: CostTable = DEFAULT_TABLE,
    hoist: bool | None = None,
    mult_depth: int | None = None,
    security: Any = None,
) -> RunResult:
    """Run a kernel encrypted and check it against ``spec.reference``.

    The kernel is ``program`` (emitted to a temporary module) or the emitted module at
    ``module_path``. ``inputs`` are slot vectors of length ``spec.n`` (as
    ``spec.random_inputs`` makes them; by default those, with ``seed``); elements outside
    an input's layout are encrypted as zeros. The kernel runs once untimed (its output is
    checked) and then ``reps`` times timed. ``mult_depth`` overrides the module's
    configured depth (noise probes); ``security`` is an ``openfhe.SecurityLevel``
    (128-bit classic by default).
    """
    module, name = _module_for(spec, program, module_path, table, hoist)
    session = Session([module], mult_depth=mult_depth, security=security)
    slot_inputs = inputs if inputs is not None else spec.random_inputs(np.random.default_rng(seed))
    args = session.arguments(module, slot_inputs)
    out, mismatches = session.check(module, spec, slot_inputs, args)
    times = [session.run(module, args)[1] for _ in range(reps)]
    return RunResult(
        kernel=name,
        ok=not mismatches,
        mismatches=mismatches,
        kernel_ms=statistics.median(times) if times else float("nan"),
        keygen_s=session.keygen_s,
        setup_s=session.setup_s,
        ct_ct_depth_used=int(out.GetNoiseScaleDeg()) - 1,
        mult_depth=session.mult_depth,
        ring_dim=session.ring_dim,
        reps=reps,
        output_slots=len(spec.output_slots()),
    )


def compare_latency(
    programs: Sequence[Program],
    spec: SpecLike,
    reps: int = 10,
    *,
    seed: int = 0,
    table: CostTable = DEFAULT_TABLE,
) -> list[float]:
    """Median kernel latencies (ms) of ``programs``, measured interleaved in one context.

    The context has the largest depth any program needs and the union of their keys, so
    all run on the same ring dimension: a program that alone would fit a smaller ring is
    measured on the larger one. Each program's output is checked once against the spec
    first (:class:`WrongDecryption` if wrong); then the programs take turns, ``reps``
    rounds, the order alternating between rounds so neither always runs first.
    """
    modules = [emitted_module(p, spec, table) for p in programs]
    session = Session(modules)
    slot_inputs = spec.random_inputs(np.random.default_rng(seed))
    args = [session.arguments(m, slot_inputs) for m in modules]
    for program, module, a in zip(programs, modules, args, strict=True):
        _, bad = session.check(module, spec, slot_inputs, a)
        if bad:
            raise WrongDecryption(
                f"{program.name} decrypts wrongly at slots {[m.slot for m in bad]}"
            )
    times: list[list[float]] = [[] for _ in modules]
    order = list(range(len(modules)))
    for _ in range(reps):
        for i in order:
            times[i].append(session.run(modules[i], args[i])[1])
        order.reverse()
    return [statistics.median(t) for t in times]


@dataclass(frozen=True)
class ProgramSpec:
    """A spec whose reference is a Quill program itself, on ``n`` plain vector slots.

    For probing the backend and the noise model on arbitrary programs (no synthesis is
    involved, so no real spec is needed): every input is a ``vector(n)`` of random values
    mod t and every output slot matters.
    """

    program: Program
    n: int

    @property
    def name(self) -> str:
        return self.program.name

    @property
    def inputs(self) -> tuple[InputDecl, ...]:
        layout = Layout("vector", (self.n,))
        return tuple(
            InputDecl(p.name, p.kind, layout, Domain.ZT, pad=False) for p in self.program.params
        )

    @property
    def output(self) -> Definition:
        region = tuple((i,) for i in range(self.n))
        return Definition("out", ("i",), Layout("vector", (self.n,)), Num(0), (), region)

    def output_slots(self) -> tuple[int, ...]:
        return tuple(range(self.n))

    def reference(self, inputs: Mapping[str, npt.ArrayLike]) -> dict[int, int]:
        out = interpret(self.program, {p.name: inputs[p.name] for p in self.program.params})
        return {i: int(v) for i, v in enumerate(out)}

    def random_inputs(self, rng: np.random.Generator) -> dict[str, Slots]:
        return {p.name: rng.integers(0, T, self.n, dtype=np.int64) for p in self.program.params}
