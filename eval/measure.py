"""Evaluate one kernel: synthesize it (timed), count its variants, measure them encrypted.

The variants of a kernel are the hand-written ``baseline`` (``kernels/baselines``), the
paper's ``published`` kernel (``kernels/published``) and ``ours``, synthesized from the spec
with the default objective (estimated latency). The encrypted measurements, all in one
interleaved run, are :mod:`eval.latency`'s.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eval.latency import Measured, measure
from porcupine.cli.report import scope_text
from porcupine.layouts.packing import Packing
from porcupine.options import Options
from porcupine.synthesize import SynthesisError, synthesize
from quill.cost import Objective, program_cost
from quill.ir import Program
from quill.noise import parameters
from quill.parser import load_program
from quill.spec import Spec, load_spec
from quill.stats import counts
from quill.verify import verify

VARIANTS = ("ours", "published", "baseline")
"""Every kernel variant, in the order of the tables."""

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
    param_set: str  # the cheapest set its noise allows (quill.noise.parameters)
    cost_ms: float  # estimated latency (quill.cost) on that set

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
            param_set=params.param_set.name,
            cost_ms=program_cost(program, params.param_set),
        )


@dataclass(frozen=True)
class SynthRuns:
    """Repeated from-scratch syntheses of one spec (default objective)."""

    program: Program | None  # the first run's kernel (None if no run found one)
    seconds: tuple[float, ...]  # wall time of each run, found or not
    optimal: bool
    scope: str  # what the optimality proof covers, or why there is none
    source: str
    error: str = ""  # why a run found nothing
    differing: bool = False  # whether later runs returned another kernel
    packing: Packing | None = None  # the client packing of the first run's kernel, if not natural

    @property
    def median_s(self) -> float | None:
        """The median run's seconds (None if the search was not run)."""
        return statistics.median(self.seconds) if self.seconds else None

    def outcome(self) -> str:
        """``optimal``, ``not proven optimal`` or ``none found``, for the tables."""
        if self.program is None:
            return "none found" if self.seconds else "not run"
        return "optimal" if self.optimal else "not proven optimal"


@dataclass
class KernelEval:
    """Everything measured for one kernel."""

    name: str
    slots: int
    timeout: float
    programs: dict[str, Program]  # variant -> program, for the variants that exist
    synth: SynthRuns
    measured: Measured = field(default_factory=Measured)
    notes: list[str] = field(default_factory=list)

    def counts(self, variant: str) -> Counts | None:
        program = self.programs.get(variant)
        return None if program is None else Counts.of(program, self.slots_of(variant))

    def packings(self) -> dict[str, Packing]:
        """The variants that take a client packing other than the natural one (ours, when
        its inputs are zero padded)."""
        return {} if self.synth.packing is None else {"ours": self.synth.packing}

    def slots_of(self, variant: str) -> int:
        packing = self.packings().get(variant)
        return self.slots if packing is None else packing.slots

    def kernel_speedup(self, variant: str = "baseline") -> float | None:
        """(a): ``variant``'s latency over ours, in the shared context."""
        return self.measured.ratio(f"a_{variant}", "a_ours")

    def end_to_end(self) -> float | None:
        """(b): the baseline at OpenFHE's defaults over ours at its own set."""
        return self.measured.ratio("b_baseline", "b_ours")

    def parameter_win(self) -> float | None:
        """(c): the baseline at OpenFHE's defaults over the baseline at our set."""
        return self.measured.ratio("b_baseline", "c_baseline")

    def kernel_win_at_ours(self) -> float | None:
        """The baseline over ours, both at our set: (b) / (c)."""
        return self.measured.ratio("c_baseline", "b_ours")

    @property
    def wrong(self) -> list[str]:
        """The wrong decryptions of this kernel's run (each a failure)."""
        return self.measured.wrong


@dataclass(frozen=True)
class Setup:
    """How to evaluate: repetitions, latency runs, timeouts and the kernel folders."""

    kernels_dir: Path
    runs: int = 1
    reps: int = 100
    keygen_reps: int = 5
    timeout: float = 120.0
    timeouts: dict[str, float] = field(default_factory=dict)  # per-kernel overrides
    seed: int = 0
    verbose: bool = False
    layout: str = "padded"  # synthesize's layout for ours: the spec's, zero padded if it pays
    baseline_keys: bool = False  # ours within the baseline's rotation keys (--max-rotation-keys)

    def timeout_for(self, name: str) -> float:
        return self.timeouts.get(name, self.timeout)


