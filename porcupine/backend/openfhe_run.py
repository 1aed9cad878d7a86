"""Run emitted kernels: build a context, encrypt, run, decrypt, compare with the spec.

Everything goes through the emitted module's own functions (``new_context``,
``generate_keys``, ``encrypt``/``encode``, ``kernel``, ``decode_slots``), so what is measured
and checked here is exactly what an application using the module gets. The same code runs a
module under real OpenFHE (:func:`run_encrypted`) or bound to the cleartext backend
(:func:`run_cleartext`, :mod:`porcupine.backend.cleartext`). A wrong decryption is
reported, never retried: it means the noise model (:mod:`quill.noise`) picked too small
parameters, and that is a bug to fix there.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import openfhe

from porcupine.backend.kernel_module import (
    EmittedKernel,
    emitted_module,
    is_packed,
    load_module,
    spec_slots,
)
from porcupine.backend.options import DEFAULT_OPTIONS, EmitOptions
from porcupine.backend.planning import SpecLike
from quill.cost import DEFAULT_TABLE, CostTable
from quill.ir import Program
from quill.noise import shared_parameters
from quill.params import ParameterSet
from quill.slots import T

Slots = npt.NDArray[np.int64]


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
    """The outcome of one run of a kernel (see :func:`run_encrypted`)."""

    kernel: str
    ok: bool
    mismatches: tuple[Mismatch, ...]
    kernel_ms: float  # median over the timed repetitions, kernel call only
    keygen_s: float  # key pair, relinearization and rotation keys
    setup_s: float  # context creation plus key generation
    ct_ct_depth_used: int  # measured by a DepthProbe: the deepest ciphertext computed
    parameter_set: str  # of the context (quill.params)
    mult_depth: int  # multiplicative depth the context was declared with
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
            f"  BFV parameter set {self.parameter_set} (N = {self.ring_dim}); ct*ct depth "
            f"used {self.ct_ct_depth_used}"
        )


def _ciphertext(value: object) -> bool:
    # Ciphertexts have a key tag and a degree; plaintexts have no key tag, keys no degree.
    return hasattr(value, "GetKeyTag") and hasattr(value, "GetNoiseScaleDeg")


class DepthProbe:
    """A crypto context that forwards every call to ``cc`` and measures the ct*ct depth of
    the computation the calls make.

    No ciphertext's ``GetNoiseScaleDeg()`` says it: OpenFHE's ``EvalAdd`` keeps its first
    operand's degree, so a degree understates after an add of a shallower first operand
    (``x + x*x`` reports 1, and a product with it one level too few). So the probe follows
    the data flow itself: a call's result is as deep as its deepest ciphertext operand, plus
    the step OpenFHE's degree takes in that call (1 for a ct*ct multiply, never below 0).
    """

    def __init__(self, cc: Any) -> None:
        self._cc = cc
        self._depths: dict[int, tuple[Any, int]] = {}  # id -> (ciphertext kept alive, depth)
        self.depth = 0

    def depth_of(self, ciphertext: Any) -> int:
        """The depth of a result of this probe's calls, else (a fresh input) its degree - 1."""
        known = self._depths.get(id(ciphertext))
        return known[1] if known is not None else int(ciphertext.GetNoiseScaleDeg()) - 1

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._cc, name)
        if not callable(attr):
            return attr

        def recorded(*args: Any) -> Any:
            out = attr(*args)
            if _ciphertext(out):
                operands = [a for a in args if _ciphertext(a)]
                degree = max((int(a.GetNoiseScaleDeg()) for a in operands), default=1)
                step = max(0, int(out.GetNoiseScaleDeg()) - degree)
                depth = max((self.depth_of(a) for a in operands), default=0) + step
                self._depths[id(out)] = (out, depth)
                self.depth = max(self.depth, depth)
            return out

        return recorded


# --- one context for one or more kernels ---------------------------------------------


