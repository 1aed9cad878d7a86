"""Application-size kernels: synthesize on the spec's small default instance, lift the
kernel to the requested size, and prove the lifted kernel exact at that size.

A direct search over 4096-slot vectors is far beyond the solver, but the kernels it finds
on a 4x4 image or an 8-element vector are layout-generic:

* **images**: a rotation amount is a 2-D offset ``a*w + b`` (``a`` rows, ``b`` columns);
  decomposed on the small image and recomposed with the target width;
* **reductions**: a kernel ending in log2(n) rotate-and-add rounds that together add up all
  n slots (by n/2, ..., 1 in any order and sign, or any other complete set, e.g. 4, 2, 3 on
  8 slots) is a full reduction; at the target size it gets the rounds n/2, ..., 1. A sum
  over all n slots (``EvalSum``) becomes a sum over all slots of the target.

The lifted kernel is then verified exactly at the target size, like any other, so a
layout the rules do not fit is reported, never emitted.
"""

from __future__ import annotations

from dataclasses import dataclass

from quill.ir import Instr, Program
from quill.ops import Kind, Opcode
from quill.slots import normalize_amount
from quill.spec import Spec
from quill.transform import eliminate_dead_code


class LiftError(ValueError):
    """The small kernel has a shape the lifting rules do not cover."""


@dataclass(frozen=True)
class Offset2D:
    rows: int
    cols: int


def decompose(amount: int, width: int, n: int) -> Offset2D:
    """The smallest 2-D offset ``(a, b)`` with ``a*width + b == amount`` mod ``n``,
    preferring few columns (stencils reach at most a few pixels sideways)."""
    best: tuple[int, int, Offset2D] | None = None
    for rows in range(-(n // width), n // width + 1):
        cols = normalize_amount(amount - rows * width, n)
        if abs(cols) >= width:
            continue
        key = (abs(cols), abs(rows), Offset2D(rows, cols))
        if best is None or key[:2] < best[:2]:
            best = key
    if best is None:
        raise LiftError(f"rotation {amount} is no 2-D offset on a {width}-wide image")
    return best[2]


def lift(program: Program, small: Spec, target: Spec) -> Program:
    """``program`` (a kernel for ``small``) rewritten for ``target``: same spec, other
    sizes. Raises :class:`LiftError` when the kernel's shape does not generalize."""
    layouts = {d.layout.kind for d in small.inputs if d.kind is Kind.CT}
    if layouts == {"image"}:
        return _lift_image(program, small, target)
    if layouts <= {"vector"}:
        return _lift_reduction(program, small, target)
    raise LiftError(f"no lifting rule for inputs laid out as {sorted(layouts)}")


def _image_width(spec: Spec) -> int:
    widths = {d.layout.shape[1] for d in spec.inputs if d.layout.kind == "image"}
    if len(widths) != 1:
        raise LiftError(f"inputs of different widths {sorted(widths)}")
    return widths.pop()


def _lift_image(program: Program, small: Spec, target: Spec) -> Program:
    w0, w = _image_width(small), _image_width(target)
    body = []
    for ins in program.body:
        if ins.amount is not None:
            off = decompose(ins.amount, w0, small.n)
            amount = normalize_amount(off.rows * w + off.cols, target.n)
            ins = Instr(ins.dest, ins.opcode, ins.args, amount)
        body.append(ins)
    return Program(program.name, program.params, program.consts, tuple(body), program.result)


def _lift_reduction(program: Program, small: Spec, target: Spec) -> Program:
    """Replace the trailing rotate-and-add rounds by log2(n) rounds at the target size, and
    a sum over every slot by a sum over every slot of the target."""
    program = Program(
        program.name, program.params, program.consts,
        tuple(
            Instr(i.dest, i.opcode, i.args, target.n)
            if i.opcode.sums and i.amount == small.n
            else i
            for i in program.body
        ),
        program.result,
    )  # fmt: skip
    defs = {i.dest: i for i in program.body}
    rounds: list[int] = []
    chain: set[str] = set()  # the instructions of the trailing rounds
    value = program.result
    while (ins := defs.get(value)) is not None and ins.opcode.info.adds_ciphertexts:
        step = _rotate_and_add(ins, defs)
        if step is None:
            break
        chain.update(ins.args)
        chain.add(ins.dest)
        value, amount = step
        rounds.append(abs(normalize_amount(amount, small.n)))
    if not rounds:
        return program  # elementwise: nothing depends on the size
    if not _sums_every_slot(rounds, small.n):
        raise LiftError(f"rotations {rounds} are not a full rotate-and-add tree over {small.n}")
    chain.discard(value)
    body = [i for i in program.body if i.dest not in chain]
    taken = {i.dest for i in body} | {p.name for p in program.params}
    taken |= {c.name for c in program.consts}
    base = value
    for k in range(target.n.bit_length() - 2, -1, -1):
        rotated, summed = _fresh(f"{value}_r{1 << k}", taken), _fresh(f"{value}_s{1 << k}", taken)
        body.append(Instr(rotated, Opcode.ROT, (base,), 1 << k))
        body.append(Instr(summed, Opcode.ADD_CC, (base, rotated)))
        base = summed
    return eliminate_dead_code(
        Program(program.name, program.params, program.consts, tuple(body), base)
    )


def _sums_every_slot(rounds: list[int], n: int) -> bool:
    """Whether rotate-and-add rounds by ``rounds`` add up each of the n slots exactly once
    (their subset sums are all residues mod n): then the kernel is a full reduction, and
    its canonical form at any size is the tree of rounds by n/2, ..., 1."""
    offsets = {0}
    for r in rounds:
        offsets |= {(o + r) % n for o in offsets}
    return len(rounds) == n.bit_length() - 1 and len(offsets) == n


def _fresh(name: str, taken: set[str]) -> str:
    """``name``, or ``name`` with a numeric suffix, not in ``taken`` (which it joins)."""
    candidate, i = name, 1
    while candidate in taken:
        candidate, i = f"{name}_{i}", i + 1
    taken.add(candidate)
    return candidate


def _rotate_and_add(ins: Instr, defs: dict[str, Instr]) -> tuple[str, int] | None:
    """``(u, k)`` when ``ins`` is ``add(u, rot(u, k))`` in either operand order."""
    a, b = ins.args
    for plain, rotated in ((a, b), (b, a)):
        r = defs.get(rotated)
        if r is not None and r.opcode.rotates and r.args[0] == plain:
            assert r.amount is not None
            return plain, r.amount
    return None
