"""Emit a Quill program as a readable, standalone Python module for OpenFHE (BFV).

The emitted module imports only ``openfhe`` and ``numpy``. It states the kernel's cost,
depth and BFV parameters in its docstring, and exposes its constants (``ROTATION_INDICES``,
``MULT_DEPTH``, ``SLOTS``, ...), ``make_context``, ``encode``/``encrypt``, ``kernel`` (one
OpenFHE call per Quill instruction) and ``decode``. The fixed part of every module is the
template :data:`_RUNTIME`; only the docstring, the constants, the layouts and the kernel body
are generated. Text is produced already in ``ruff format`` style (line length 100, magic
trailing commas where a construct is split), so emitted files pass ``ruff format --check``.
"""

from __future__ import annotations

import keyword
import textwrap
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from porcupine.files import write_atomically
from quill.cost import DEFAULT_TABLE, CostTable, program_cost, row_us, should_hoist
from quill.ir import Const, Instr, Program
from quill.noise import LOG2_Q, RING_DIM, Parameters, ct_ct_depth, noise_bits, parameters
from quill.ops import OPS, Kind, Opcode
from quill.printer import format_program
from quill.relin import place_relinearizations
from quill.slots import T, normalize_amount
from quill.spec import Definition, Domain, InputDecl, Layout
from quill.stats import counts
from quill.transform import live_instructions, live_values

LINE = 100
"""The project's ruff line length; emitted lines never exceed it."""

INDENT = "    "

# Module-level functions the kernel calls: an input of that name would hide them.
_MODULE_NAMES = frozenset({"check_context", "_constants", "openfhe", "np"})

# Names pycodestyle calls ambiguous (E741): values get another name, inputs a noqa.
_AMBIGUOUS = frozenset({"l", "O", "I"})


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
            d.name, d.kind, d.layout.kind, d.layout.shape, _grid(d.layout), d.domain is Domain.BITS
        )
        for d in spec.inputs
    )
    out = spec.output
    output = IOLayout(
        out.name, Kind.CT, out.layout.kind, out.layout.shape, _grid(out.layout), False
    )
    return Layouts(inputs, output, tuple(int(s) for s in spec.output_slots()))


@dataclass(frozen=True)
class EmitPlan:
    """What an emission decided: the parameters, the rotation amounts as emitted, and
    which ciphertexts get hoisted."""

    params: Parameters
    cost_ms: float
    hoisted: frozenset[str]  # Quill names whose rotations share one precompute
    table: CostTable
    slots: int

    def amount(self, k: int) -> int:
        """The rotation amount emitted for Quill's ``rot(., k)``: ``k`` itself when
        ``|k| < n``, else the same rotation mod n in ``(-n/2, n/2]``. OpenFHE rotates
        correctly only by ``|k| < N/2`` (a larger index selects an automorphism that mixes
        the two rows: the slots decrypt to garbage), and ``n <= N/2``.
        """
        return k if -self.slots < k < self.slots else normalize_amount(k, self.slots)

    def rotation_indices(self, program: Program) -> tuple[int, ...]:
        """The distinct rotation amounts the emitted kernel uses: its rotation keys (dead
        instructions are not emitted, so their rotations need no key)."""
        live = live_instructions(program)
        amounts = {i.amount for i in live if i.amount is not None}
        return tuple(sorted({self.amount(k) for k in amounts}))


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


def plan(
    program: Program,
    slots: int,
    table: CostTable = DEFAULT_TABLE,
    hoist: bool | None = None,
    mult_depth: int | None = None,
) -> EmitPlan:
    """Decide parameters and hoisting for ``program`` on ``slots`` slots.

    ``hoist=None`` lets the cost table decide per ciphertext (:func:`quill.cost.should_hoist`);
    ``True`` hoists every ciphertext rotated by two or more distinct amounts; ``False`` none.
    ``mult_depth`` forces the configured depth instead of :func:`quill.noise.parameters`.
    """
    program = place_relinearizations(program)
    if mult_depth is None:
        params = parameters(program, slots)
    else:
        params = at_depth(program, slots, mult_depth)
    row = row_us(table, params.ring_dim)
    groups: defaultdict[str, set[int]] = defaultdict(set)
    for ins in live_instructions(program):
        if ins.opcode is Opcode.ROT:
            assert ins.amount is not None
            groups[ins.args[0]].add(ins.amount % slots)
    hoisted = frozenset(
        src
        for src, amounts in groups.items()
        if len(amounts) > 1 and (should_hoist(len(amounts), row) if hoist is None else hoist)
    )
    cost = program_cost(program, params.ring_dim, table)
    return EmitPlan(params, cost, hoisted, table, slots)


