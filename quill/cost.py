"""The cost model: one table of per-op latencies per parameter set.

A program's cost is the sum of its instructions' latencies on the parameter set it runs
with (:mod:`quill.params`; :func:`quill.noise.parameters` picks the cheapest safe one), so a
program that needs a bigger ring or more towers pays for it on every instruction. Rotations
of one ciphertext by several amounts may share one hoisting precompute (OpenFHE's
``EvalFastRotationPrecompute`` + ``EvalFastRotation``); a group is priced at whichever is
cheaper, as the backend will emit it.

What the synthesizer minimizes (:func:`objective`) builds on this latency; see
:class:`Objective`.

The default table is the package's own data, ``quill/data/costs.json``, with its provenance
(machine, library versions, date); ``porcupine calibrate`` measures every parameter set on
this machine and writes a table in the same format that :func:`load_table` reads. Programs
are priced as the backend emits them: relinearizations placed lazily (:mod:`quill.relin`),
dead code dropped, rotations of one ciphertext hoisted where that is cheaper.
"""

from __future__ import annotations

import functools
import json
import math
import reprlib
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from quill.ir import Program
from quill.ops import OPS, Opcode
from quill.params import BY_NAME, ParameterSet, at_ring
from quill.relin import place_relinearizations
from quill.stats import counts
from quill.transform import live_instructions

KEYS = (
    "add",
    "add_pt",
    "mul_pt",
    "mul_cc",
    "relin",
    "rotate",
    "rotate_precompute",
    "rotate_hoisted",
    "sum4",
    "sum2",
    "rotation_keygen",
    "encrypt",
    "decrypt",
)
"""Rows of a latency table. The op table (``quill.ops``) names most as cost keys; ``sum4``
and ``sum2`` price ``EvalSum`` by its rounds (:func:`op_us`); ``encrypt`` and ``decrypt``
(one full ciphertext, the client's side) price data of many ciphertexts, for the choice of
an application's tile (:mod:`porcupine.app_plan`)."""


class Objective(str, Enum):
    """What "cheapest" means to the synthesizer.

    ``INSTRUCTIONS`` (the default): fewest key switches (rotations and relinearizations,
    the instructions that dominate latency and add key-switching noise), then fewest
    instructions. This is the measure HE kernels are usually compared by, and the one the
    Porcupine paper's kernels are minimal in. Latency is not part of it: among kernels of
    equal counts the emitter still hoists where that pays.

    ``LATENCY``: the lowest estimated latency. It can prefer more instructions: rotating one
    ciphertext by 1, w and w + 1 (three rotations sharing one hoisting precompute) is faster
    than the published box blur's two dependent rotations, at the price of one more
    rotation key for the client to generate and upload.

    Under both, rotation keys break ties: among kernels of the optimal rank the search
    looks for fewer keys, within a short budget (a client generates and uploads every key).
    """

    INSTRUCTIONS = "instructions"
    LATENCY = "latency"


Pricing = ParameterSet | int
"""Where a program is priced: a parameter set, or (for callers that predate parameter sets)
a ring dimension, which stands for :func:`quill.params.at_ring`."""


@dataclass(frozen=True)
class CostTable:
    """Latencies in milliseconds, per parameter set name, per :data:`KEYS` row."""

    latency_ms: dict[str, dict[str, float]]
    source: str

    def at(self, where: Pricing) -> dict[str, float]:
        """The row of a parameter set; KeyError naming the set when the table lacks it."""
        param_set = at_ring(where) if isinstance(where, int) else where
        if param_set.name not in self.latency_ms:
            raise KeyError(
                f"the cost table ({self.source}) has no row for parameter set "
                f"{param_set.name}: measure it with porcupine calibrate"
            )
        return self.latency_ms[param_set.name]


MIN_MS = 0.001
"""The smallest latency a table may give: one microsecond, the unit costs are summed in
(:func:`row_us`); less would price an instruction at nothing."""

MAX_MS = 1e6
"""The largest latency a table may give: 1000 s for one instruction is a typo, and larger
values would overflow the sums (a 1e307 ms entry did)."""


