"""Many independent instances of a kernel side by side in one ciphertext.

An emitted kernel is proven correct on SLOTS slots with cyclic rotation; the runtime makes
OpenFHE agree by tiling the SLOTS-slot vector across a BFV row of N/2 slots. A small kernel
(a dot product of 8, a 4x4 blur) then wastes almost the whole ciphertext. This module finds
how to pack many instances into one ciphertext instead, so that they never mix through the
kernel's rotations; :mod:`porcupine.backend.instances` is the emitted module's side (packing
instances into rows, reading their outputs back).

**The windows.** Take the program as emitted (``EmitPlan.program``: rotation amounts as
emitted, |k| < SLOTS). Walking it backwards from the result, a value's *needed positions*
are integers, not reduced mod anything: ``needed(result) = OUTPUT_SLOTS``; for
``v = rot(u, r)``, ``needed(u) ⊇ needed(v) + r``; for ``v = sum(u, k)`` (OpenFHE's
``EvalSum(ct, k)``, out[i] = sum_{j<k} in[i + j] cyclically within each row: checked on
OpenFHE 1.6.1, both rows, k = 2 .. N/2), ``needed(u) ⊇ needed(v) + [0, k)``; for an
elementwise op (add, sub, mul, neg, relin), ``needed(arg) ⊇ needed(v)``. The instance's
*window* ``[lo, hi)`` is the hull of its inputs' needed positions; the *span* ``[Lo, Hi)``
the hull of every value's.

**The layout.** Instance b of a row has its base at ``base_b = c + b*g``. Every input row
holds at ``base_b + p``, for p in ``[lo, hi)``, instance b's SLOTS-slot vector tiled: its
value at ``p mod SLOTS``. The stride g is at least ``hi - lo`` (the windows are disjoint, so
every instance's window can hold its own values) and a multiple of the *alignment* A, the
least common multiple of the periods of the kernel's non-uniform constants (1 without
any; A divides SLOTS); c is a multiple of A with ``c + Lo >= 0``, and the last instance
has ``base + Hi <= N/2``.

**Why it is exact.** Claim: for every value v and every s in needed(v), the row holds at
``base_b + s`` the single-instance (cyclic, SLOTS-slot) value of v at ``s mod SLOTS``. By
induction along the program. Inputs: by the filling (needed(input) lies in the window).
Constants: a uniform one is the same in all N slots; a mask is tiled with period SLOTS
across each row, so at ``q`` it is ``c[q mod SLOTS] = c[q mod A]``, and
``base_b ≡ 0 mod A`` gives ``c[s mod A] = c[(s mod SLOTS) mod A]``. Elementwise ops: slot by
slot. ``v = rot(u, r)`` at ``q = base_b + s``: OpenFHE reads u at ``(q + r) mod N/2``, and
``q + r = base_b + (s + r)`` with ``s + r`` in needed(u) lies in ``[0, N/2)`` (the span
stays in the row): no wrap, so it reads u's single value at ``(s + r) mod SLOTS``, which is
``rot(u, r)``'s at ``s mod SLOTS``. ``sum(u, k)`` likewise, term by term. Taking
``v = result`` and s in OUTPUT_SLOTS: the output at ``base_b + s`` is instance b's output at
s. Positions of one instance may be needed by its neighbour's intermediate values too; each
claim follows from the input rows alone, so both hold. Noise does not change: the noise
model (:mod:`quill.noise`) bounds plaintexts with every coefficient at +-(t-1)/2, whatever
the slots hold.

**The second row.** BFV's other N/2 slots form a second row that rotations and EvalSum
treat alike and never mix with the first (checked on OpenFHE). Constants fill both rows
alike (the runtime's ``_constants``: a uniform value in all N slots, a mask tiled across
each row), so instances fill both rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from porcupine.backend.planning import EmitPlan
from quill.ir import Program
from quill.ops import OPS
from quill.slots import T
from quill.transform import live_instructions


@dataclass(frozen=True)
class InstanceLayout:
    """Where independent instances of a kernel sit in one ciphertext (module docstring).

    Instance i of a ciphertext (0 <= i < ``per_ciphertext``) lives in row ``i // per_row``
    with its base at slot ``base + (i % per_row) * stride`` of that row; its inputs fill
    ``base_i + [window[0], window[1])`` and its output slot s is at ``base_i + s``.
    """

    stride: int  # g: a multiple of alignment, at least the window's width
    window: tuple[int, int]  # [lo, hi): input positions relative to an instance's base
    span: tuple[int, int]  # [Lo, Hi): every value's needed positions, relative to the base
    base: int  # c: the base of the first instance of a row
    alignment: int  # A: every base is a multiple of it (the masks' period)
    row_slots: int  # N/2
    per_row: int  # instances in one row
    rows: int  # 1, or 2 when the second row can be used too (no mask)

    @property
    def per_ciphertext(self) -> int:
        """Instances per ciphertext."""
        return self.per_row * self.rows

    def base_of(self, i: int) -> int:
        """The base slot of instance ``i`` of a ciphertext, in a vector of both rows."""
        if not 0 <= i < self.per_ciphertext:
            raise ValueError(f"instance {i} is not in 0..{self.per_ciphertext - 1}")
        row, b = divmod(i, self.per_row)
        return row * self.row_slots + self.base + b * self.stride


def needed_positions(program: Program, output_slots: Iterable[int]) -> dict[str, set[int]]:
    """For each value of ``program`` the result reads, the integer positions (relative to an
    instance's base) whose values the result at ``output_slots`` depends on.

    Raises ValueError for an op that moves slots other than a rotation or EvalSum.
    """
    need: dict[str, set[int]] = {program.result: set(output_slots)}
    for ins in reversed(live_instructions(program)):
        want = need.get(ins.dest, set())
        info = OPS[ins.opcode]
        if info.rotates:
            assert ins.amount is not None
            want = {s + ins.amount for s in want}
        elif info.sums:
            assert ins.amount is not None
            want = {s + j for s in want for j in range(ins.amount)}
        elif info.reads is not None:
            raise ValueError(f"{ins.opcode.value} moves slots in a way batching does not know")
        for a in ins.args:
            need.setdefault(a, set()).update(want)
    return need


def period(values: tuple[int, ...], slots: int) -> int:
    """The least period (a divisor of ``slots``) of a constant's values mod t as the runtime
    lays them out: repeated over ``slots`` slots, then tiled."""
    tiled = [values[i % len(values)] % T for i in range(slots)]
    for p in range(1, slots + 1):
        if slots % p == 0 and all(tiled[i] == tiled[i % p] for i in range(slots)):
            return p
    return slots  # unreachable: p = slots always matches


def _ceil_to(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple


def instance_layout(
    decided: EmitPlan, output_slots: Iterable[int] | None = None, *, packed: bool = False
) -> InstanceLayout | None:
    """How many instances of ``decided``'s kernel one ciphertext holds, and where.

    ``output_slots`` are the slots the spec constrains (``Layouts.output_slots``; all SLOTS
    slots if None, which is sound but may pack fewer). None when batching does not apply:
    ``packed`` (a kernel under a client packing reads its inputs from slots the packing
    chose, which :mod:`porcupine.backend.packed_io` gathers), or one instance's span does not
    fit a row of the plan's ring dimension.
    """
    if packed:
        return None
    slots = decided.slots
    wanted = range(slots) if output_slots is None else output_slots
    need = needed_positions(decided.program, wanted)
    inputs = [q for p in decided.program.params for q in need.get(p.name, ())]
    # Every instruction yields a ciphertext from a ciphertext operand, so the result always
    # reads some input.
    assert inputs, "the result reads no input"
    lo, hi = min(inputs), max(inputs) + 1
    everywhere = [q for positions in need.values() for q in positions]
    low, high = min(everywhere), max(everywhere) + 1
    periods = [period(c.values, slots) for c in decided.constants]
    alignment = math.lcm(1, *periods)
    stride = _ceil_to(hi - lo, alignment)
    base = _ceil_to(max(0, -low), alignment)
    row_slots = decided.param_set.ring_dim // 2
    room = row_slots - high - base
    if room < 0:
        return None
    return InstanceLayout(
        stride=stride,
        window=(lo, hi),
        span=(low, high),
        base=base,
        alignment=alignment,
        row_slots=row_slots,
        per_row=room // stride + 1,
        rows=2,
    )


def instance_constants(layout: InstanceLayout | None) -> list[str]:
    """Source lines of the emitted module's instance constants (after its kernel constants;
    :mod:`porcupine.backend.instances` reads them). All zero when ``layout`` is None: the
    module's instance functions then refuse with a message."""
    if layout is None:
        return [
            "# Instances per ciphertext (porcupine.backend.batching): none, this kernel is not",
            "# batched (a client packing, or one instance does not fit a row).",
            "INSTANCE_STRIDE = 0",
            "INSTANCE_WINDOW = (0, 0)",
            "INSTANCE_BASE = 0",
            "INSTANCE_ROWS = 0",
            "INSTANCES_PER_ROW = 0",
            "INSTANCES_PER_CIPHERTEXT = 0",
        ]
    lo, hi = layout.window
    return [
        "# Instances per ciphertext (porcupine.backend.batching): instance i sits in row",
        "# i // INSTANCES_PER_ROW with its base at INSTANCE_BASE + (i % INSTANCES_PER_ROW) *",
        "# INSTANCE_STRIDE; its inputs fill base + INSTANCE_WINDOW, tiled; output slot s is at",
        "# base + s.",
        f"INSTANCE_STRIDE = {layout.stride}",
        f"INSTANCE_WINDOW = ({lo}, {hi})",
        f"INSTANCE_BASE = {layout.base}",
        f"INSTANCE_ROWS = {layout.rows}",
        f"INSTANCES_PER_ROW = {layout.per_row}",
        f"INSTANCES_PER_CIPHERTEXT = {layout.per_ciphertext}",
    ]


def ciphertexts_needed(layout: InstanceLayout | None, instances: int) -> int:
    """Ciphertexts (per input) that ``instances`` instances take: one each without batching."""
    if layout is None:
        return instances
    return -(-instances // layout.per_ciphertext)