def emit_python(
    program: Program,
    spec: SpecLike,
    table: CostTable = DEFAULT_TABLE,
    *,
    hoist: bool | None = None,
    mult_depth: int | None = None,
) -> str:
    """The OpenFHE Python module for ``program`` computing ``spec`` (pure: returns text).

    ``hoist`` overrides the cost table's hoisting decision and ``mult_depth`` the noise
    model's choice of depth (see :func:`plan`). Raises ``ValueError`` when the program's
    inputs do not match the spec's, and :class:`quill.noise.NoiseBudgetExceeded` when no
    modelled depth suffices.
    """
    layouts = io_layouts(spec)
    _check_inputs(program, layouts.inputs)
    program = place_relinearizations(program)  # what runs: relinearizations explicit
    decided = plan(program, spec.n, table, hoist, mult_depth)
    names = _Names(program)
    head = [
        _docstring(program, spec, layouts, decided),
        _imports(program),
        _settings(program, spec, layouts, decided),
    ]
    defs = [_RUNTIME, _constants_section(program), _kernel(program, names, decided)]
    # One blank line after the docstring and the imports, two around definitions.
    return "\n\n".join(head) + "\n\n\n" + "\n\n\n".join(d for d in defs if d) + "\n"


def emit_to_path(
    program: Program,
    spec: SpecLike,
    path: str | Path,
    table: CostTable = DEFAULT_TABLE,
    *,
    hoist: bool | None = None,
) -> Path:
    """Emit ``program`` (see :func:`emit_python`) and write it atomically to ``path``."""
    return write_atomically(path, emit_python(program, spec, table, hoist=hoist))


# --- checks and names ----------------------------------------------------------------------


def _signature(kinds: Mapping[str, Kind]) -> str:
    return ", ".join(f"{name}: {kind}" for name, kind in kinds.items()) or "none"


def _check_inputs(program: Program, inputs: Sequence[IOLayout]) -> None:
    want = {io.name: io.kind for io in inputs}
    have = {p.name: p.kind for p in program.params}
    if want != have:
        raise ValueError(
            f"kernel {program.name} takes ({_signature(have)}) but the spec's inputs are "
            f"({_signature(want)}): parameters must match the spec's inputs by name and kind"
        )
    if program.kinds()[program.result] is not Kind.CT:
        raise ValueError(f"kernel {program.name} returns a plaintext; it must return a ciphertext")


class _Names:
    """Python identifiers for Quill values and the kernel's own locals.

    Inputs keep their names (callers pass them as keyword arguments); the context, the
    constants table and the cyclotomic order take names no input has; other values keep
    theirs unless that collides or is a Python keyword, then get a trailing underscore.
    """

    def __init__(self, program: Program) -> None:
        self.taken: set[str] = set(_MODULE_NAMES | _AMBIGUOUS)
        self.py: dict[str, str] = {}
        for p in program.params:
            if keyword.iskeyword(p.name) or p.name in _MODULE_NAMES:
                raise ValueError(
                    f"input {p.name!r} cannot be a keyword argument of the emitted kernel "
                    "(a Python keyword or a name the module defines): rename it in the spec"
                )
            self.py[p.name] = p.name
            self.taken.add(p.name)  # an l, O or I input is already there: that is fine
        self.cc, self.const, self.order = self.new("cc"), self.new("const"), self.new("order")
        for ins in program.body:
            self.py[ins.dest] = self.new(ins.dest)
        for c in program.consts:
            self.py[c.name] = f'{self.const}["{c.name}"]'

    def new(self, base: str) -> str:
        """A fresh identifier, e.g. for a rotation precompute."""
        candidate = base
        while keyword.iskeyword(candidate) or candidate in self.taken:
            candidate += "_"
        self.taken.add(candidate)
        return candidate


# --- text helpers ----------------------------------------------------------------------


def _fits(line: str) -> bool:
    return len(line) <= LINE


