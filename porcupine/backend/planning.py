"""What an emitted kernel does, decided before any text is written.

:func:`plan` lowers a verified program as it will run (relinearizations placed by
:func:`quill.relin.place_relinearizations`, dead code dropped) and decides the BFV
parameters, which ciphertexts are rotated hoisted, which constants are encoded once per
context, and which rotation and relinearization keys the kernel needs. The code text
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

from quill.cost import DEFAULT_TABLE, CostTable, program_cost, row_us, should_hoist
from quill.ir import Const, Program
from quill.noise import LOG2_Q, RING_DIM, Parameters, ct_ct_depth, noise_bits, parameters
from quill.ops import Kind, Opcode
from quill.relin import place_relinearizations
from quill.slots import normalize_amount
from quill.spec import Definition, Domain, InputDecl, Layout
from quill.stats import counts
from quill.transform import live_instructions, live_values

DEFAULT_SECURITY = "HEStd_128_classic"
"""The security level kernels are emitted for unless told otherwise."""


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
    explicit (:mod:`quill.relin`); only its ``live`` values are emitted."""

    program: Program
    params: Parameters
    cost_ms: float
    table: CostTable
    slots: int
    security: str  # an openfhe.SecurityLevel name: the least a context may declare
    hoisted: frozenset[str]  # Quill names whose rotations share one precompute
    live: frozenset[str]  # values the result depends on
    constants: tuple[Const, ...]  # encoded once per context (the live ones)
    rotation_indices: tuple[int, ...]  # the kernel's rotation keys
    relinearizes: bool  # needs a relinearization key

    def amount(self, k: int) -> int:
        """The rotation amount emitted for Quill's ``rot(., k)`` (:func:`emitted_amount`)."""
        return emitted_amount(k, self.slots)


def emitted_amount(k: int, slots: int) -> int:
    """The rotation amount emitted for Quill's ``rot(., k)`` on ``slots`` slots: ``k``
    itself when ``|k| < n``, else the same rotation mod n in ``(-n/2, n/2]``. OpenFHE
    rotates correctly only by ``|k| < N/2`` (a larger index selects an automorphism that
    mixes the two rows: the slots decrypt to garbage), and ``n <= N/2``.
    """
    return k if -slots < k < slots else normalize_amount(k, slots)


def at_depth(program: Program, slots: int, mult_depth: int) -> Parameters:
    """The parameters of ``program`` forced to ``mult_depth``, whatever the noise model
    says (for probing the model itself)."""
    return Parameters(
        mult_depth,
        max(RING_DIM.get(mult_depth, max(RING_DIM.values())), 2 * slots),
        LOG2_Q.get(mult_depth, 0),
        max(noise_bits(program).values()),
        ct_ct_depth(program),
    )


def check_security(name: str) -> str:
    """``name`` if it names an ``openfhe.SecurityLevel``, else a ValueError listing them."""
    levels = list(openfhe.SecurityLevel.__members__)
    if name not in levels:
        raise ValueError(f"unknown security level {name!r}; OpenFHE has {levels}")
    return name


def plan(
    program: Program,
    slots: int,
    table: CostTable = DEFAULT_TABLE,
    hoist: bool | None = None,
    mult_depth: int | None = None,
    security: str = DEFAULT_SECURITY,
) -> EmitPlan:
    """Decide how ``program`` runs on ``slots`` slots.

    ``hoist=None`` lets the cost table decide per ciphertext (:func:`quill.cost.should_hoist`);
    ``True`` hoists every ciphertext rotated by two or more distinct amounts; ``False`` none.
    ``mult_depth`` forces the configured depth instead of :func:`quill.noise.parameters`.
    ``security`` is the least security level the kernel accepts a context at.
    """
    program = place_relinearizations(program)
    if mult_depth is None:
        params = parameters(program, slots)
    else:
        params = at_depth(program, slots, mult_depth)
    live = live_instructions(program)
    groups: defaultdict[str, set[int]] = defaultdict(set)
    for ins in live:
        if ins.opcode is Opcode.ROT:
            assert ins.amount is not None
            groups[ins.args[0]].add(ins.amount % slots)
    row = row_us(table, params.ring_dim)
    hoisted = frozenset(
        src
        for src, amounts in groups.items()
        if len(amounts) > 1 and (should_hoist(len(amounts), row) if hoist is None else hoist)
    )
    used = live_values(program)
    rotations = {emitted_amount(i.amount, slots) for i in live if i.amount is not None}
    return EmitPlan(
        program=program,
        params=params,
        cost_ms=program_cost(program, params.ring_dim, table),
        table=table,
        slots=slots,
        security=check_security(security),
        hoisted=hoisted,
        live=frozenset(used),
        constants=tuple(c for c in program.consts if c.name in used),
        rotation_indices=tuple(sorted(rotations)),
        relinearizes=counts(program).relinearizations > 0,
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
