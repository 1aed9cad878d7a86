"""What an emitted kernel does, decided before any text is written.

:func:`plan` lowers a verified program as it will run (relinearizations placed by
:func:`quill.relin.place_relinearizations`, rotation amounts reduced mod n, dead code
dropped) and decides the BFV parameter set (:func:`quill.noise.parameters`), which
ciphertexts are rotated hoisted, which constants are encoded once per context, and which
rotation and relinearization keys the kernel needs. The code text
(:mod:`porcupine.backend.openfhe_emit`) only renders an :class:`EmitPlan`; the runner and the
cleartext backend read the same decisions back from the emitted module.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import openfhe

from porcupine.backend import runtime
from porcupine.backend.options import DEFAULT_OPTIONS, DEFAULT_SECURITY, EmitOptions
from quill.cost import CostTable, program_cost, row_us, should_hoist
from quill.ir import Const, Instr, Program
from quill.noise import Parameters, assess, parameters, slots_needed
from quill.ops import Kind
from quill.params import ParameterSet
from quill.relin import place_relinearizations
from quill.slots import normalize_amount
from quill.spec import Definition, Domain, InputDecl, Layout
from quill.stats import counts
from quill.transform import live_instructions, live_values


class SpecLike(Protocol):
    """What the backend reads of a spec (:class:`quill.spec.Spec` has it all)."""

    @property
    def name(self) -> str: ...
    @property
    def n(self) -> int: ...
    @property
    def inputs(self) -> Sequence[InputDecl]: ...
    @property
    def output(self) -> Definition: ...
    def output_slots(self) -> tuple[int, ...]: ...
    def reference(self, inputs: Mapping[str, npt.ArrayLike]) -> dict[int, int]: ...
    def random_inputs(self, rng: np.random.Generator) -> dict[str, npt.NDArray[np.int64]]: ...


@dataclass(frozen=True)
class IOLayout:
    """An input or the output as the emitted module sees it: the slot of every element,
    in the element's natural shape (``()`` for a scalar)."""

    name: str
    kind: Kind
    layout_kind: str  # vector, image or scalar
    shape: tuple[int, ...]
    slots: npt.NDArray[np.int64]
    bits: bool  # elements must be 0 or 1
    bounds: tuple[int, int] | None  # inclusive range of every element, if declared


@dataclass(frozen=True)
class Layouts:
    """The spec's inputs and output, and the output slots that matter."""

    inputs: tuple[IOLayout, ...]
    output: IOLayout
    output_slots: tuple[int, ...]


def _grid(layout: Layout) -> npt.NDArray[np.int64]:
    slots = [layout.slot(index) for index in layout.indices()]
    return np.array(slots, dtype=np.int64).reshape(layout.shape)


def io_layouts(spec: SpecLike) -> Layouts:
    """The slot grids of ``spec``'s inputs and output."""
    inputs = tuple(
        IOLayout(
            d.name,
            d.kind,
            d.layout.kind,
            d.layout.shape,
            _grid(d.layout),
            d.domain is Domain.BITS,
            d.value_bounds(),
        )
        for d in spec.inputs
    )
    out = spec.output
    output = IOLayout(
        out.name, Kind.CT, out.layout.kind, out.layout.shape, _grid(out.layout), False, None
    )
    return Layouts(inputs, output, tuple(int(s) for s in spec.output_slots()))


@dataclass(frozen=True)
class EmitPlan:
    """What an emission decided. ``program`` is the program as it runs: relinearizations
    explicit (:mod:`quill.relin`), rotation amounts as emitted; only its ``live`` values are
    emitted."""

    program: Program
    params: Parameters
    cost_ms: float
    table: CostTable
    slots: int
    security: str  # an openfhe.SecurityLevel name: the least a context may declare
    hoisted: frozenset[str]  # Quill names whose rotations share one precompute
    live: frozenset[str]  # values the result depends on
    constants: tuple[Const, ...]  # encoded once per context (the live ones)
    rotation_indices: tuple[int, ...]  # the kernel's rotation keys (EvalSum's included)
    relinearizes: bool  # needs a relinearization key
    advanced_she: bool  # calls EvalSum, which needs ADVANCEDSHE

    @property
    def param_set(self) -> ParameterSet:
        return self.params.param_set


