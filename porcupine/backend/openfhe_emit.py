"""Emit a Quill program as a readable, standalone Python module for OpenFHE (BFV).

An emitted module is :mod:`porcupine.backend.runtime` with three parts generated: the
docstring (what the kernel computes, costs and needs), the block of kernel constants
(parameters, keys, input and output layouts, constant values), and the kernel code:
``evaluate`` (one OpenFHE call per Quill instruction of the lowered program) and ``kernel``
(``check_inputs``, then ``evaluate``). Everything else is the runtime's source, copied
verbatim, so the module imports only ``openfhe`` and ``numpy``. Text is produced in ``ruff
format`` style (:mod:`porcupine.backend.pytext`).
"""

from __future__ import annotations

import hashlib
import keyword
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from porcupine.backend.batching import instance_constants, instance_layout
from porcupine.backend.docstring import module_docstring
from porcupine.backend.options import DEFAULT_OPTIONS, EmitOptions
from porcupine.backend.packed_emit import (
    PackedLayout,
    packed_layout,
    packed_middle,
    packing_constants,
)
from porcupine.backend.planning import (
    EmitPlan,
    IOLayout,
    Layouts,
    SpecLike,
    check_signature,
    io_layouts,
    plan,
)
from porcupine.backend.pytext import (
    INDENT,
    bracketed,
    call,
    fits,
    int_literal,
    int_tuple,
    wrap_comment,
)
from porcupine.backend.sections import RuntimeText, assemble
from porcupine.backend.tiling import Tiling, derive_tiling, tiling_constants
from porcupine.files import write_atomically
from quill.ir import Instr, Program
from quill.noise import MARGIN_BITS
from quill.ops import OPS, Kind
from quill.slots import T
from quill.spec import Spec

RESERVED_INPUT_NAMES = frozenset({"check_inputs", "evaluate", "_constants", "openfhe", "np"})
"""Module names the kernel code uses: an input of that name would hide them."""

# Names pycodestyle calls ambiguous (E741): values get another name, inputs a noqa.
_AMBIGUOUS = frozenset({"l", "O", "I"})


def emit_python(program: Program, spec: SpecLike, options: EmitOptions = DEFAULT_OPTIONS) -> str:
    """The OpenFHE Python module for ``program`` computing ``spec`` (pure: returns text).

    ``options`` (:class:`~porcupine.backend.options.EmitOptions`) may override the cost
    table, its hoisting decision, the noise model's choice of parameter set and the least
    security level the kernel accepts (see :func:`~porcupine.backend.planning.plan`), and
    give a client packing: ``program`` then computes ``options.packing.spec`` and the module
    still takes ``spec``'s inputs and returns its output, gathering and scattering slots
    itself (:mod:`porcupine.backend.packed_emit`). Raises ``ValueError`` when the program's
    inputs do not match the spec's (or the packing's ciphertexts), and
    :class:`quill.noise.NoiseBudgetExceeded` when no parameter set holds it.
    """
    packing = options.packing
    layouts = io_layouts(spec)
    packed = None if packing is None else packed_layout(packing, spec, program)
    if packed is None:
        check_signature(program, layouts.inputs)
    slots = spec.n if packing is None else packing.slots
    decided = plan(program, slots, options)
    middle = RuntimeText.load().middle
    text = assemble(
        module_docstring(spec, layouts, decided, packed),
        kernel_constants(
            decided,
            layouts,
            packed,
            application_constants(spec, decided, layouts, packed is not None),
        ),
        middle if packed is None else packed_middle(middle),
        kernel_code(decided, _Names(decided.program)),
    )
    return text.replace(KERNEL_ID_PLACEHOLDER, kernel_id(text))


def emit_to_path(
    program: Program, spec: SpecLike, path: str | Path, options: EmitOptions = DEFAULT_OPTIONS
) -> Path:
    """Emit ``program`` (see :func:`emit_python`) and write it atomically to ``path``."""
    return write_atomically(path, emit_python(program, spec, options))


class _Names:
    """Python identifiers for Quill values and the kernel's own locals.

    Inputs keep their names (callers pass them as keyword arguments); the context, the
    constants table and the cyclotomic order take names no input has; other values keep
    theirs unless that collides or is a Python keyword, then get a trailing underscore.
    """

    def __init__(self, program: Program) -> None:
        self.taken: set[str] = set(RESERVED_INPUT_NAMES | _AMBIGUOUS)
        self.py: dict[str, str] = {}
        for p in program.params:
            if keyword.iskeyword(p.name) or p.name in RESERVED_INPUT_NAMES:
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


# --- the kernel constants ------------------------------------------------------------------

KERNEL_ID_PLACEHOLDER = "0" * 16