class Session:
    """A context and key pair that serve one or more emitted modules of the same spec.

    The modules must have been emitted for one parameter set (``plan``'s ``param_set``
    emits them so): the context is that set's, with the union of their rotation keys, a
    relinearization key if any needs one and ADVANCEDSHE if any calls EvalSum; creation and
    key generation are timed separately from kernel runs. ``security`` is an
    ``openfhe.SecurityLevel`` (by default the first module's ``SECURITY``).
    """

    def __init__(self, modules: Sequence[EmittedKernel], *, security: Any = None) -> None:
        if not modules:
            raise ValueError("a session needs at least one kernel module")
        first = modules[0]
        sets = sorted({m.PARAMETER_SET for m in modules})
        if len(sets) > 1:
            raise ValueError(
                f"the kernels were emitted for different parameter sets ({', '.join(sets)}); "
                "emit them for one (param_set=) to run them in one context"
            )
        rotations = tuple(sorted({k for m in modules for k in m.ROTATION_INDICES}))
        ct_ct = any(m.CT_CT_MULT for m in modules)
        advanced = any(m.ADVANCED_SHE for m in modules)
        start = time.perf_counter()
        self.cc = first.new_context(security, advanced_she=advanced)
        keygen_start = time.perf_counter()
        self.keys = first.generate_keys(self.cc, rotations, ct_ct)
        end = time.perf_counter()
        self.keygen_s = end - keygen_start
        self.setup_s = end - start
        self.parameter_set = first.PARAMETER_SET
        self.mult_depth = first.MULT_DEPTH

    @property
    def ring_dim(self) -> int:
        return int(self.cc.GetRingDimension())

    def arguments(self, module: EmittedKernel, slot_inputs: Mapping[str, Slots]) -> dict[str, Any]:
        """Encrypt (ciphertext inputs) or encode (plaintext inputs) the inputs given as
        slot vectors, through the module's own natural-shape ``encrypt``/``encode``; a
        packed kernel's ``encrypt`` takes them all and gives the kernel's arguments."""
        if is_packed(module):
            values = {
                name: np.asarray(slot_inputs[name], dtype=np.int64)[module.INPUT_LAYOUTS[name]]
                for name in module.INPUTS
            }
            packed = cast(Any, module)  # its encrypt is not the EmittedKernel protocol's
            return dict(packed.encrypt(self.cc, self.keys, **values))
        args: dict[str, Any] = {}
        for name, kind in module.INPUTS.items():
            natural = np.asarray(slot_inputs[name], dtype=np.int64)[module.INPUT_LAYOUTS[name]]
            if kind == "ct":
                args[name] = module.encrypt(self.cc, self.keys, name, natural)
            else:
                args[name] = module.encode(self.cc, name, natural)
        return args

    def run(self, module: EmittedKernel, args: Mapping[str, Any]) -> tuple[Any, float]:
        """Run the module's kernel once: (output ciphertext, milliseconds)."""
        start = time.perf_counter()
        out = module.kernel(self.cc, **args)
        return out, (time.perf_counter() - start) * 1e3

    def depth_used(self, module: EmittedKernel, args: Mapping[str, Any]) -> int:
        """The ct*ct depth the kernel reaches on ``args``: the deepest of its inputs and of
        every ciphertext it computes (one run of ``evaluate`` through a
        :class:`DepthProbe`)."""
        probe = DepthProbe(self.cc)
        module.evaluate(probe, **args)
        inputs = [probe.depth_of(a) for a in args.values() if _ciphertext(a)]
        return max([probe.depth, *inputs])

    def decrypt(self, module: EmittedKernel, ciphertext: Any) -> Slots:
        """The first SLOTS slots of ``ciphertext``, in [0, t); a packed kernel's output
        slots put back in the spec's layout (its ``unpack_output``)."""
        slots = module.decode_slots(self.cc, self.keys, ciphertext)
        if is_packed(module):
            unpacked: Slots = cast(Any, module).unpack_output(slots)
            return unpacked
        return slots

    def check(
        self,
        module: EmittedKernel,
        spec: SpecLike,
        slot_inputs: Mapping[str, Slots],
        args: Mapping[str, Any] | None = None,
    ) -> tuple[Any, tuple[Mismatch, ...]]:
        """Run the kernel once on ``slot_inputs`` (already encrypted as ``args``, if
        given) and compare its decryption with the spec: (output, mismatches)."""
        out, _ = self.run(module, args if args is not None else self.arguments(module, slot_inputs))
        got = self.decrypt(module, out)
        return out, compare(spec, encrypted_slots(module, slot_inputs), got)


def encrypted_slots(module: EmittedKernel, slot_inputs: Mapping[str, Slots]) -> dict[str, Slots]:
    """The slot vectors the module's ``encode`` actually produces from ``slot_inputs``:
    the laid-out elements, zeros elsewhere (in the spec's slots, for a packed kernel). The
    reference is computed on these."""
    out: dict[str, Slots] = {}
    for name in module.INPUTS:
        layout = module.INPUT_LAYOUTS[name]
        vec = np.zeros(spec_slots(module), dtype=np.int64)
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


# --- running one kernel ----------------------------------------------------------------