def check_rows(rows: object, *, complete: bool = True) -> dict[str, dict[str, float]]:
    """``rows`` (a table's ``latency_ms``) as latencies, or a ValueError saying what is wrong:
    a row for every parameter set of :mod:`quill.params` (some of them, unless
    ``complete``) and no other key, every row all :data:`KEYS` as milliseconds from
    :data:`MIN_MS` to :data:`MAX_MS`."""
    if not isinstance(rows, dict) or not rows:
        raise ValueError("'latency_ms' must map parameter set names to rows of latencies")
    table: dict[str, dict[str, float]] = {}
    for name, row in rows.items():
        where = f"latency_ms[{reprlib.repr(name)}]"
        if name not in BY_NAME:
            raise ValueError(
                f"{where} is not a parameter set of quill.params (a table keyed by ring "
                "dimension predates them)"
            )
        if not isinstance(row, dict):
            raise ValueError(f"{where} must be an object of latencies")
        missing = [k for k in KEYS if k not in row]
        if missing:
            raise ValueError(f"{where} lacks {', '.join(missing)}")
        unknown = sorted(set(row) - set(KEYS))
        if unknown:
            listed = ", ".join(reprlib.repr(k) for k in unknown)
            raise ValueError(f"{where} has unknown rows {listed} (rows: {', '.join(KEYS)})")
        for key in KEYS:
            value = row[key]
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not numeric or not math.isfinite(value) or value <= 0:
                shown = reprlib.repr(value)
                raise ValueError(f"{where}[{key!r}] is {shown}: must be a positive number of ms")
            if not MIN_MS <= value <= MAX_MS:
                raise ValueError(
                    f"{where}[{key!r}] is {value:g} ms: a latency must lie between {MIN_MS:g} "
                    f"and {MAX_MS:g} ms"
                )
        table[name] = {k: float(row[k]) for k in KEYS}
    absent = [s for s in BY_NAME if s not in table]
    if absent and complete:
        raise ValueError(
            f"'latency_ms' has no row for parameter set {', '.join(absent)}: a table prices "
            "every set (the compiler would silently never choose a missing one)"
        )
    return table


def load_table(path: str | Path, *, complete: bool = True) -> CostTable:
    """Read a table written by ``porcupine calibrate`` (or the package's own); ValueError
    when it is not one (:func:`check_rows`; a table of some sets only with ``complete``
    false, as ``calibrate(sets=...)`` measures)."""
    data = json.loads(Path(path).read_text())
    rows = check_rows(data.get("latency_ms"), complete=complete)
    return CostTable(rows, source=str(data.get("source", path)))


DEFAULT_TABLE_PATH = Path(__file__).with_name("data") / "costs.json"
DEFAULT_TABLE = load_table(DEFAULT_TABLE_PATH)
"""The measured table shipped with the package (see the file for its provenance)."""


def save_table(table: CostTable, path: str | Path, **metadata: object) -> None:
    """Write ``table`` as JSON (``metadata`` records the machine and library versions)."""
    out = {"source": table.source, **metadata, "latency_ms": table.latency_ms}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=2) + "\n")


def row_us(table: CostTable, where: Pricing) -> dict[str, int]:
    """The latency row of a parameter set in whole microseconds: every cost is summed in
    these units, here and in the synthesizer's solver encoding, so both agree exactly."""
    return {k: round(v * 1000) for k, v in table.at(where).items()}


