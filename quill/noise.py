"""The noise model, and the parameter set a program runs with.

BFV has no noise-budget API in OpenFHE, so the model is empirical, per parameter set
(:mod:`quill.params`): the noise of every ciphertext a program computes, as log2 |e| in
bits, where e is the largest coefficient of its noise polynomial. Decryption is correct
while log2 |e| < log2 Q - log2 t - 1 (the set's ``capacity_bits``). Every rule lives in
:data:`GROWTH`, keyed by the ``noise`` column of the op table (:mod:`quill.ops`):

* fresh encryption: a constant per set;
* add, sub (also of three-element products): the noises add up, log2(2^a + 2^b), which
  is the worst case (measured sums grow by about half that, in quadrature); negation and
  a plaintext addend leave the noise as it is (measured: within 0.1 bit);
* ct*pt: + ``mul_pt`` bits (the plaintext polynomial's coefficients, up to t/2, times N);
  by a constant that is one value c in every slot (:func:`uniform_constants`), + log2 of
  c mod t plus :data:`CONST_MUL_BITS`: the backend packs such a constant into all N slots,
  so its plaintext polynomial is the constant c mod t itself (OpenFHE lifts it to Q
  uncentred, in [0, t): -1 grows the noise by 16 bits, measured);
* ct*ct: + ``mul_cc`` bits over the sum of both operands' noise;
* a key switch (rotation, relinearization, each rotation inside EvalSum) adds one
  independent term of ``key_switch`` bits: about the digit size (or the tower size, with one
  digit per tower) plus 7.5 bits. A rotation before a multiply is multiplied with the rest.

Each constant is an upper bound of what ``eval/noise_probe.py --calibrate`` measures exactly
(raw decryption of OpenFHE's ciphertexts) with worst-case inputs, whose plaintext
polynomials have every coefficient at +-(t-1)/2. Since every rule is monotone, the bound
carries through a program. The model is validated by encrypted probes at the edge of every
set: the longest chains of each noisy pattern it accepts decrypt correctly, with noise
never above the prediction (``eval/noise_probe.py``, and ``tests/test_noise_probe.py`` at
the small sets).

A program is accepted on a set when its noisiest value stays :data:`MARGIN_BITS` below the
capacity; :func:`parameters` picks the cheapest accepted set by the cost model.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from quill.cost import DEFAULT_TABLE, CostTable, measures
from quill.ir import Instr, Param, Program
from quill.ops import OPS, Kind, Opcode
from quill.params import SETS, NoiseConstants, ParameterSet
from quill.relin import place_relinearizations
from quill.slots import T
from quill.stats import ct_ct_depth
from quill.transform import live_values

__all__ = [
    "CONST_MUL_BITS",
    "GROWTH",
    "LOG2_Q",
    "MARGIN_BITS",
    "MAX_CT_CT_DEPTH",
    "RING_DIM",
    "NoiseBudgetExceeded",
    "Parameters",
    "accepts",
    "assess",
    "ct_ct_depth",
    "for_depth",
    "noise_bits",
    "parameters",
    "reference_program",
    "shared_parameters",
    "slots_needed",
    "uniform_constants",
]

MARGIN_BITS = 5.0
"""A program is accepted on a set only if its predicted noise stays this many bits below the
set's capacity: the noise may be 32 times the model's bound before a decryption fails. The
model already bounds every measurement from above; this covers what the probes cannot
sample (other keys, other inputs)."""

LOG2_Q: dict[int, int] = {1: 120, 2: 180, 3: 180, 4: 240, 5: 240, 6: 300}
"""log2 Q OpenFHE picks by itself for a multiplicative depth (t = 65537, 128-bit classic)."""

RING_DIM: dict[int, int] = {1: 8192, 2: 8192, 3: 8192, 4: 16384, 5: 16384, 6: 16384}
"""The ring dimension OpenFHE picks by itself for a multiplicative depth."""

CONST_MUL_BITS = 0.5
"""What a ct*pt multiply by a uniform constant c adds over log2 (c mod t), on every set.
Measured (``eval/noise_probe.py --calibrate``, raw decryption, worst-case operands: fresh,
rotated, multiplied; c from 2 to t - 1): the growth is log2 (c mod t) within 0.05 bit on
every set, since the plaintext polynomial is c mod t itself (the backend packs a uniform
constant into all N slots: packed into one row only, 16 grew the noise by 11 bits)."""


def lse(bits: Sequence[float]) -> float:
    """log2 of the sum of 2^b: the bound on a sum of noises of ``bits`` bits each."""
    top = max(bits)
    return top + math.log2(sum([2.0 ** (b - top) for b in bits]))  # a list: the hot path


def _window_sum(c: NoiseConstants, a: float, k: int) -> float:
    """EvalSum(ct, k): rounds of three rotations added to their input (radix 4), then one
    of a single rotation when log2 k is odd (:func:`quill.ops.sum_keys`)."""
    log = k.bit_length() - 1
    for _ in range(log // 2):
        rotated = lse([a, c.key_switch])
        a = lse([a, rotated, rotated, rotated])
    if log % 2:
        a = lse([a, lse([a, c.key_switch])])
    return a


Growth = Callable[[NoiseConstants, list[float], int | None], float]

GROWTH: dict[str, Growth] = {
    "none": lambda c, a, k: a[0],
    "add": lambda c, a, k: lse(a),
    "mul_pt": lambda c, a, k: a[0] + c.mul_pt,
    "mul_const": lambda c, a, k: a[0] + math.log2(max(k or 1, 1)) + CONST_MUL_BITS,
    "mul_cc": lambda c, a, k: lse(a) + c.mul_cc,
    "relin": lambda c, a, k: lse([a[0], c.key_switch]),
    "rotate": lambda c, a, k: lse([a[0], c.key_switch]),
    "sum": lambda c, a, k: _window_sum(c, a[0], k or 1),
}
"""Noise of an instruction's result from the set's constants, the noise of its ciphertext
operands and its amount; ``mul_const`` (a ``mul_pt`` by a uniform constant, see
:func:`noise_bits`) takes the constant's residue mod t as its amount."""