def _bracketed(
    head: str, items: Sequence[str], close: str, *, explode: bool = False, indent: str = ""
) -> list[str]:
    """``head item, item close`` on one line if it fits (at ``indent``, and not
    ``explode``), else one item per line with a magic trailing comma (the form ``ruff
    format`` keeps)."""
    one = f"{head}{', '.join(items)}{close}"
    if (_fits(indent + one) and not explode) or not items:
        return [one]
    return [head, *(f"{INDENT}{it}," for it in items), close]


def _int_tuple(values: Sequence[int]) -> str:
    inner = ", ".join(str(v) for v in values)
    return f"({inner},)" if len(values) == 1 else f"({inner})"


def _int_literal(target: str, values: Sequence[int], comment: str = "") -> list[str]:
    """``target = (v, ...)``; packed several per line under ``# fmt: off`` when long, since
    ``ruff format`` would put each of thousands of values on its own line."""
    prefix = [f"# {comment}"] if comment else []
    one = f"{target} = {_int_tuple(values)}"
    if _fits(one):
        return [*prefix, one]
    body = textwrap.wrap(
        ", ".join(str(v) for v in values) + ",",
        width=LINE - len(INDENT),
        break_on_hyphens=False,
    )
    return [*prefix, "# fmt: off", f"{target} = (", *(INDENT + b for b in body), ")", "# fmt: on"]


# --- the module docstring ----------------------------------------------------------------


def _describe(io: IOLayout) -> str:
    if io.layout_kind == "scalar":
        return "scalar"
    return f"{io.layout_kind} {' x '.join(str(d) for d in io.shape)}"


def _docstring(program: Program, spec: SpecLike, layouts: Layouts, decided: EmitPlan) -> str:
    p = decided.params
    inputs = ", ".join(
        f"{io.name} ({'ciphertext' if io.kind is Kind.CT else 'plaintext'} {_describe(io)}"
        f"{', bits' if io.bits else ''})"
        for io in layouts.inputs
    )
    out = layouts.output
    quill_text = _wrap_code(format_program(program).rstrip("\n"))
    hoisted = (
        "rotations of " + ", ".join(sorted(decided.hoisted)) + " share one precompute"
        " (EvalFastRotationPrecompute + EvalFastRotation)"
        if decided.hoisted
        else "none"
    )
    facts = {
        "Spec": f"{spec_name(spec, program)}, {spec.n} slots",
        "Inputs": inputs,
        "Output": f"{_describe(out)}; {len(layouts.output_slots)} of {spec.n} slots matter",
        "Cost": f"{decided.cost_ms:.2f} ms estimated (quill.cost.program_cost at N = "
        f"{p.ring_dim}; table: {decided.table.source})",
        "Depth": f"ct*ct depth {p.ct_ct_depth}, estimated noise {p.noise_bits:.0f} bits",
        "BFV": f"t = {T}, multiplicative depth {p.mult_depth}, ring dimension {p.ring_dim}, "
        f"log2 Q = {p.log2_q} (quill.noise.parameters); 128-bit classic security unless "
        "make_context is told otherwise",
        "Hoisting": hoisted,
    }
    lines = [
        f'"""{program.name}: an OpenFHE BFV kernel emitted by Porcupine.',
        "",
        *(
            line
            for key, text in facts.items()
            for line in textwrap.wrap(
                f"{key}: {text}.", LINE, subsequent_indent=INDENT, break_on_hyphens=False
            )
        ),
        "",
        "Quill program::",
        "",
        *quill_text,
        "",
        "Usage::",
        "",
        *_usage(program, layouts),
        '"""',
    ]
    return "\n".join(line.rstrip() for line in lines)


def spec_name(spec: SpecLike, program: Program) -> str:
    """The spec's name, or the kernel's when the spec has none."""
    name = getattr(spec, "name", None)
    return str(name) if name else program.name


def _wrap_code(text: str) -> list[str]:
    """Quill text indented as a literal block; overlong lines (long constants) wrapped."""
    out: list[str] = []
    for line in text.splitlines():
        indent = INDENT + " " * (len(line) - len(line.lstrip()))
        out += textwrap.wrap(
            line.strip(),
            LINE,
            initial_indent=indent,
            subsequent_indent=indent + 2 * INDENT,
            break_on_hyphens=False,
        ) or [""]
    return out