def kernel_id(text: str) -> str:
    """The digest that names an emitted module: of its text with the placeholder id."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def application_constants(
    spec: SpecLike, decided: EmitPlan, layouts: Layouts, packed: bool
) -> list[str]:
    """The constants of the application sections: how data of any size maps onto the
    kernel's ciphertexts (derived from the spec, :mod:`porcupine.backend.tiling`) and how
    many instances share one (from the program as emitted,
    :mod:`porcupine.backend.batching`)."""
    tiling = (
        derive_tiling(spec)
        if isinstance(spec, Spec)
        else Tiling("fixed", reason="emitted for a program, not a spec file")
    )
    instances = instance_layout(decided, layouts.output_slots, packed=packed)
    sized = [f'"{name}": {value}' for name, value in getattr(spec, "params", ())]
    params = bracketed("SPEC_PARAMS: dict[str, int] = {", sized, "}")
    return tiling_constants(tiling) + params + instance_constants(instances)


def kernel_constants(
    decided: EmitPlan,
    layouts: Layouts,
    packed: PackedLayout | None = None,
    application: Sequence[str] = (),
) -> str:
    """The block of kernel constants (the runtime's placeholder block, for this kernel), the
    ``application`` sections' constants, and a packed kernel's packing constants."""
    p, s = decided.params, decided.param_set
    inputs = [f'"{io.name}": "{io.kind}"' for io in layouts.inputs]
    bits = [f'"{io.name}"' for io in layouts.inputs if io.bits]
    ranges = [f'"{io.name}": {int_tuple(io.bounds)}' for io in layouts.inputs if io.bounds]
    lines = [
        f'KERNEL = "{decided.program.name}"',
        "# Names this exact module (a digest of its text): bundles and requests carry it.",
        f'KERNEL_ID = "{KERNEL_ID_PLACEHOLDER}"',
        f"PLAINTEXT_MODULUS = {T}",
        f"SLOTS = {decided.slots}",
        *wrap_comment(
            "The BFV context this kernel runs in, built by new_context() and required by "
            f"check_context(): quill.params' {s.name} (log2 Q = {s.log2_q:.0f}, the product of "
            f"the RNS TOWERS); its predicted noise stays {p.margin_bits:.1f} bits below the "
            f"level at which decryption fails (quill.noise requires {MARGIN_BITS:.0f})."
        ),
        f'PARAMETER_SET = "{s.name}"',
        f"RING_DIM = {s.ring_dim}",
        f"MULT_DEPTH = {s.mult_depth}",
        f"SCALING_MOD_SIZE = {s.scaling_mod_size}",
        f"DIGIT_SIZE = {s.digit_size}",
        f'KEY_SWITCHING = "{s.key_switching}"',
        f'MULTIPLICATION = "{s.multiplication}"',
        *int_literal("TOWERS: tuple[int, ...]", s.towers),
        f"LOG2_Q = {s.log2_q:.1f}",
        f"NOISE_MARGIN_BITS = {p.margin_bits:.1f}",
        f'SECURITY = "{decided.security}"',
        f"CT_CT_MULT = {decided.relinearizes}",
        f"ADVANCED_SHE = {decided.advanced_she}",
        f"ROTATION_INDICES: tuple[int, ...] = {int_tuple(decided.rotation_indices)}",
        *bracketed("INPUTS: dict[str, str] = {", inputs, "}"),
        *(
            bracketed("BIT_INPUTS: frozenset[str] = frozenset({", bits, "})")
            if bits
            else ["BIT_INPUTS: frozenset[str] = frozenset()"]
        ),
        *bracketed("INPUT_RANGES: dict[str, tuple[int, int]] = {", ranges, "}"),
        *int_literal(
            "OUTPUT_SLOTS: tuple[int, ...]",
            layouts.output_slots,
            "The output slots the spec constrains; the others are don't-care.",
        ),
        "# The slot of every element of each input and of the output, in its natural shape.",
    ]
    entries = []
    taken = {"_CONSTANT_VALUES"}
    for io in layouts.inputs:
        expr, literal = _grid_expr(io, taken)
        lines += literal
        entries.append(f'"{io.name}": {expr}')
    out_expr, literal = _grid_expr(layouts.output, taken)
    lines += literal
    lines += bracketed("INPUT_LAYOUTS: dict[str, Slots] = {", entries, "}")
    lines.append(f"OUTPUT_LAYOUT: Slots = {out_expr}")
    lines.append("# The kernel's constants; each repeats periodically over the SLOTS slots.")
    lines += _constant_values(decided, taken)
    lines += application
    if packed is not None:
        lines += packing_constants(packed, lambda base: _literal_name(base, taken))
    return "\n".join(lines)


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


def _literal_name(base: str, taken: set[str]) -> str:
    """A module-level name for a long literal: Quill names are case-sensitive, these are
    upper case, and the runtime has names of its own."""
    name = f"_{base.upper()}"
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _grid_expr(io: IOLayout, taken: set[str]) -> tuple[str, list[str]]:
    """An expression for ``io``'s slot grid, and any lines that must precede it."""
    fit = affine(io.slots)
    if fit is not None:
        base, strides = fit
        return f"_slot_grid({base}, {int_tuple(io.shape)}, {int_tuple(strides)})", []
    name = _literal_name(f"{io.name}_slots", taken)
    literal = int_literal(name, [int(s) for s in io.slots.ravel()])
    return f"np.array({name}).reshape({int_tuple(io.shape)})", literal


def _constant_values(decided: EmitPlan, taken: set[str]) -> list[str]:
    lines: list[str] = []
    entries = []
    for c in decided.constants:
        values = [v % T for v in c.values]
        if fits(f'{INDENT}"{c.name}": {int_tuple(values)},'):
            entries.append(f'"{c.name}": {int_tuple(values)}')
            continue
        target = _literal_name(f"{c.name}_values", taken)  # a long one gets its own literal
        lines += int_literal(target, values)
        entries.append(f'"{c.name}": {target}')
    return lines + bracketed("_CONSTANT_VALUES: dict[str, tuple[int, ...]] = {", entries, "}")


# --- the kernel code -----------------------------------------------------------------------


def _signature(name: str, program: Program, names: _Names) -> list[str]:
    params = [f"{p.name}: openfhe.{_ptype(p.kind)}" for p in program.params]
    signature = [f"{names.cc}: openfhe.CryptoContext", "/", "*", *params]
    # An input named l, O or I keeps its name (callers pass it by keyword): silence E741
    # on its own line.
    ambiguous = any(p.name in _AMBIGUOUS for p in program.params)
    head = bracketed(f"def {name}(", signature, ") -> openfhe.Ciphertext:", explode=ambiguous)
    return [
        f"{line}  # noqa: E741" if line.strip().split(":")[0] in _AMBIGUOUS else line
        for line in head
    ]


# The kernel code's docstrings, as in the runtime's placeholder kernel.
_EVALUATE_DOC = "The kernel's OpenFHE calls, one per Quill instruction, without kernel()'s checks."
_KERNEL_DOC = "The kernel on encrypted inputs: checks them (``check_inputs``), then ``evaluate``."


def kernel_code(decided: EmitPlan, names: _Names) -> str:
    """``evaluate`` (the OpenFHE calls) and ``kernel`` (checks, then ``evaluate``)."""
    program, cc = decided.program, names.cc
    body = [f'"""{_EVALUATE_DOC}"""']
    if decided.constants:
        body.append(f"{names.const} = _constants({cc})")
    if decided.hoisted:
        body.append(f"{names.order} = {cc}.GetCyclotomicOrder()  # hoisted rotations use it")
    precomputed: dict[str, str] = {}
    for ins in program.body:
        if ins.dest not in decided.live:
            body.append(f"# {ins.dest} is never used: not emitted")
            continue
        src = ins.args[0]
        if ins.opcode.rotates and src in decided.hoisted and src not in precomputed:
            precomputed[src] = names.new(f"{names.py[src]}_pre")
            body += call(f"{precomputed[src]} = {cc}.EvalFastRotationPrecompute(", [names.py[src]])
        body += _instr_lines(ins, names, decided, precomputed)
    body.append(f"return {names.py[program.result]}")
    arguments = [f"{p.name}={p.name}" for p in program.params]
    checked = [
        f'"""{_KERNEL_DOC}"""',
        *bracketed("check_inputs(", [cc, *arguments], ")", indent=INDENT),
        *bracketed("return evaluate(", [cc, *arguments], ")", indent=INDENT),
    ]
    evaluate = _signature("evaluate", program, names) + [INDENT + b for b in body]
    kernel = _signature("kernel", program, names) + [INDENT + b for b in checked]
    return "\n".join(evaluate) + "\n\n\n" + "\n".join(kernel)


def _ptype(kind: Kind) -> str:
    return "Ciphertext" if kind is Kind.CT else "Plaintext"


def _instr_lines(
    ins: Instr, names: _Names, decided: EmitPlan, precomputed: dict[str, str]
) -> list[str]:
    """The OpenFHE call for one Quill instruction."""
    args = [names.py[a] for a in ins.args]
    if ins.opcode.sums and ins.amount == 1:
        # A sum over a window of one slot is the value itself; OpenFHE's EvalSum would still
        # look up the rotation keys of a kernel that has none (and raise).
        return [f"{names.py[ins.dest]} = {args[0]}"]
    method = OPS[ins.opcode].openfhe
    if ins.amount is not None:  # the amount follows the operand (EvalRotate, EvalSum)
        args.append(str(ins.amount))
    if ins.opcode.rotates and ins.args[0] in precomputed:
        method = "EvalFastRotation"
        args += [names.order, precomputed[ins.args[0]]]
    return call(f"{names.py[ins.dest]} = {names.cc}.{method}(", args)
