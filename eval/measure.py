"""Evaluate one kernel: synthesize it (timed), count every variant, time them encrypted.

The variants of a kernel are the hand-written ``baseline`` (``kernels/baselines``), the
paper's ``published`` kernel (``kernels/published``), ``synth`` (synthesized from scratch with
the default instruction objective) and ``synth_latency`` (synthesized with
``Objective.LATENCY``, seeded with ``synth`` as its initial cost bound). Their encrypted
latencies are measured interleaved in one OpenFHE context
(:func:`porcupine.backend.compare_latency`), so they share keys, ring dimension and machine
conditions: once as emitted (hoisted rotations where they pay) and once with no rotation
hoisted. Key generation is timed per variant in a context of its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from porcupine.backend import WrongDecryption, compare_latency, run_encrypted
from porcupine.search import Options
from porcupine.synthesize import SynthesisError, synthesize
from quill.cost import DEFAULT_TABLE, CostTable, Objective, program_cost
from quill.ir import Program
from quill.noise import parameters
from quill.parser import load_program
from quill.spec import Spec, load_spec
from quill.stats import counts
from quill.verify import verify

VARIANTS = ("baseline", "published", "synth", "synth_latency")
"""Every kernel variant, in the order of the tables."""

LABELS = {
    "baseline": "baseline",
    "published": "published",
    "synth": "ours",
    "synth_latency": "ours (latency objective)",
}


Say = Callable[[str], None]


@dataclass(frozen=True)
class Counts:
    """The static measures of one kernel program."""

    instructions: int
    rotations: int
    rotation_keys: int
    additions: int  # add, sub and negate, ct or pt operand
    ct_pt_mults: int
    ct_ct_mults: int
    depth: int  # ct*ct multiplicative depth
    ring_dim: int  # the ring dimension its noise needs
    cost_ms: float  # estimated latency (quill.cost) at that ring dimension

    @classmethod
    def of(cls, program: Program, slots: int) -> Counts:
        """Count ``program``, a kernel on ``slots`` slots."""
        params = parameters(program, slots)
        c = counts(program)
        return cls(
            instructions=c.instructions,
            rotations=c.rotations,
            rotation_keys=len(c.rotation_keys),
            additions=c.additions,
            ct_pt_mults=c.ct_pt_mults,
            ct_ct_mults=c.ct_ct_mults,
            depth=params.ct_ct_depth,
            ring_dim=params.ring_dim,
            cost_ms=program_cost(program, params.param_set),
        )


@dataclass(frozen=True)
class SynthRuns:
    """Repeated from-scratch syntheses of one spec under one objective."""

    program: Program | None  # the first run's kernel (None if no run found one)
    seconds: tuple[float, ...]  # wall time of each run, found or not
    optimal: bool
    scope: str  # what the optimality proof covers, or why there is none
    source: str
    error: str = ""  # why a run found nothing
    differing: bool = False  # whether later runs returned another kernel

    @property
    def median_s(self) -> float | None:
        """The median run's seconds (None if the search was not run)."""
        return statistics.median(self.seconds) if self.seconds else None

    def outcome(self) -> str:
        """``optimal``, ``not proven optimal`` or ``none found``, for the tables."""
        if self.program is None:
            return "none found" if self.seconds else "not run"
        verdict = "optimal" if self.optimal else "not proven optimal"
        return f"{verdict}, the seed kernel" if self.source == "initial" else verdict


@dataclass
class KernelEval:
    """Everything measured for one kernel."""

    name: str
    slots: int
    timeout: float
    programs: dict[str, Program]  # variant -> program, for the variants that exist
    synth: SynthRuns
    synth_latency: SynthRuns
    latency_ms: dict[str, float] = field(default_factory=dict)  # as emitted
    unhoisted_ms: dict[str, float] = field(default_factory=dict)  # no rotation hoisted
    keygen_ms: dict[str, float] = field(default_factory=dict)
    ring_dim: int | None = None  # of the shared latency context
    latency_nice: int = 0  # the scheduling priority change the latency was measured at
    notes: list[str] = field(default_factory=list)

    def counts(self, variant: str) -> Counts | None:
        program = self.programs.get(variant)
        return None if program is None else Counts.of(program, self.slots)

    def speedup(self, variant: str, *, hoisting: bool = True) -> float | None:
        """Baseline latency over ``variant``'s latency (None if either was not measured),
        as emitted or (``hoisting=False``) with no rotation hoisted."""
        times = self.latency_ms if hoisting else self.unhoisted_ms
        base, other = times.get("baseline"), times.get(variant)
        if base is None or other is None or other <= 0:
            return None
        return base / other