def _usage(program: Program, layouts: Layouts) -> list[str]:
    """Example calls for the docstring, indented as a literal block (so 4 columns less)."""
    lines = ["cc, keys = make_context()"]
    for io in layouts.inputs:
        make = "encrypt(" if io.kind is Kind.CT else "encode("
        args = ["cc", "keys"] if io.kind is Kind.CT else ["cc"]
        call = _call(f"{io.name} = {make}", [*args, f'"{io.name}"', f"{io.name}_values"])
        hint = f"{call[-1]}  # {_shape_hint(io)}"
        lines += [*call[:-1], hint] if len(hint) <= LINE - len(INDENT) else call
    args = [f"{io.name}={io.name}" for io in layouts.inputs]
    lines += _bracketed("out = decode(cc, keys, kernel(cc, ", args, "))", indent=INDENT)
    return [INDENT + line for line in lines]


def _shape_hint(io: IOLayout) -> str:
    if io.layout_kind == "scalar":
        return "an int"
    return f"shape {io.shape}"


# --- imports and settings ----------------------------------------------------------------


def _imports(program: Program) -> str:
    std = ["from __future__ import annotations", ""]
    if _live_consts(program):
        std += ["import functools", ""]
    return "\n".join([*std, "import numpy as np", "import openfhe"])


def _settings(program: Program, spec: SpecLike, layouts: Layouts, decided: EmitPlan) -> str:
    p = decided.params
    inputs = [f'"{io.name}": "{io.kind}"' for io in layouts.inputs]
    bits = [f'"{io.name}"' for io in layouts.inputs if io.bits]
    lines = [
        f"PLAINTEXT_MODULUS = {T}",
        f"SLOTS = {spec.n}",
        f"RING_DIM = {p.ring_dim}",
        f"MULT_DEPTH = {p.mult_depth}",
        f"CT_CT_MULT = {counts(program).relinearizations > 0}",
        f"ROTATION_INDICES: tuple[int, ...] = {_int_tuple(decided.rotation_indices(program))}",
        *_bracketed("INPUTS: dict[str, str] = {", inputs, "}"),
        *(
            _bracketed("BIT_INPUTS: frozenset[str] = frozenset({", bits, "})")
            if bits
            else ["BIT_INPUTS: frozenset[str] = frozenset()"]
        ),
        *_int_literal(
            "OUTPUT_SLOTS: tuple[int, ...]",
            layouts.output_slots,
            "The output slots the spec constrains; the others are don't-care.",
        ),
        "",
        "",
        _SLOT_GRID,
        "",
        "",
        "# The slot of every element of each input and of the output, in its natural shape.",
    ]
    prelude: list[str] = []
    entries = []
    for io in layouts.inputs:
        expr, more = _grid_expr(io)
        prelude += more
        entries.append(f'"{io.name}": {expr}')
    out_expr, more = _grid_expr(layouts.output)
    prelude += more
    lines += prelude
    lines += _bracketed("INPUT_LAYOUTS: dict[str, np.ndarray] = {", entries, "}")
    lines.append(f"OUTPUT_LAYOUT: np.ndarray = {out_expr}")
    return "\n".join(lines)


_SLOT_GRID = '''
def _slot_grid(base: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> np.ndarray:
    """Slot indices of an element grid of ``shape`` laid out from ``base`` with ``strides``."""
    index = np.indices(shape, dtype=np.int64)
    return base + np.tensordot(np.array(strides, dtype=np.int64), index, axes=1)
'''.strip("\n")


def affine(grid: npt.NDArray[np.int64]) -> tuple[int, tuple[int, ...]] | None:
    """``(base, strides)`` when ``grid[idx] == base + sum(idx * strides)``, else None."""
    base = int(grid[(0,) * grid.ndim]) if grid.size else 0
    strides = tuple(
        int(np.take(grid, 1, axis=a)[(0,) * (grid.ndim - 1)]) - base if grid.shape[a] > 1 else 0
        for a in range(grid.ndim)
    )
    index = np.indices(grid.shape, dtype=np.int64)
    rebuilt = base + np.tensordot(np.array(strides, dtype=np.int64), index, axes=1)
    return (base, strides) if np.array_equal(rebuilt, grid) else None


def _grid_expr(io: IOLayout) -> tuple[str, list[str]]:
    """An expression for ``io``'s slot grid, and any lines that must precede it."""
    fit = affine(io.slots)
    if fit is not None:
        base, strides = fit
        return f"_slot_grid({base}, {_int_tuple(io.shape)}, {_int_tuple(strides)})", []
    name = f"_{io.name.upper()}_SLOTS"
    literal = _int_literal(name, [int(s) for s in io.slots.ravel()])
    return f"np.array({name}).reshape({_int_tuple(io.shape)})", literal