def uniform_constants(program: Program) -> dict[str, int]:
    """The constants of ``program`` that hold one value in every slot, by name, as their
    residue mod t in [0, t): the backend packs each into all N slots (both rows), so its
    plaintext polynomial is that residue (the runtime's ``_constants``)."""
    residues = {c.name: {v % T for v in c.values} for c in program.consts}
    return {name: next(iter(r)) for name, r in residues.items() if len(r) == 1}


def _rule(ins: Instr, uniform: dict[str, int]) -> tuple[str, int | None]:
    """The :data:`GROWTH` rule of ``ins`` and its amount: the op table's, except a ct*pt
    multiply by a uniform constant, ``mul_const`` with the constant's residue."""
    info = OPS[ins.opcode]
    if info.noise_uniform is not None:
        for a in ins.args:
            if a in uniform:
                return info.noise_uniform, uniform[a]
    return info.noise, ins.amount


@dataclass(frozen=True)
class _Schedule:
    """What predicting a program's noise needs that no parameter set changes, read once per
    program (the parameter choice predicts it on every set): its ciphertext values in
    order, the inputs first, and for each result its :data:`GROWTH` rule, operands and
    amount."""

    names: tuple[str, ...]
    inputs: int  # the first ``inputs`` names are fresh encryptions
    steps: tuple[tuple[Growth, tuple[int, ...], int | None], ...]  # one per later name
    live: tuple[int, ...]  # the values the emitted result depends on