def _module_for(
    spec: SpecLike,
    program: Program | None,
    module_path: str | Path | None,
    options: EmitOptions,
    cleartext: bool,
) -> tuple[EmittedKernel, str]:
    if (program is None) == (module_path is None):
        raise ValueError("give exactly one of program= and module_path=")
    if program is not None:
        module = emitted_module(program, spec, options, cleartext_backend=cleartext)
        return module, program.name
    assert module_path is not None
    module = load_module(module_path, cleartext_backend=cleartext)
    if spec.n != spec_slots(module):
        raise ValueError(
            f"{module_path} is a kernel on {spec_slots(module)} slots, the spec has {spec.n}"
        )
    want = {d.name: str(d.kind) for d in spec.inputs}
    if dict(module.INPUTS) != want:
        raise ValueError(f"{module_path} takes inputs {module.INPUTS}, the spec's are {want}")
    return module, Path(module_path).stem


def _run(
    spec: SpecLike,
    module: EmittedKernel,
    name: str,
    session: Session,
    inputs: Mapping[str, Slots] | None,
    seed: int,
    reps: int,
) -> RunResult:
    slot_inputs = inputs if inputs is not None else spec.random_inputs(np.random.default_rng(seed))
    args = session.arguments(module, slot_inputs)
    _, mismatches = session.check(module, spec, slot_inputs, args)
    depth = session.depth_used(module, args)
    times = [session.run(module, args)[1] for _ in range(reps)]
    return RunResult(
        kernel=name,
        ok=not mismatches,
        mismatches=mismatches,
        kernel_ms=statistics.median(times) if times else float("nan"),
        keygen_s=session.keygen_s,
        setup_s=session.setup_s,
        ct_ct_depth_used=depth,
        parameter_set=session.parameter_set,
        mult_depth=session.mult_depth,
        ring_dim=session.ring_dim,
        reps=reps,
        output_slots=len(spec.output_slots()),
    )


def run_encrypted(
    spec: SpecLike,
    *,
    program: Program | None = None,
    module_path: str | Path | None = None,
    inputs: Mapping[str, Slots] | None = None,
    seed: int = 0,
    reps: int = 10,
    options: EmitOptions = DEFAULT_OPTIONS,
) -> RunResult:
    """Run a kernel encrypted and check it against ``spec.reference``.

    The kernel is ``program`` (emitted to a temporary module) or the emitted module at
    ``module_path``. ``inputs`` are slot vectors of length ``spec.n`` (as
    ``spec.random_inputs`` makes them; by default those, with ``seed``); elements outside
    an input's layout are encrypted as zeros. The kernel runs once untimed (its output is
    checked), once through a :class:`DepthProbe` (the ct*ct depth used) and then ``reps``
    times timed. ``options`` say how ``program`` is emitted
    (:class:`~porcupine.backend.options.EmitOptions`); their ``security`` also names the
    ``openfhe.SecurityLevel`` the context is built at (by default the module's own, for
    ``program`` 128-bit classic). Under ``options.packing`` ``program`` computes
    ``packing.spec``, a client packing of ``spec``; its module gathers the inputs and is
    checked against ``spec`` all the same (a module at ``module_path`` says its packing
    itself, and the other options do not apply to it).
    """
    module, name = _module_for(spec, program, module_path, options, cleartext=False)
    level = None if options.security is None else getattr(openfhe, options.security)
    session = Session([module], security=level)
    return _run(spec, module, name, session, inputs, seed, reps)


def run_cleartext(
    spec: SpecLike,
    *,
    program: Program | None = None,
    module_path: str | Path | None = None,
    inputs: Mapping[str, Slots] | None = None,
    seed: int = 0,
    options: EmitOptions = DEFAULT_OPTIONS,
) -> RunResult:
    """:func:`run_encrypted` on the cleartext backend (no encryption, no timing): the
    kernel's slots, its relinearization placement and its depth, in milliseconds."""
    module, name = _module_for(spec, program, module_path, options, cleartext=True)
    return _run(spec, module, name, Session([module]), inputs, seed, reps=0)


def compare_latency(
    programs: Sequence[Program],
    spec: SpecLike,
    reps: int = 10,
    *,
    seed: int = 0,
    table: CostTable = DEFAULT_TABLE,
    param_set: ParameterSet | None = None,
) -> list[float]:
    """Median kernel latencies (ms) of ``programs``, measured interleaved in one context.

    The context is the cheapest parameter set every program is safe on
    (:func:`quill.noise.shared_parameters`, or ``param_set``), with the union of their keys:
    a program that alone would fit a cheaper set is measured on the shared one. Each
    program's output is checked once against the spec first (:class:`WrongDecryption` if
    wrong); then the programs take turns, ``reps`` rounds, the order alternating between
    rounds so neither always runs first.
    """
    shared = param_set or shared_parameters(programs, spec.n, table).param_set
    how = EmitOptions(table=table, param_set=shared)
    modules = [emitted_module(p, spec, how) for p in programs]
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