# --- constants and the kernel --------------------------------------------------------------


def _live_consts(program: Program) -> list[Const]:
    """The constants some live instruction reads (the others are not emitted)."""
    live = live_values(program)
    return [c for c in program.consts if c.name in live]


def _constants_section(program: Program) -> str:
    if not _live_consts(program):
        return ""
    lines: list[str] = []
    entries = []
    targets: set[str] = set()
    for c in _live_consts(program):
        values = [v % T for v in c.values]
        if _fits(f'{INDENT}"{c.name}": {_int_tuple(values)},'):
            entries.append(f'"{c.name}": {_int_tuple(values)}')
            continue
        target = f"_{c.name.upper()}_VALUES"  # a long constant gets its own packed literal
        while target in targets:  # Quill names are case-sensitive, these are upper case
            target += "_"
        targets.add(target)
        lines += _int_literal(target, values)
        entries.append(f'"{c.name}": {target}')
    lines += _bracketed("_CONSTANT_VALUES: dict[str, tuple[int, ...]] = {", entries, "}")
    return "\n".join(lines) + "\n\n\n" + _CONSTANTS_FN


_CONSTANTS_FN = '''
@functools.lru_cache(maxsize=8)
def _constants(cc: openfhe.CryptoContext) -> dict[str, openfhe.Plaintext]:
    """The kernel's constants as packed plaintexts, made once per context, not per call.

    A constant's values repeat periodically over the SLOTS slots (then across the row).
    """
    return {
        name: pack(cc, np.resize(np.array(values, dtype=np.int64), SLOTS))
        for name, values in _CONSTANT_VALUES.items()
    }
'''.strip("\n")


def _kernel(program: Program, names: _Names, decided: EmitPlan) -> str:
    py, cc = names.py, names.cc
    params = [f"{p.name}: openfhe.{_ptype(p.kind)}" for p in program.params]
    signature = [f"{cc}: openfhe.CryptoContext", "/", "*", *params]
    # An input named l, O or I keeps its name (callers pass it by keyword): silence E741
    # on its own line.
    ambiguous = any(p.name in _AMBIGUOUS for p in program.params)
    head = _bracketed("def kernel(", signature, ") -> openfhe.Ciphertext:", explode=ambiguous)
    head = [
        f"{line}  # noqa: E741" if line.strip().split(":")[0] in _AMBIGUOUS else line
        for line in head
    ]
    first_ct = next(p.name for p in program.params if p.kind is Kind.CT)
    body = [
        f'"""{program.name} on encrypted inputs: one OpenFHE call per Quill instruction."""',
        *_call("check_context(", [cc, f"{first_ct}.GetKeyTag()"]),
    ]
    if _live_consts(program):
        body.append(f"{names.const} = _constants({cc})")
    if decided.hoisted:
        body.append(f"{names.order} = {cc}.GetCyclotomicOrder()  # hoisted rotations use it")
    used = live_values(program)
    precomputed: dict[str, str] = {}
    for ins in program.body:
        if ins.dest not in used:
            body.append(f"# {ins.dest} is never used: not emitted")
            continue
        src = ins.args[0]
        if ins.opcode is Opcode.ROT and src in decided.hoisted and src not in precomputed:
            precomputed[src] = names.new(f"{py[src]}_pre")
            body += _call(f"{precomputed[src]} = {cc}.EvalFastRotationPrecompute(", [py[src]])
        body += _instr_lines(ins, names, decided, precomputed)
    body.append(f"return {py[program.result]}")
    return "\n".join(head + [INDENT + b for b in body])


def _call(head: str, args: Sequence[str]) -> list[str]:
    """A call statement in the kernel body (one indent deep), split if it is too long."""
    return _bracketed(head, args, ")", indent=INDENT)


def _ptype(kind: Kind) -> str:
    return "Ciphertext" if kind is Kind.CT else "Plaintext"