@functools.lru_cache(maxsize=1024)
def _schedule(program: Program) -> _Schedule:
    """The :class:`_Schedule` of ``program`` relinearized as the backend emits it
    (:func:`quill.relin.place_relinearizations`)."""
    lowered = place_relinearizations(program)
    kinds = lowered.kinds()
    uniform = uniform_constants(lowered)
    names = [p.name for p in lowered.params if p.kind is Kind.CT]
    inputs = len(names)
    index = {name: i for i, name in enumerate(names)}
    steps = []
    for ins in lowered.body:
        if kinds[ins.dest] is not Kind.CT:
            continue
        operands = tuple(index[a] for a in ins.args if kinds[a] is Kind.CT)
        rule, amount = _rule(ins, uniform)
        steps.append((GROWTH[rule], operands, amount))
        index[ins.dest] = len(names)
        names.append(ins.dest)
    live = live_values(lowered)
    last = {name: i for i, name in enumerate(names)}  # a name defined twice: its last value
    kept = tuple(i for name, i in last.items() if name in live)
    return _Schedule(tuple(names), inputs, tuple(steps), kept)


def _predicted(schedule: _Schedule, c: NoiseConstants) -> list[float]:
    """The noise of every value of ``schedule``, in its order, on a set's constants."""
    noise = [c.fresh] * schedule.inputs
    for growth, operands, amount in schedule.steps:
        noise.append(growth(c, [noise[i] for i in operands], amount))
    return noise


def noise_bits(program: Program, param_set: ParameterSet) -> dict[str, float]:
    """Predicted noise, in bits, of every ciphertext ``program`` computes on ``param_set``
    (relinearized as the backend emits it, :func:`quill.relin.place_relinearizations`)."""
    schedule = _schedule(program)
    return dict(zip(schedule.names, _predicted(schedule, param_set.noise), strict=True))


@functools.lru_cache(maxsize=4096)
def _peak(program: Program, param_set: ParameterSet) -> float:
    """The predicted noise of the noisiest value the emitted program computes."""
    schedule = _schedule(program)
    noise = _predicted(schedule, param_set.noise)
    return max((noise[i] for i in schedule.live), default=0.0)


def slots_needed(program: Program, slots: int) -> int:
    """Slots a row must hold: the kernel's, and every EvalSum window (OpenFHE sums within
    a row)."""
    return max(slots, _widest_window(program))


@functools.lru_cache(maxsize=1024)
def _widest_window(program: Program) -> int:
    """The largest EvalSum window of ``program`` (0 without one), read once per program (the
    parameter choice asks on every set)."""
    return max((i.amount for i in program.body if i.opcode.sums and i.amount), default=0)


def accepts(param_set: ParameterSet, program: Program, slots: int = 1) -> bool:
    """Whether ``program`` on ``slots`` slots runs on ``param_set``: its row holds the slots
    and the predicted noise stays :data:`MARGIN_BITS` below the capacity."""
    if param_set.slots < slots_needed(program, slots):
        return False
    return _peak(program, param_set) + MARGIN_BITS <= param_set.capacity_bits


@dataclass(frozen=True)
class Parameters:
    """The parameter set a program runs with, and why it is safe there."""

    param_set: ParameterSet
    noise_bits: float  # predicted noise of the noisiest value
    ct_ct_depth: int

    @property
    def mult_depth(self) -> int:
        """The depth passed to OpenFHE (it sizes the modulus chain from it)."""
        return self.param_set.mult_depth

    @property
    def ring_dim(self) -> int:
        return self.param_set.ring_dim

    @property
    def log2_q(self) -> int:
        return round(self.param_set.log2_q)

    @property
    def margin_bits(self) -> float:
        """How far the predicted noise stays below the capacity (at least MARGIN_BITS)."""
        return self.param_set.capacity_bits - self.noise_bits


class NoiseBudgetExceeded(ValueError):
    """No parameter set holds the program: too much noise, or too many slots."""


def assess(program: Program, param_set: ParameterSet) -> Parameters:
    """``program``'s :class:`Parameters` on ``param_set``, whether the model accepts it
    there or not (for running a program on a set chosen for another, or probing the model)."""
    return Parameters(param_set, _peak(program, param_set), ct_ct_depth(program))