@dataclass(frozen=True)
class Setup:
    """How to evaluate: repetitions, latency runs, timeouts and the kernel folders."""

    kernels_dir: Path
    runs: int = 3
    reps: int = 30
    timeout: float = 120.0
    timeouts: dict[str, float] = field(default_factory=dict)  # per-kernel overrides
    seed: int = 0
    verbose: bool = False

    def timeout_for(self, name: str) -> float:
        return self.timeouts.get(name, self.timeout)


def synthesize_runs(
    spec: Spec,
    runs: int,
    timeout: float,
    goal: Objective,
    say: Say,
    search: Say,
    initial: Program | None = None,
) -> SynthRuns:
    """Synthesize ``spec`` ``runs`` times (from scratch unless ``initial`` seeds the cost
    bound); the first kernel found is kept.

    A run that finds nothing within the timeout ends the repetitions. ``say`` hears one
    line per run, ``search`` the synthesizer's own progress."""
    seconds: list[float] = []
    programs: list[Program] = []
    optimal, scope, source, error = False, "", "none", ""
    for run in range(runs):
        say(f"synthesis ({goal.value}) run {run + 1}/{runs}")
        start = time.monotonic()
        try:
            options = Options(goal=goal)
            result = synthesize(spec, timeout=timeout, options=options, initial=initial)
        except SynthesisError as e:
            seconds.append(time.monotonic() - start)
            error = str(e)
            say(f"  nothing found after {seconds[-1]:.1f} s; not repeated")
            break  # a repeat would almost surely time out too, costing the timeout again
        seconds.append(time.monotonic() - start)
        say(f"  {seconds[-1]:.1f} s, optimal: {result.optimal}")
        if not programs:
            optimal, scope, source = result.optimal, result.optimal_scope, result.source
        programs.append(result.program)
    return SynthRuns(
        program=programs[0] if programs else None,
        seconds=tuple(seconds),
        optimal=optimal,
        scope=scope,
        source=source,
        error=error,
        differing=len({canonical(p) for p in programs}) > 1,
    )


def known_programs(name: str, kernels_dir: Path) -> dict[str, Program]:
    """The baseline and published kernels of ``name`` that exist on disk."""
    found: dict[str, Program] = {}
    for variant, folder in (("baseline", "baselines"), ("published", "published")):
        path = kernels_dir / folder / f"{name}.quill"
        if path.is_file():
            found[variant] = load_program(path)
    return found


LATENCY_NICE = -10
"""Latency is measured at this raised priority where permitted, so that other processes on
a shared machine preempt the kernel runs less often (a 3 ms kernel call preempted by a
time slice of another process doubles)."""


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


NO_HOISTING = CostTable(
    {n: {**row, "rotate_precompute": 1e6} for n, row in DEFAULT_TABLE.latency_ms.items()},
    source="the default table with hoisting priced out",
)
"""A cost table under which the emitter hoists no rotation (as the paper's kernels ran)."""


def measure_latency(ev: KernelEval, spec: Spec, reps: int, seed: int) -> None:
    """Median encrypted latency of every variant, interleaved in one context: as emitted
    (rotations of one ciphertext hoisted where the cost table says it pays) and, in a
    second context, with no rotation hoisted."""
    variants = [v for v in VARIANTS if v in ev.programs]
    programs = [ev.programs[v] for v in variants]
    try:
        with raised_priority() as ev.latency_nice:
            emitted = compare_latency(programs, spec, reps, seed=seed)
            plain = compare_latency(programs, spec, reps, seed=seed, table=NO_HOISTING)
    except WrongDecryption as e:
        ev.notes.append(f"latency not measured: {e}")
        return
    ev.latency_ms = dict(zip(variants, emitted, strict=True))
    ev.unhoisted_ms = dict(zip(variants, plain, strict=True))