def op_us(opcode: Opcode, amount: int | None, row: dict[str, int]) -> int:
    """The cost of one instruction other than a rotation (those are priced by group).

    ``EvalSum(ct, k)`` folds by four (one hoisted precompute and three rotations a round),
    then by two once more when log2 k is odd: its cost is its rounds'."""
    info = OPS[opcode]
    if not info.sums:
        return row[info.cost]
    assert amount is not None
    log = amount.bit_length() - 1
    return (log // 2) * row["sum4"] + (log % 2) * row["sum2"]


def sum_switches(amount: int) -> int:
    """Key switches (rotations) inside ``EvalSum(ct, amount)``."""
    return len(OPS[Opcode.SUM].rotation_keys(amount))


def rotation_group_us(count: int, row: dict[str, int]) -> int:
    """The cost of ``count`` distinct rotations of one ciphertext: plain or hoisted."""
    if count == 0:
        return 0
    return min(count * row["rotate"], row["rotate_precompute"] + count * row["rotate_hoisted"])


def should_hoist(count: int, row: dict[str, int]) -> bool:
    """Whether the backend should hoist ``count`` rotations of one ciphertext."""
    return count > 1 and rotation_group_us(count, row) < count * row["rotate"]


@dataclass(frozen=True)
class Measures:
    """What the objectives compare, for a program as the backend emits it."""

    key_switches: int  # distinct rotations and relinearizations
    instructions: int  # everything but relinearizations (the paper's count)
    latency_us: int  # estimated, hoisting priced
    keys: int  # rotation keys the client generates

    @property
    def latency_ms(self) -> float:
        return self.latency_us / 1000


def measures(program: Program, where: Pricing, table: CostTable = DEFAULT_TABLE) -> Measures:
    """The :class:`Measures` of ``program`` on a parameter set."""
    row = row_us(table, where)
    shape = _shape(program)
    latency = sum(count * op_us(opcode, amount, row) for (opcode, amount), count in shape.ops)
    latency += sum(rotation_group_us(c, row) for c in shape.rotation_groups)
    return Measures(shape.key_switches, shape.instructions, latency, shape.keys)


@dataclass(frozen=True)
class _Shape:
    """What pricing a program needs that no parameter set changes (computed once per
    program: the parameter choice prices a program on every set)."""

    ops: tuple[tuple[tuple[Opcode, int | None], int], ...]  # live non-rotations, counted
    rotation_groups: tuple[int, ...]  # distinct rotations of each rotated ciphertext
    key_switches: int
    instructions: int
    keys: int


@functools.lru_cache(maxsize=1024)
def _shape(program: Program) -> _Shape:
    live = live_instructions(place_relinearizations(program))
    rotations = {(i.args[0], i.amount) for i in live if i.opcode.rotates}
    relins = sum(1 for i in live if OPS[i.opcode].relinearizes)
    # An EvalSum counts as the rotations and additions it performs, as the paper would.
    sums = [sum_switches(i.amount) for i in live if i.opcode.sums and i.amount]
    others = sum(1 for i in live if not i.opcode.rotates) - relins - len(sums)
    return _Shape(
        ops=tuple(Counter((i.opcode, i.amount) for i in live if not i.opcode.rotates).items()),
        rotation_groups=tuple(Counter(src for src, _ in rotations).values()),
        key_switches=len(rotations) + relins + sum(sums),
        instructions=others + len(rotations) + 2 * sum(sums),
        keys=len(counts(program).rotation_keys),
    )


def rank(m: Measures, goal: Objective) -> tuple[int, ...]:
    """The tuple the synthesizer minimizes, lexicographically (see :class:`Objective`)."""
    if goal is Objective.INSTRUCTIONS:
        return (m.key_switches, m.instructions)
    return (m.latency_us,)


def objective(
    program: Program,
    where: Pricing,
    table: CostTable = DEFAULT_TABLE,
    goal: Objective = Objective.INSTRUCTIONS,
) -> tuple[int, ...]:
    """What the synthesizer minimizes for ``program``: :func:`rank` of its measures."""
    return rank(measures(program, where, table), goal)


def program_cost(program: Program, where: Pricing, table: CostTable = DEFAULT_TABLE) -> float:
    """Estimated latency of ``program`` in milliseconds on a parameter set, as emitted."""
    return measures(program, where, table).latency_ms


def keygen_cost(program: Program, where: Pricing, table: CostTable = DEFAULT_TABLE) -> float:
    """Milliseconds to generate the rotation keys ``program`` needs."""
    return measures(program, where, table).keys * table.at(where)["rotation_keygen"]
