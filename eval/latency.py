"""The encrypted measurements of one kernel: every comparison in one interleaved run.

Three comparisons (issue 11), six timed cells:

* (a) kernel only: ours, the published kernel and the baseline in ONE shared context, the
  cheapest parameter set all three fit (:func:`quill.noise.shared_parameters`); cells
  ``a_ours``, ``a_published``, ``a_baseline``.
* (b) end to end: ours in its own parameter set, built as its emitted module builds it
  (``b_ours``), against the baseline in OpenFHE's default context for its depth
  (``b_baseline``: ``SetMultiplicativeDepth(d)``, t = 65537, 128-bit classic, everything else
  OpenFHE's; d = the baseline's ct*ct depth, at least 1, since OpenFHE's depth-0 context,
  one 60-bit tower with a whole-tower digit, cannot rotate).
* (c) the baseline in our parameter set (``c_baseline``): baseline at defaults over this is
  the parameter win; this over ours the kernel win at our set; their product is (b).

Every cell is its own context and key pair except (a)'s three, which share one. Each cell's
output is decrypted and compared with the spec once before timing; a wrong decryption is
recorded (:attr:`Measured.wrong`) and the cell is not timed. Then the cells take turns,
``reps`` rounds, the order reversed every round, so machine noise hits all alike; the
medians are reported. Key generation is timed in the three per-variant settings (ours at
its set, the baseline at the defaults and at our set), ``keygen_reps`` interleaved rounds
plus the cells' own, with the rotation keys' serialized size.
"""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from porcupine.backend import (
    ContextSession,
    EmitOptions,
    EmittedKernel,
    KeyGenStats,
    SpecLike,
    clear_rotation_keys,
    context_facts,
    default_context,
    emitted_module,
    matching_set,
    timed_keys,
)
from porcupine.layouts.packing import Packing
from quill.ir import Program
from quill.noise import accepts, shared_parameters
from quill.params import ParameterSet, by_name
from quill.relin import place_relinearizations
from quill.stats import ct_ct_depth

CELLS = ("a_ours", "a_published", "a_baseline", "b_ours", "b_baseline", "c_baseline")
"""Every timed cell, in table order."""

CELL_LABELS = {
    "a_ours": "(a) ours, shared context",
    "a_published": "(a) published, shared context",
    "a_baseline": "(a) baseline, shared context",
    "b_ours": "(b) ours, its own parameter set",
    "b_baseline": "(b) baseline, OpenFHE defaults for its depth",
    "c_baseline": "(c) baseline, our parameter set",
}

KEY_CELLS = ("b_ours", "b_baseline", "c_baseline")
"""The cells whose key generation is timed: one variant each, in a context of its own."""

SETTINGS = ("shared", "ours", "defaults")
"""The contexts: (a)'s shared set, our set (b, c) and OpenFHE's defaults (b)."""

Say = Callable[[str], None]


@dataclass(frozen=True)
class Setting:
    """A context as measured: the quill set it is (or is nearest to) and its facts."""

    param_set: str  # quill.params name (for the defaults: the set emission decided for)
    ring_dim: int
    log2_q: float
    digit_size: int
    exact: bool = True  # the context is exactly param_set (the defaults may differ)
    depth: int | None = None  # SetMultiplicativeDepth of the defaults

    def describe(self) -> str:
        digit = f"digit {self.digit_size}" if self.digit_size else "digit = tower"
        return f"N = {self.ring_dim}, log2 Q = {self.log2_q:.0f}, {digit}"


@dataclass(frozen=True)
class KeyGen:
    """Key generation in one setting: medians over the samples, in milliseconds."""

    samples: int
    keypair_ms: float
    relin_ms: float
    rotation_ms: float
    evaluation_ms: float  # rotation + relinearization keys
    rotation_keys: int
    rotation_key_bytes: int

    @classmethod
    def of(cls, samples: list[KeyGenStats]) -> KeyGen:
        def med(values: list[float]) -> float:
            return statistics.median(values) * 1e3

        return cls(
            samples=len(samples),
            keypair_ms=med([s.keypair_s for s in samples]),
            relin_ms=med([s.relin_s for s in samples]),
            rotation_ms=med([s.rotation_s for s in samples]),
            evaluation_ms=med([s.evaluation_keys_s for s in samples]),
            rotation_keys=samples[0].rotation_keys,
            rotation_key_bytes=max(s.rotation_key_bytes for s in samples),
        )