def shared_parameters(
    programs: Sequence[Program], slots: int = 1, table: CostTable = DEFAULT_TABLE
) -> Parameters:
    """The cheapest set that every one of ``programs`` runs on (their latencies summed by
    ``table``; then fewer key-generation milliseconds, then the smaller ring), as
    :class:`Parameters` of the noisiest program. Only sets the table prices are chosen.

    Raises :class:`NoiseBudgetExceeded` when no set accepts them all.
    """
    lowered = [place_relinearizations(p) for p in programs]
    need = max(slots_needed(p, slots) for p in lowered)
    priced = [s for s in SETS if s.name in table.latency_ms and s.slots >= need]

    def price(s: ParameterSet) -> tuple[float, ...]:
        costs = [measures(p, s, table) for p in lowered]
        keygen = sum(m.keys for m in costs) * table.at(s)["rotation_keygen"]
        return (sum(m.latency_us for m in costs), keygen, s.ring_dim)

    # Cheapest first, so that the noise (the dearer check) is predicted only until a set
    # holds it; the sort is stable, so ties go to the earlier set as before.
    for best in sorted(priced, key=price):
        if all(accepts(best, p, slots) for p in lowered):
            return max((assess(p, best) for p in lowered), key=lambda p: p.noise_bits)
    raise NoiseBudgetExceeded(_why_none(lowered, slots))


def parameters(program: Program, slots: int = 1, table: CostTable = DEFAULT_TABLE) -> Parameters:
    """The parameter set ``program`` on ``slots`` slots runs with: the cheapest by
    ``table`` that holds the slots (N/2 >= n) and on which the predicted noise stays
    :data:`MARGIN_BITS` below the capacity. :class:`NoiseBudgetExceeded` when none does."""
    return shared_parameters([program], slots, table)


def _why_none(programs: Sequence[Program], slots: int) -> str:
    names = ", ".join(p.name for p in programs)
    need = max(slots_needed(p, slots) for p in programs)
    largest = max(SETS, key=lambda s: (s.slots, s.capacity_bits))
    if need > largest.slots:
        return (
            f"{names} needs {need} slots in a row, more than the {largest.slots} of the "
            f"largest ring (N = {largest.ring_dim})"
        )
    deepest = max((s for s in SETS if s.slots >= need), key=lambda s: s.capacity_bits)
    peak = max(_peak(p, deepest) for p in programs)
    return (
        f"{names} needs about {peak + MARGIN_BITS:.0f} bits of noise capacity (its predicted "
        f"noise plus a {MARGIN_BITS:.0f}-bit margin), more than the "
        f"{deepest.capacity_bits:.0f} of the deepest parameter set ({deepest.name}); "
        "reduce its multiplicative depth"
    )


def reference_program(depth: int) -> Program:
    """The shape the search prices a spec of ct*ct depth ``depth`` at: an input multiplied
    by a plaintext, squared ``depth`` times, then rotated and added to itself."""
    body = [Instr("v0", Opcode.MUL_CP, ("x", "p"))]
    for i in range(depth):
        body.append(Instr(f"v{i + 1}", Opcode.MUL_CC, (f"v{i}", f"v{i}")))
    last = f"v{depth}"
    body += [Instr("r", Opcode.ROT, (last,), 1), Instr("y", Opcode.ADD_CC, (last, "r"))]
    params = (Param("x", Kind.CT), Param("p", Kind.PT))
    return Program(f"depth_{depth}", params, (), tuple(body), "y")


def for_depth(depth: int, slots: int, table: CostTable = DEFAULT_TABLE) -> ParameterSet:
    """The set a search prices a spec of ct*ct depth ``depth`` on ``slots`` slots at:
    :func:`parameters` of :func:`reference_program`. The kernel found then runs on its own
    cheapest safe set, which is often this one."""
    return parameters(reference_program(depth), slots, table).param_set


def _deepest() -> int:
    """The longest chain of squarings some set accepts."""
    depth = 0
    while any(accepts(s, reference_program(depth + 1)) for s in SETS):
        depth += 1
    return depth


MAX_CT_CT_DEPTH = _deepest()
"""The deepest ct*ct chain the noise model accepts on some set: a spec that needs more
cannot be run."""
