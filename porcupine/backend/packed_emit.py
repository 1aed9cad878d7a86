"""What a packed kernel's module adds to an emitted module: the packing as data, and the
application-side functions that use it (:mod:`porcupine.backend.packed_io`).

A kernel synthesized under a client packing (:class:`porcupine.layouts.packing.Packing`) takes the
packing's ciphertexts; its module still takes the spec's inputs and returns the spec's
output. The module's INPUTS, INPUT_LAYOUTS, OUTPUT_LAYOUT and OUTPUT_SLOTS describe the
spec's own inputs and output, in the spec's slots (SPEC_SLOTS of them), exactly as a natural
kernel's module does; the packing constants say what the kernel takes (CIPHERTEXTS, of
SLOTS slots), where each of their slots comes from (GATHER) and where each output element
lands (OUTPUT_GATHER). The runtime's ``check_inputs``, ``encode``, ``encrypt`` and
``unpack_output`` (the identity for a natural kernel) are replaced by
:mod:`~porcupine.backend.packed_io`'s.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from dataclasses import dataclass

from porcupine.backend.planning import SpecLike, check_signature, io_layouts
from porcupine.backend.pytext import INDENT, bracketed, fits, int_literal, int_tuple, wrap_comment
from porcupine.backend.sections import section
from porcupine.layouts.packing import Packing
from quill.ir import Program
from quill.ops import Kind

PACKED_IO_BEGIN = "# --- packed I/O"
"""The marker in :mod:`porcupine.backend.packed_io` after which its source is copied."""

REPLACED = ("check_inputs", "encode", "encrypt", "unpack_output")
"""The runtime's functions a packed kernel's module has :mod:`packed_io`'s versions of."""

Gather = tuple[str, str, tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True)
class PackedLayout:
    """A packing as its emitted module states it."""

    name: str
    spec_slots: int  # the spec's own slots, which INPUT_LAYOUTS and OUTPUT_LAYOUT index
    slots: int  # of each ciphertext the kernel takes
    ciphertexts: tuple[tuple[str, Kind], ...]
    # (ciphertext, input, its slots, the input's elements (spec slots) they hold)
    gather: tuple[Gather, ...]
    output: tuple[tuple[int, ...], tuple[int, ...]]  # (spec output slots, kernel slots)


def packed_layout(packing: Packing, spec: SpecLike, program: Program) -> PackedLayout:
    """``packing`` of ``spec`` as data, for ``program``. Raises ValueError unless the
    program takes exactly the packing's ciphertexts and the packing gathers from the
    spec's inputs and places every output slot that matters (its equality with the spec is
    :func:`porcupine.layouts.packing.check`'s to prove, before synthesis)."""
    check_signature(program, io_layouts(packing.spec).inputs)
    have = [(c.name, c.kind) for c in packing.ciphertexts]
    want = [(p.name, p.kind) for p in program.params]
    if sorted(have) != sorted(want):
        raise ValueError(f"packing {packing.name} makes {have}; kernel {program.name} takes {want}")
    kinds = {d.name: d.kind for d in spec.inputs}
    gather: list[Gather] = []
    for c in packing.ciphertexts:
        if len(c.slots) != packing.slots:
            raise ValueError(f"ciphertext {c.name} has {len(c.slots)} slots, not {packing.slots}")
        sources: dict[str, tuple[list[int], list[int]]] = {}
        for slot, element in enumerate(c.slots):
            if element is None:
                continue
            name, index = element
            if kinds.get(name) is not c.kind or not 0 <= index < spec.n:
                raise ValueError(
                    f"ciphertext {c.name} ({c.kind}) slot {slot} holds element {index} of "
                    f"{name!r}, which is no {c.kind} input element of spec {spec.name}"
                )
            slots, elements = sources.setdefault(name, ([], []))
            slots.append(slot)
            elements.append(index)
        gather += [(c.name, n, tuple(s), tuple(e)) for n, (s, e) in sources.items()]
    placed = dict(packing.output)
    if sorted(placed) != sorted(spec.output_slots()) or not all(
        0 <= s < packing.slots for s in placed.values()
    ):
        raise ValueError(f"packing {packing.name} does not place exactly the output slots")
    output = tuple(sorted(placed)), tuple(placed[o] for o in sorted(placed))
    return PackedLayout(packing.name, spec.n, packing.slots, tuple(have), tuple(gather), output)


def packing_constants(packed: PackedLayout, literal_name: Callable[[str], str]) -> list[str]:
    """The packing constants of a packed kernel's module (``literal_name``: a fresh
    module-level name for a long literal)."""
    lines = [
        *wrap_comment(
            f"The client packing ({packed.name}): the kernel takes CIPHERTEXTS of SLOTS slots "
            "that encrypt() gathers from the inputs (GATHER: ciphertext, input, its slots, "
            "the input's elements by their slot in INPUT_LAYOUTS); decode() reads each output "
            "element from the slot OUTPUT_GATHER names (output slots in OUTPUT_LAYOUT, kernel "
            "slots)."
        ),
        f'PACKING = "{packed.name}"',
        f"SPEC_SLOTS = {packed.spec_slots}",
        *bracketed(
            "CIPHERTEXTS: dict[str, str] = {",
            [f'"{name}": "{kind}"' for name, kind in packed.ciphertexts],
            "}",
        ),
    ]
    entries = []
    for target, source, slots, elements in packed.gather:
        entry = f'("{target}", "{source}", {int_tuple(slots)}, {int_tuple(elements)})'
        if not fits(f"{INDENT}{entry},"):
            names = literal_name(f"{target}_{source}_gather"), literal_name(f"{target}_{source}")
            lines += int_literal(names[0], slots) + int_literal(names[1], elements)
            entry = f'("{target}", "{source}", {names[0]}, {names[1]})'
        entries.append(entry)
    lines += bracketed(
        "GATHER: tuple[tuple[str, str, tuple[int, ...], tuple[int, ...]], ...] = (",
        entries,
        ")",
        explode=True,  # a one-element tuple needs its trailing comma
    )
    parts = [int_tuple(part) for part in packed.output]
    if not all(fits(f"{INDENT}{p},") for p in parts):
        parts = [literal_name("output_gather_spec"), literal_name("output_gather_kernel")]
        lines += int_literal(parts[0], packed.output[0]) + int_literal(parts[1], packed.output[1])
    lines += bracketed(
        "OUTPUT_GATHER: tuple[tuple[int, ...], tuple[int, ...]] = (", parts, ")", explode=True
    )
    return lines


@functools.cache
def packed_middle(middle: str) -> str:
    """The runtime's text between the constants and the kernel code (``middle``, ending with
    the kernel-code marker line) with the :data:`REPLACED` functions taken out and
    :mod:`packed_io`'s functions put before the marker."""
    lines = middle.splitlines()
    drop: set[int] = set()
    for node in ast.parse(middle).body:
        if isinstance(node, ast.FunctionDef) and node.name in REPLACED:
            assert node.end_lineno is not None and not node.decorator_list
            end = node.end_lineno
            while end < len(lines) and not lines[end].strip():  # and the blank lines after it
                end += 1
            drop.update(range(node.lineno - 1, end))
    kept = [line for i, line in enumerate(lines) if i not in drop]
    packed_io = section("packed_io.py", PACKED_IO_BEGIN).code
    return "\n".join(kept[:-1]) + "\n" + packed_io + "\n\n\n" + kept[-1]
