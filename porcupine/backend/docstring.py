"""The docstring of an emitted kernel module: what it computes, costs and needs, and how
to call it."""

from __future__ import annotations

from porcupine.backend.packed_emit import PackedLayout
from porcupine.backend.planning import EmitPlan, IOLayout, Layouts, SpecLike
from porcupine.backend.pytext import INDENT, LINE, bracketed, call, literal_block, wrap_prose
from quill.ir import Program
from quill.noise import MARGIN_BITS
from quill.ops import Kind
from quill.printer import format_program
from quill.slots import T


def _describe(io: IOLayout) -> str:
    if io.layout_kind == "scalar":
        return "scalar"
    return f"{io.layout_kind} {' x '.join(str(d) for d in io.shape)}"


def _input(io: IOLayout) -> str:
    kind = "ciphertext" if io.kind is Kind.CT else "plaintext"
    if io.bits:
        values = ", bits"
    elif io.bounds is not None:
        values = f", values in {io.bounds[0]}..{io.bounds[1]}"
    else:
        values = ""
    return f"{io.name} ({kind} {_describe(io)}{values})"


def spec_name(spec: SpecLike, program: Program) -> str:
    """The spec's name, or the kernel's when the spec has none."""
    name = getattr(spec, "name", None)
    return str(name) if name else program.name


def module_docstring(
    spec: SpecLike, layouts: Layouts, decided: EmitPlan, packed: PackedLayout | None = None
) -> str:
    """The emitted module's docstring, closing quotes included (``packed``: the kernel's
    client packing, for a packed kernel)."""
    p, program = decided.params, decided.program
    hoisted = (
        "rotations of " + ", ".join(sorted(decided.hoisted)) + " share one precompute"
        " (EvalFastRotationPrecompute + EvalFastRotation)"
        if decided.hoisted
        else "none"
    )
    s = decided.param_set
    facts = {
        "Spec": f"{spec_name(spec, program)}, {spec.n} slots",
        "Inputs": ", ".join(_input(io) for io in layouts.inputs),
        "Output": f"{_describe(layouts.output)}; {len(layouts.output_slots)} of {spec.n} "
        "slots matter",
        "Cost": f"{decided.cost_ms:.2f} ms estimated (quill.cost.program_cost on parameter set "
        f"{s.name}; table: {decided.table.source})",
        "Depth": f"ct*ct depth {p.ct_ct_depth}",
        "BFV": f"t = {T}, parameter set {s.describe()} (quill.noise.parameters); contexts "
        f"that differ from it, or below {decided.security}, are refused",
        "Noise": f"predicted {p.noise_bits:.1f} bits, {p.margin_bits:.1f} bits below the "
        f"{s.capacity_bits:.1f} at which decryption fails (log2 Q - log2 t - 1); "
        f"quill.noise requires a margin of {MARGIN_BITS:.0f}",
        "Hoisting": hoisted,
    }
    if packed is not None:
        names = ", ".join(name for name, _ in packed.ciphertexts)
        facts["Packing"] = (
            f"{packed.name}: the kernel takes {names} ({packed.slots} slots each), which "
            "encrypt() gathers from the inputs; decode() returns the output in its natural "
            "shape, each element read from the slot the packing put it in"
        )
    lines = [
        f'"""{program.name}: an OpenFHE BFV kernel emitted by Porcupine.',
        "",
        *(line for key, text in facts.items() for line in wrap_prose(f"{key}: {text}.")),
        "",
        "Quill program (relinearizations placed)::",
        "",
        *literal_block(format_program(program).rstrip("\n")),
        "",
        "Usage::",
        "",
        *(_usage(layouts) if packed is None else _packed_usage(layouts)),
        '"""',
    ]
    return "\n".join(line.rstrip() for line in lines)


def _shape_hint(io: IOLayout) -> str:
    if io.layout_kind == "scalar":
        return "an int"
    return f"shape {io.shape}"


def _usage(layouts: Layouts) -> list[str]:
    """Example calls for the docstring, indented as a literal block (so 4 columns less)."""
    lines = ["cc, keys = make_context()"]
    for io in layouts.inputs:
        make = "encrypt(" if io.kind is Kind.CT else "encode("
        args = ["cc", "keys"] if io.kind is Kind.CT else ["cc"]
        statement = call(f"{io.name} = {make}", [*args, f'"{io.name}"', f"{io.name}_values"])
        hint = f"{statement[-1]}  # {_shape_hint(io)}"
        lines += [*statement[:-1], hint] if len(hint) <= LINE - len(INDENT) else statement
    args = [f"{io.name}={io.name}" for io in layouts.inputs]
    lines += bracketed("out = decode(cc, keys, kernel(cc, ", args, "))", indent=INDENT)
    return [INDENT + line for line in lines]


def _packed_usage(layouts: Layouts) -> list[str]:
    """:func:`_usage` for a packed kernel: ``encrypt`` takes every input at once and gives
    the kernel's arguments."""
    values = [f"{io.name}={io.name}_values" for io in layouts.inputs]
    lines = ["cc, keys = make_context()"]
    lines += bracketed("args = encrypt(", ["cc", "keys", *values], ")", indent=INDENT)
    lines += [f"# {io.name}: {_shape_hint(io)}" for io in layouts.inputs]
    lines.append("out = decode(cc, keys, kernel(cc, **args))")
    return [INDENT + line for line in lines]