def synthesize_runs(
    spec: Spec,
    runs: int,
    timeout: float,
    say: Say,
    layout: str = "given",
    max_keys: int | None = None,
) -> SynthRuns:
    """Synthesize ``spec`` from scratch ``runs`` times with the default objective,
    ``layout`` and at most ``max_keys`` rotation keys; the first kernel found is kept. A
    run that finds nothing ends the repetitions."""
    seconds: list[float] = []
    programs: list[Program] = []
    optimal, scope, source, error = False, "", "none", ""
    packing: Packing | None = None
    goal = Options().goal
    for run in range(runs):
        say(f"synthesis ({goal.value}) run {run + 1}/{runs}")
        start = time.monotonic()
        try:
            options = Options(max_keys=max_keys)
            result = synthesize(spec, timeout=timeout, layout=layout, options=options)
        except SynthesisError as e:
            seconds.append(time.monotonic() - start)
            error = str(e)
            say(f"  nothing found after {seconds[-1]:.1f} s; not repeated")
            break
        seconds.append(time.monotonic() - start)
        say(f"  {seconds[-1]:.1f} s, optimal: {result.optimal}")
        if not programs:
            optimal, scope, source = result.optimal, scope_text(result), result.source.value
            packing = result.packing
        programs.append(result.program)
    return SynthRuns(
        program=programs[0] if programs else None,
        seconds=tuple(seconds),
        optimal=optimal,
        scope=scope,
        source=source,
        error=error,
        differing=len({canonical(p) for p in programs}) > 1,
        packing=packing,
    )


def default_objective() -> Objective:
    """The objective ``synthesize`` uses when not told otherwise."""
    return Options().goal


def known_programs(name: str, kernels_dir: Path) -> dict[str, Program]:
    """The baseline and published kernels of ``name`` that exist on disk."""
    found: dict[str, Program] = {}
    for variant, folder in (("baseline", "baselines"), ("published", "published")):
        path = kernels_dir / folder / f"{name}.quill"
        if path.is_file():
            found[variant] = load_program(path)
    return found


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
    """Note the variants that are the same kernel up to names: their latency ratio in the
    shared context is a measure of the timing noise."""
    groups: dict[tuple[tuple[object, ...], ...], list[str]] = {}
    for variant in VARIANTS:
        if variant in ev.programs:
            groups.setdefault(canonical(ev.programs[variant]), []).append(variant)
    for group in groups.values():
        if len(group) > 1:
            ev.notes.append("same kernel up to names: " + ", ".join(group))


def check_known(ev: KernelEval, spec: Spec) -> None:
    """Drop (with a note) any baseline or published kernel that is not equal to the spec."""
    for variant in ("baseline", "published"):
        program = ev.programs.get(variant)
        if program is not None and not (verdict := verify(program, spec)).ok:
            ev.notes.append(f"{variant} kernel is not equal to the spec: {verdict}")
            del ev.programs[variant]


def evaluate_kernel(name: str, setup: Setup, say: Say) -> KernelEval:
    """Synthesize, count and measure kernel ``name`` (``kernels_dir/NAME.spec``)."""
    spec = load_spec(setup.kernels_dir / f"{name}.spec")
    timeout = setup.timeout_for(name)
    known = known_programs(name, setup.kernels_dir)
    max_keys = None
    if setup.baseline_keys and "baseline" in known:
        max_keys = len(counts(known["baseline"]).rotation_keys)
    synth = synthesize_runs(spec, setup.runs, timeout, say, setup.layout, max_keys)
    ev = KernelEval(name, spec.n, timeout, known, synth)
    if max_keys is not None:
        ev.notes.append(f"ours: within the baseline's {max_keys} rotation keys")
    if synth.program is None:
        ev.notes.append(f"ours: {synth.error}")
    else:
        ev.programs["ours"] = synth.program
        if not synth.optimal:
            ev.notes.append(f"ours: not proven optimal: {synth.scope}")
        if synth.packing is not None:
            ev.notes.append(
                f"ours: client packing {synth.packing.name} (each input zero padded to "
                f"{synth.packing.slots} slots, no element moved; its module pads them itself)"
            )
        if synth.differing:
            ev.notes.append(
                "ours: the runs returned different kernels; the first run's is measured"
            )
    say("verifying baseline and published kernels")
    check_known(ev, spec)
    note_same_kernels(ev)
    ev.measured = measure(
        ev.programs,
        spec,
        reps=setup.reps,
        keygen_reps=setup.keygen_reps,
        seed=setup.seed,
        say=say,
        packings=ev.packings(),
    )
    ev.notes += ev.measured.notes
    return ev