def _instr_lines(
    ins: Instr, names: _Names, decided: EmitPlan, precomputed: dict[str, str]
) -> list[str]:
    """The OpenFHE call for one Quill instruction."""
    args = [names.py[a] for a in ins.args]
    method = OPS[ins.opcode].openfhe
    if ins.opcode is Opcode.ROT:
        assert ins.amount is not None
        amount = decided.amount(ins.amount)
        if ins.args[0] in precomputed:
            method = "EvalFastRotation"
            args = [args[0], str(amount), names.order, precomputed[ins.args[0]]]
        else:
            args.append(str(amount))
    return _call(f"{names.py[ins.dest]} = {names.cc}.{method}(", args)


# The fixed part of every emitted module: context, checks, encoding and decoding.
_RUNTIME = '''
class KernelContextError(ValueError):
    """The crypto context does not fit this kernel: a parameter or a key is missing."""


def new_context(
    security: openfhe.SecurityLevel = openfhe.HEStd_128_classic,
    mult_depth: int = MULT_DEPTH,
) -> openfhe.CryptoContext:
    """A BFV context with t = PLAINTEXT_MODULUS and ``mult_depth``, PKE, KEYSWITCH and
    LEVELEDSHE enabled.

    OpenFHE picks the ring dimension from the depth and ``security`` (128-bit classic
    unless told otherwise); it is raised only when a row of N/2 slots could not hold the
    kernel's SLOTS slots.
    """
    params = openfhe.CCParamsBFVRNS()
    params.SetPlaintextModulus(PLAINTEXT_MODULUS)
    params.SetMultiplicativeDepth(mult_depth)
    params.SetSecurityLevel(security)
    cc = openfhe.GenCryptoContext(params)
    if cc.GetRingDimension() < 2 * SLOTS:
        params.SetRingDim(2 * SLOTS)
        cc = openfhe.GenCryptoContext(params)
    for feature in (openfhe.PKE, openfhe.KEYSWITCH, openfhe.LEVELEDSHE):
        cc.Enable(feature)
    return cc


def generate_keys(
    cc: openfhe.CryptoContext,
    rotation_indices: tuple[int, ...] = ROTATION_INDICES,
    ct_ct_mult: bool = CT_CT_MULT,
) -> openfhe.KeyPair:
    """A key pair, the relinearization key only if the kernel multiplies two ciphertexts,
    and rotation keys only for ``rotation_indices``."""
    keys = cc.KeyGen()
    if ct_ct_mult:
        cc.EvalMultKeyGen(keys.secretKey)
    if rotation_indices:
        cc.EvalRotateKeyGen(keys.secretKey, list(rotation_indices))
    return keys


def make_context(
    security: openfhe.SecurityLevel = openfhe.HEStd_128_classic,
) -> tuple[openfhe.CryptoContext, openfhe.KeyPair]:
    """The context and keys this kernel needs: ``cc, keys = make_context()``."""
    cc = new_context(security)
    return cc, generate_keys(cc)


def missing_rotation_keys(cc: openfhe.CryptoContext, key_tag: str) -> list[int]:
    """The indices in ROTATION_INDICES with no rotation key under ``key_tag``."""
    have = set(cc.GetExistingEvalAutomorphismKeyIndices(key_tag))
    return [k for k in ROTATION_INDICES if cc.FindAutomorphismIndex(k) not in have]


def check_context(cc: openfhe.CryptoContext, key_tag: str | None = None) -> None:
    """Raise KernelContextError unless ``cc`` fits this kernel.

    Checks the plaintext modulus, the ring dimension and the multiplicative depth, and,
    given the inputs' key tag, the relinearization key and the rotation keys (without
    them OpenFHE fails with an unhelpful ``IndexError: map::at``).
    """
    t = cc.GetPlaintextModulus()
    if t != PLAINTEXT_MODULUS:
        raise KernelContextError(
            f"plaintext modulus is {t}, this kernel needs {PLAINTEXT_MODULUS}: "
            "build the context with make_context()"
        )
    ring_dim = cc.GetRingDimension()
    if ring_dim < 2 * SLOTS:
        raise KernelContextError(
            f"ring dimension {ring_dim} is too small: a row of N/2 slots must hold the "
            f"kernel's {SLOTS} slots, so N >= {2 * SLOTS} (SetRingDim)"
        )
    depth = cc.GetMultiplicativeDepth()
    if depth < MULT_DEPTH:
        raise KernelContextError(
            f"multiplicative depth {depth} is too small: this kernel needs {MULT_DEPTH} "
            f"(SetMultiplicativeDepth({MULT_DEPTH}), as make_context() does)"
        )
    if key_tag is None:
        return
    if CT_CT_MULT and key_tag not in cc.GetAllEvalMultKeys():
        raise KernelContextError(
            "no relinearization key for the inputs' secret key: generate it with "
            "cc.EvalMultKeyGen(keys.secretKey)"
        )
    missing = missing_rotation_keys(cc, key_tag)
    if missing:
        raise KernelContextError(
            f"no rotation key for index {missing[0]} (missing: {missing}): generate it with "
            f"cc.EvalRotateKeyGen(keys.secretKey, {missing}), or use make_context()"
        )


def pack(cc: openfhe.CryptoContext, slots: np.ndarray) -> openfhe.Plaintext:
    """A packed plaintext of a SLOTS-slot vector, tiled across the BFV row of N/2 slots.

    Tiling makes EvalRotate exactly a cyclic rotation mod SLOTS: BFV rotates cyclically
    within each row of N/2 slots, and every copy of the vector brings its neighbour's
    elements around.
    """
    row = cc.GetRingDimension() // 2
    return cc.MakePackedPlaintext(np.tile(slots % PLAINTEXT_MODULUS, row // SLOTS).tolist())


def encode(cc: openfhe.CryptoContext, name: str, values: object) -> openfhe.Plaintext:
    """Input ``name``, given in its natural shape, as a packed plaintext.

    Element ``i`` goes to slot ``INPUT_LAYOUTS[name][i]``, every other slot is zero, and
    the vector is tiled across the row (see ``pack``). Values are taken mod
    PLAINTEXT_MODULUS; inputs in BIT_INPUTS must be 0 or 1 (the kernel relies on it).
    """
    if name not in INPUT_LAYOUTS:
        raise KeyError(f"no input {name!r}; the inputs are {sorted(INPUT_LAYOUTS)}")
    layout = INPUT_LAYOUTS[name]
    array = np.asarray(values, dtype=np.int64)
    if array.shape != layout.shape:
        raise ValueError(f"input {name!r} has shape {array.shape}, expected {layout.shape}")
    if name in BIT_INPUTS and not np.isin(array, (0, 1)).all():
        raise ValueError(f"input {name!r} must hold bits (0 or 1): the kernel relies on it")
    slots = np.zeros(SLOTS, dtype=np.int64)
    slots[layout] = array % PLAINTEXT_MODULUS
    return pack(cc, slots)


def encrypt(
    cc: openfhe.CryptoContext, keys: openfhe.KeyPair, name: str, values: object
) -> openfhe.Ciphertext:
    """Input ``name`` encoded (see ``encode``) and encrypted under ``keys.publicKey``."""
    if INPUTS.get(name) == "pt":
        raise ValueError(f"input {name!r} is a plaintext: pass encode(cc, {name!r}, values)")
    return cc.Encrypt(keys.publicKey, encode(cc, name, values))


def decode_slots(
    cc: openfhe.CryptoContext, keys: openfhe.KeyPair, ciphertext: openfhe.Ciphertext
) -> np.ndarray:
    """Decrypt ``ciphertext`` and return its first SLOTS slots, in [0, PLAINTEXT_MODULUS)."""
    plaintext = cc.Decrypt(keys.secretKey, ciphertext)
    plaintext.SetLength(SLOTS)
    values = np.array(plaintext.GetPackedValue()[:SLOTS], dtype=np.int64)
    return values % PLAINTEXT_MODULUS  # OpenFHE returns centred values


def decode(
    cc: openfhe.CryptoContext, keys: openfhe.KeyPair, ciphertext: openfhe.Ciphertext
) -> np.ma.MaskedArray | int:
    """The kernel's output, decrypted, in its natural shape (values in [0, t)).

    A scalar output is an int. A vector or image is a numpy masked array shaped like
    OUTPUT_LAYOUT whose masked elements are the don't-care slots (the spec does not
    constrain them, so they hold whatever the kernel left there): ``out.filled(0)`` gives
    a plain array with zeros there, ``~out.mask`` marks the elements that matter.
    """
    slots = decode_slots(cc, keys, ciphertext)
    if OUTPUT_LAYOUT.ndim == 0:
        return int(slots[OUTPUT_LAYOUT])
    dont_care = ~np.isin(OUTPUT_LAYOUT, OUTPUT_SLOTS)
    return np.ma.masked_array(slots[OUTPUT_LAYOUT], mask=dont_care)
'''.strip("\n")