@dataclass
class Measured:
    """What the encrypted run of one kernel measured."""

    ms: dict[str, float] = field(default_factory=dict)  # cell -> median kernel ms
    samples: dict[str, int] = field(default_factory=dict)  # cell -> timed runs
    settings: dict[str, Setting] = field(default_factory=dict)
    keygen: dict[str, KeyGen] = field(default_factory=dict)  # key cell -> key generation
    rotation_keys: dict[str, int] = field(default_factory=dict)  # variant -> keys it needs
    wrong: list[str] = field(default_factory=list)  # wrong decryptions: failures
    notes: list[str] = field(default_factory=list)
    nice: int = 0  # the priority change the timed runs ran at

    def ratio(self, slower: str, faster: str) -> float | None:
        """``ms[slower] / ms[faster]`` where both were measured."""
        a, b = self.ms.get(slower), self.ms.get(faster)
        return None if a is None or b is None or b <= 0 else a / b


LATENCY_NICE = -10
"""Latency is measured at this raised priority where permitted, so that other processes on
a shared machine preempt the kernel runs less often."""


@contextlib.contextmanager
def raised_priority(increment: int = LATENCY_NICE) -> Iterator[int]:
    """Run the block at ``increment`` higher priority (yields it), or unchanged (yields 0)
    where the OS does not permit it."""
    try:
        os.nice(increment)
    except OSError:
        yield 0
        return
    try:
        yield increment
    finally:
        os.nice(-increment)


@dataclass
class _Cell:
    name: str
    module: EmittedKernel
    context: Any  # an OpenFHE context, built before any key
    session: ContextSession | None = None
    args: Mapping[str, Any] = field(default_factory=dict)


def _setting(cc: Any, param_set: ParameterSet, depth: int | None = None) -> Setting:
    facts = context_facts(cc)
    exact = (
        facts.ring_dim == param_set.ring_dim
        and round(facts.log2_q, 6) == round(param_set.log2_q, 6)
        and facts.digit_size == param_set.digit_size
        and depth is None
    )
    return Setting(param_set.name, facts.ring_dim, facts.log2_q, facts.digit_size, exact, depth)


def defaults_depth(baseline: Program) -> int:
    """The depth a hand-writer passes to ``SetMultiplicativeDepth``: the baseline's ct*ct
    depth, at least 1 (OpenFHE's depth-0 context cannot rotate)."""
    return max(1, ct_ct_depth(baseline))


def _cells(
    programs: Mapping[str, Program],
    spec: SpecLike,
    out: Measured,
    packings: Mapping[str, Packing],
) -> list[_Cell]:
    """Emit every variant for every context it is measured in, and build the contexts."""
    cells: list[_Cell] = []
    shared_variants = [v for v in ("ours", "published", "baseline") if v in programs]
    if shared_variants:
        slots = max([spec.n, *(p.slots for v, p in packings.items() if v in shared_variants)])
        shared = shared_parameters([programs[v] for v in shared_variants], slots).param_set
        modules = {
            v: emitted_module(
                programs[v], spec, EmitOptions(param_set=shared, packing=packings.get(v))
            )
            for v in shared_variants
        }
        advanced = any(m.ADVANCED_SHE for m in modules.values())
        cc = modules[shared_variants[0]].new_context(None, advanced_she=advanced)
        out.settings["shared"] = _setting(cc, shared)
        cells += [_Cell(f"a_{v}", m, cc) for v, m in modules.items()]
    own: ParameterSet | None = None
    if "ours" in programs:
        module = emitted_module(programs["ours"], spec, EmitOptions(packing=packings.get("ours")))
        own = by_name(module.PARAMETER_SET)
        cc = module.new_context(None, advanced_she=module.ADVANCED_SHE)
        out.settings["ours"] = _setting(cc, own)
        cells.append(_Cell("b_ours", module, cc))
    if "baseline" in programs:
        baseline = programs["baseline"]
        depth = defaults_depth(baseline)
        nearest = matching_set(default_context(depth))
        module = emitted_module(baseline, spec, EmitOptions(param_set=nearest))
        cc = default_context(depth, advanced_she=module.ADVANCED_SHE)
        out.settings["defaults"] = _setting(cc, nearest, depth)
        cells.append(_Cell("b_baseline", module, cc))
        if own is not None:
            if accepts(own, place_relinearizations(baseline), spec.n):
                module = emitted_module(baseline, spec, EmitOptions(param_set=own))
                cc = module.new_context(None, advanced_she=module.ADVANCED_SHE)
                cells.append(_Cell("c_baseline", module, cc))
            else:
                out.notes.append(
                    f"(c) not measured: the noise model does not prove the baseline safe at "
                    f"our parameter set {own.name}"
                )
    for cell in cells:
        variant = cell.name.split("_", 1)[1]
        out.rotation_keys.setdefault(variant, len(cell.module.ROTATION_INDICES))
    return cells