def measure_keygen(ev: KernelEval, spec: Spec, seed: int) -> None:
    """Key-generation milliseconds of every variant, each in a context of its own (and one
    checked encrypted run); also the ring dimension the shared latency context used."""
    rings: list[int] = []
    for variant in VARIANTS:
        program = ev.programs.get(variant)
        if program is None:
            continue
        run = run_encrypted(spec, program=program, reps=0, seed=seed)
        ev.keygen_ms[variant] = run.keygen_s * 1e3
        rings.append(run.ring_dim)
        if not run.ok:
            ev.notes.append(f"{LABELS[variant]} decrypted wrongly: {run.summary()}")
    ev.ring_dim = max(rings, default=None)


def canonical(program: Program) -> tuple[tuple[object, ...], ...]:
    """``program``'s instructions with the values it computes renamed by position, so two
    kernels that differ only in names compare equal."""
    names = {p.name: p.name for p in program.params}
    names.update((c.name, f"{c.name}={c.values}") for c in program.consts)
    body: list[tuple[object, ...]] = []
    for i, ins in enumerate(program.body):
        body.append((ins.opcode, tuple(names[a] for a in ins.args), ins.amount))
        names[ins.dest] = f"%{i}"
    return (*body, (names[program.result],))


def note_same_kernels(ev: KernelEval) -> None:
    """Note the variants that are the same kernel up to names: their latency ratio is a
    measure of the timing noise."""
    groups: dict[tuple[tuple[object, ...], ...], list[str]] = {}
    for variant in VARIANTS:
        if variant in ev.programs:
            groups.setdefault(canonical(ev.programs[variant]), []).append(variant)
    for group in groups.values():
        if len(group) > 1:
            ev.notes.append("same kernel up to names: " + ", ".join(LABELS[v] for v in group))


def check_known(ev: KernelEval, spec: Spec) -> None:
    """Drop (with a note) any baseline or published kernel that is not equal to the spec."""
    for variant in ("baseline", "published"):
        program = ev.programs.get(variant)
        if program is not None and not (verdict := verify(program, spec)).ok:
            ev.notes.append(f"{variant} kernel is not equal to the spec: {verdict}")
            del ev.programs[variant]


def latency_objective(
    spec: Spec, seed: SynthRuns, timeout: float, say: Say, search: Say
) -> SynthRuns:
    """One ``Objective.LATENCY`` search seeded with ``seed``'s kernel. If it ends with
    nothing (a multi-step spec's search does not take the seed), the seed kernel stands,
    as the synthesizer itself returns it for single-stage specs."""
    if seed.program is None:
        return SynthRuns(None, (), False, "", "none", "not tried: the default objective found none")
    runs = synthesize_runs(spec, 1, timeout, Objective.LATENCY, say, search, seed.program)
    if runs.program is not None:
        return runs
    scope = f"nothing faster found, the seed kernel stands ({runs.error})"
    return dataclasses.replace(runs, program=seed.program, source="initial", scope=scope)


def evaluate_kernel(name: str, setup: Setup, say: Say) -> KernelEval:
    """Synthesize, count and time kernel ``name`` (``kernels_dir/NAME.spec``)."""
    spec = load_spec(setup.kernels_dir / f"{name}.spec")
    timeout = setup.timeout_for(name)
    search: Say = (lambda m: say(f"  search: {m}")) if setup.verbose else (lambda _m: None)
    synth = synthesize_runs(spec, setup.runs, timeout, Objective.INSTRUCTIONS, say, search)
    synth_latency = latency_objective(spec, synth, timeout, say, search)
    ev = KernelEval(
        name, spec.n, timeout, known_programs(name, setup.kernels_dir), synth, synth_latency
    )
    for variant, runs in (("synth", synth), ("synth_latency", synth_latency)):
        if runs.program is None:
            ev.notes.append(f"{LABELS[variant]}: {runs.error}")
            continue
        ev.programs[variant] = runs.program
        if not runs.optimal:
            ev.notes.append(f"{LABELS[variant]}: not proven optimal: {runs.scope}")
        if runs.differing:
            ev.notes.append(
                f"{LABELS[variant]}: the runs returned different kernels (the "
                "search's choice varies between runs); the first run's is measured"
            )
    say("verifying baseline and published kernels")
    check_known(ev, spec)
    note_same_kernels(ev)
    say(f"encrypted latency, {setup.reps} interleaved runs each")
    measure_latency(ev, spec, setup.reps, setup.seed)
    say("key generation")
    measure_keygen(ev, spec, setup.seed)
    return ev