def emitted_amount(k: int, slots: int) -> int:
    """The rotation amount emitted for Quill's ``rot(., k)`` on ``slots`` slots: ``k``
    itself when ``|k| < n``, else the same rotation mod n in ``(-n/2, n/2]``. OpenFHE
    rotates correctly only by ``|k| < N/2`` (a larger index selects an automorphism that
    mixes the two rows: the slots decrypt to garbage), and ``n <= N/2``.
    """
    return k if -slots < k < slots else normalize_amount(k, slots)


def emitted_rotations(program: Program, slots: int) -> Program:
    """``program`` with every rotation amount as emitted (:func:`emitted_amount`); other
    amounts (EvalSum's window) are emitted as written."""
    body = tuple(
        Instr(i.dest, i.opcode, i.args, emitted_amount(i.amount, slots))
        if i.opcode.rotates and i.amount is not None
        else i
        for i in program.body
    )
    return Program(program.name, program.params, program.consts, body, program.result)


def context_settings(param_set: ParameterSet) -> dict[str, object]:
    """The keywords of the runtime's ``context_parameters`` that build ``param_set``."""
    return {
        "ring_dim": param_set.ring_dim,
        "mult_depth": param_set.mult_depth,
        "scaling_mod_size": param_set.scaling_mod_size,
        "digit_size": param_set.digit_size,
        "key_switching": param_set.key_switching,
        "multiplication": param_set.multiplication,
    }


def new_context(
    param_set: ParameterSet, security: str = DEFAULT_SECURITY, *, advanced_she: bool = False
) -> object:
    """An OpenFHE context of ``param_set``, built as emitted kernels build theirs (the
    runtime's ``new_context``), for calibration and noise probes."""
    level = getattr(openfhe, check_security(security))
    return runtime.new_context(level, advanced_she=advanced_she, **context_settings(param_set))


def check_security(name: str) -> str:
    """``name`` if it names an ``openfhe.SecurityLevel``, else a ValueError listing them."""
    levels = list(openfhe.SecurityLevel.__members__)
    if name not in levels:
        raise ValueError(f"unknown security level {name!r}; OpenFHE has {levels}")
    return name


def plan(program: Program, slots: int, options: EmitOptions = DEFAULT_OPTIONS) -> EmitPlan:
    """Decide how ``program`` runs on ``slots`` slots, as ``options`` say (their cost
    table, hoisting, parameter set and security level; :class:`EmitOptions`)."""
    table, hoist, param_set = options.table, options.hoist, options.param_set
    program = emitted_rotations(place_relinearizations(program), slots)
    if param_set is None:
        params = parameters(program, slots, table)
    elif param_set.slots < slots_needed(program, slots):
        raise ValueError(
            f"parameter set {param_set.name} has {param_set.slots} slots in a row; "
            f"{program.name} needs {slots_needed(program, slots)}"
        )
    else:
        params = assess(program, param_set)
    live = live_instructions(program)
    groups: defaultdict[str, set[int]] = defaultdict(set)
    for ins in live:
        if ins.opcode.rotates:
            assert ins.amount is not None
            groups[ins.args[0]].add(ins.amount % slots)
    row = row_us(table, params.param_set)
    hoisted = frozenset(
        src
        for src, amounts in groups.items()
        if len(amounts) > 1 and (should_hoist(len(amounts), row) if hoist is None else hoist)
    )
    used = live_values(program)
    stats = counts(program)
    return EmitPlan(
        program=program,
        params=params,
        cost_ms=program_cost(program, params.param_set, table),
        table=table,
        slots=slots,
        security=check_security(options.security_level),
        hoisted=hoisted,
        live=frozenset(used),
        constants=tuple(c for c in program.consts if c.name in used),
        rotation_indices=stats.rotation_keys,
        relinearizes=stats.relinearizations > 0,
        advanced_she=stats.sums > 0,
    )


def _signature(kinds: Mapping[str, Kind]) -> str:
    return ", ".join(f"{name}: {kind}" for name, kind in kinds.items()) or "none"


def check_signature(program: Program, inputs: Sequence[IOLayout]) -> None:
    """Raise ValueError unless ``program`` takes exactly the spec's inputs (by name and
    kind) and returns a ciphertext."""
    want = {io.name: io.kind for io in inputs}
    have = {p.name: p.kind for p in program.params}
    if want != have:
        raise ValueError(
            f"kernel {program.name} takes ({_signature(have)}) but the spec's inputs are "
            f"({_signature(want)}): parameters must match the spec's inputs by name and kind"
        )
    if program.kinds()[program.result] is not Kind.CT:
        raise ValueError(f"kernel {program.name} returns a plaintext; it must return a ciphertext")