def _keygen_rounds(cells: list[_Cell], rounds: int) -> dict[str, list[KeyGenStats]]:
    """``rounds`` interleaved key generations (a fresh key pair each) per key cell; the
    rotation keys' size measured in the first. Every rotation key is dropped after."""
    samples: dict[str, list[KeyGenStats]] = {c.name: [] for c in cells}
    order = list(cells)
    for r in range(rounds):
        for cell in order:
            m = cell.module
            _, stats = timed_keys(
                cell.context, m.ROTATION_INDICES, m.CT_CT_MULT, measure_bytes=r == 0
            )
            samples[cell.name].append(stats)
        order.reverse()
    clear_rotation_keys()
    return samples


def _interleaved(cells: list[_Cell], reps: int) -> dict[str, list[float]]:
    """Kernel milliseconds of every cell, ``reps`` rounds, the order reversed each round."""
    times: dict[str, list[float]] = {c.name: [] for c in cells}
    order = list(cells)
    gc.collect()
    gc.disable()
    try:
        for _ in range(reps):
            for cell in order:
                assert cell.session is not None
                times[cell.name].append(cell.session.run(cell.module, cell.args)[1])
            order.reverse()
    finally:
        gc.enable()
    return times


def measure(
    programs: Mapping[str, Program],
    spec: SpecLike,
    *,
    reps: int,
    keygen_reps: int,
    seed: int = 0,
    say: Say = lambda _m: None,
    packings: Mapping[str, Packing] | None = None,
) -> Measured:
    """Measure ``programs`` (variant -> program: ``ours``, ``published``, ``baseline``, any
    of them) of ``spec`` in every cell that applies (see the module docstring); a variant
    in ``packings`` takes that client packing (its module packs the inputs)."""
    out = Measured()
    clear_rotation_keys()
    cells = _cells(programs, spec, out, packings or {})
    key_cells = [c for c in cells if c.name in KEY_CELLS]
    say(f"key generation, {keygen_reps} interleaved rounds")
    samples = _keygen_rounds(key_cells, keygen_reps)
    say(f"keys and checked decryptions in {len(cells)} cells")
    shared: ContextSession | None = None
    shared_modules = [c.module for c in cells if c.name.startswith("a_")]
    slot_inputs = spec.random_inputs(np.random.default_rng(seed))
    timed: list[_Cell] = []
    for cell in cells:
        if cell.name.startswith("a_"):
            if shared is None:
                shared = ContextSession(cell.context, shared_modules)
            cell.session = shared
        else:
            cell.session = ContextSession(cell.context, [cell.module])
            if cell.name in samples:
                samples[cell.name].append(cell.session.keygen)
        cell.args = cell.session.arguments(cell.module, slot_inputs)
        _, bad = cell.session.check(cell.module, spec, slot_inputs, cell.args)
        if bad:
            where = ", ".join(f"slot {m.slot}: want {m.expected}, got {m.got}" for m in bad[:3])
            out.wrong.append(
                f"{CELL_LABELS[cell.name]} decrypted WRONGLY at {len(bad)} slots ({where})"
            )
        else:
            timed.append(cell)
    out.keygen = {name: KeyGen.of(s) for name, s in samples.items() if s}
    say(f"encrypted latency, {reps} interleaved rounds of {len(timed)} cells")
    with raised_priority() as out.nice:
        times = _interleaved(timed, reps)
    out.ms = {name: statistics.median(t) for name, t in times.items() if t}
    out.samples = {name: len(t) for name, t in times.items()}
    for cell in cells:
        cell.session = None
    clear_rotation_keys()
    return out
