"""The cost model: one table of per-op latencies per ring dimension.

A program's cost is the sum of its instructions' latencies at the ring dimension its noise
requires (:func:`quill.noise.parameters`), so a program that needs a bigger ring pays for
it on every instruction. Rotations of one ciphertext by several amounts may share one
hoisting precompute (OpenFHE's ``EvalFastRotationPrecompute`` + ``EvalFastRotation``); a
group is priced at whichever is cheaper, as the backend will emit it.

What the synthesizer minimizes (:func:`objective`) builds on this latency; see
:class:`Objective`.

The default table holds the medians in ``shared/reference/openfhe-bfv.md`` (one thread,
20 repetitions); ``porcupine calibrate`` measures this machine and writes a JSON table that
:func:`load_table` reads.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from quill.ir import Program
from quill.ops import OPS, Opcode

KEYS = (
    "add",
    "add_pt",
    "mul_pt",
    "mul_cc",
    "rotate",
    "rotate_precompute",
    "rotate_hoisted",
    "rotation_keygen",
)
"""Rows of a latency table; ``quill.ops`` names the first five as op cost keys."""


class Objective(str, Enum):
    """What "cheapest" means to the synthesizer.

    ``INSTRUCTIONS`` (the default): fewest key switches (rotations and ct*ct
    relinearizations, the instructions that dominate latency and add key-switching noise),
    then fewest instructions, then the lowest estimated latency (hoisting priced), then the
    fewest rotation keys. This is the measure HE kernels are usually compared by, and the
    one the Porcupine paper's kernels are minimal in.

    ``LATENCY``: the lowest estimated latency, then the fewest rotation keys. It can prefer
    more instructions: rotating one ciphertext by 1, w and w + 1 (three rotations sharing one
    hoisting precompute) is faster than the published box blur's two dependent rotations,
    at the price of one more rotation key for the client to generate and upload.
    """

    INSTRUCTIONS = "instructions"
    LATENCY = "latency"


KEY_SWITCH_WEIGHT_MS = 1_000_000.0
INSTRUCTION_WEIGHT_MS = 10_000.0
"""Under ``INSTRUCTIONS`` these weights exceed any kernel's latency (and a key switch any
instruction count), so the weighted sum orders programs lexicographically."""

KEY_TIE_BREAK_MS = 0.001
"""Each rotation key adds this much: it only breaks ties between equally fast programs."""


@dataclass(frozen=True)
class CostTable:
    """Latencies in milliseconds, per ring dimension, per :data:`KEYS` row."""

    latency_ms: dict[int, dict[str, float]]
    source: str

    def at(self, ring_dim: int) -> dict[str, float]:
        """The row set for ``ring_dim``, scaling the nearest measured one if it is missing.

        Per-op latency grows a little faster than N (an NTT is N log N), so doubling N is
        priced at 2.2x per doubling, as measured between 8192 and 16384 (3-4x per doubling
        there is the extra RNS limbs a deeper circuit adds, which the table rows carry).
        """
        if ring_dim in self.latency_ms:
            return self.latency_ms[ring_dim]
        near = min(self.latency_ms, key=lambda n: abs(n.bit_length() - ring_dim.bit_length()))
        factor = 2.2 ** (ring_dim.bit_length() - near.bit_length())
        return {k: v * factor for k, v in self.latency_ms[near].items()}


DEFAULT_TABLE = CostTable(
    latency_ms={
        8192: {
            "add": 0.053,
            "add_pt": 0.61,
            "mul_pt": 0.10,
            "mul_cc": 8.1,
            "rotate": 1.70,
            "rotate_precompute": 1.32,
            "rotate_hoisted": 0.42,
            "rotation_keygen": 4.5,
        },
        # openfhe-bfv.md measured add, rotate and ct*ct at N = 16384 (depth 4); the other
        # rows take the median ratio of those three (3.6x).
        16384: {
            "add": 0.19,
            "add_pt": 0.61 * 3.6,
            "mul_pt": 0.10 * 3.6,
            "mul_cc": 25.3,
            "rotate": 6.1,
            "rotate_precompute": 1.32 * 3.6,
            "rotate_hoisted": 0.42 * 3.6,
            "rotation_keygen": 4.5 * 3.6,
        },
    },
    source="shared/reference/openfhe-bfv.md (N = 8192 depth 2; N = 16384 depth 4)",
)


def load_table(path: str | Path) -> CostTable:
    """Read a table written by ``porcupine calibrate``."""
    data = json.loads(Path(path).read_text())
    table = {int(n): {k: float(row[k]) for k in KEYS} for n, row in data["latency_ms"].items()}
    return CostTable(table, source=str(data.get("source", path)))


def save_table(table: CostTable, path: str | Path, **metadata: object) -> None:
    """Write ``table`` as JSON (``metadata`` records the machine and library versions)."""
    out = {
        "source": table.source,
        **metadata,
        "latency_ms": {str(n): row for n, row in sorted(table.latency_ms.items())},
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=2) + "\n")


def rotation_group_cost(count: int, row: dict[str, float]) -> float:
    """The cost of ``count`` distinct rotations of one ciphertext: plain or hoisted."""
    if count == 0:
        return 0.0
    plain = count * row["rotate"]
    hoisted = row["rotate_precompute"] + count * row["rotate_hoisted"]
    return min(plain, hoisted)


def should_hoist(count: int, row: dict[str, float]) -> bool:
    """Whether the backend should hoist ``count`` rotations of one ciphertext."""
    return count > 1 and rotation_group_cost(count, row) < count * row["rotate"]


def program_cost(program: Program, ring_dim: int, table: CostTable = DEFAULT_TABLE) -> float:
    """Estimated latency of ``program`` in milliseconds at ``ring_dim``."""
    row = table.at(ring_dim)
    total = 0.0
    groups: defaultdict[str, set[int]] = defaultdict(set)
    for ins in program.body:
        if ins.opcode is Opcode.ROT:
            assert ins.amount is not None
            groups[ins.args[0]].add(ins.amount)
        else:
            total += row[OPS[ins.opcode].cost]
    # Repeated identical rotations would be common subexpressions; count each once.
    repeats = Counter((i.args[0], i.amount) for i in program.body if i.opcode is Opcode.ROT)
    total += sum(row["rotate"] * (c - 1) for c in repeats.values())
    return total + sum(rotation_group_cost(len(g), row) for g in groups.values())


def keygen_cost(program: Program, ring_dim: int, table: CostTable = DEFAULT_TABLE) -> float:
    """Milliseconds to generate the rotation keys ``program`` needs."""
    return len(program.rotation_amounts()) * table.at(ring_dim)["rotation_keygen"]


def key_switches(program: Program) -> int:
    """Rotations (each distinct one) and ct*ct multiplies (each relinearizes)."""
    rotations = {(i.args[0], i.amount) for i in program.body if i.opcode is Opcode.ROT}
    return len(rotations) + program.ct_ct_mults


def objective(
    program: Program,
    ring_dim: int,
    table: CostTable = DEFAULT_TABLE,
    goal: Objective = Objective.INSTRUCTIONS,
) -> float:
    """The value the synthesizer minimizes for ``program`` (see :class:`Objective`)."""
    value = program_cost(program, ring_dim, table)
    value += KEY_TIE_BREAK_MS * len(program.rotation_amounts())
    if goal is Objective.INSTRUCTIONS:
        value += KEY_SWITCH_WEIGHT_MS * key_switches(program)
        value += INSTRUCTION_WEIGHT_MS * len(program.body)
    return value
