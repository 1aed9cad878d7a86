"""Integer ranges of the values a kernel and its spec compute: where arithmetic mod t wraps.

BFV computes mod t = 65537. An application means integers: a slot holding a value whose
integer range lies within ``-MAX_VALUE .. MAX_VALUE`` (one integer per residue) is exactly
that integer; a value that can leave the range may wrap, and then the residue no longer
tells which integer was meant.

For inputs in their declared ranges (``input x: ct image(h, w) in 0..255``, or ``bits``),
an interval analysis bounds every value as an integer. :class:`IntervalRing` is a
:class:`~quill.algebra.ScalarRing` of integer intervals, so

* a Quill program is evaluated through the op table (:func:`quill.ops.apply_scalar`), one
  interval per value for all its slots: a rotation keeps the interval;
* a spec's reference is evaluated by :meth:`~quill.spec.Spec.evaluate`, slot by slot.

Intervals are sound, not tight: ``x * x`` over ``-3..5`` is bounded by ``-15..25``.
"""

from __future__ import annotations

from dataclasses import dataclass

from quill.ir import Program
from quill.ops import OPS, apply_scalar
from quill.printer import format_instr
from quill.slots import T
from quill.spec import InputDecl, Spec
from quill.spec_resolve import MAX_VALUE


@dataclass(frozen=True)
class Interval:
    """The integers ``lo .. hi``, both included."""

    lo: int
    hi: int

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise ValueError(f"empty interval {self.lo}..{self.hi}")

    def hull(self, other: Interval) -> Interval:
        """The smallest interval holding both."""
        return Interval(min(self.lo, other.lo), max(self.hi, other.hi))

    @property
    def exact(self) -> bool:
        """Whether every value in it is represented exactly by its residue mod t."""
        return self.lo >= -MAX_VALUE and self.hi <= MAX_VALUE

    def __str__(self) -> str:
        return f"{self.lo}..{self.hi}"


EXACT = Interval(-MAX_VALUE, MAX_VALUE)
"""The integers one residue each: what an input without a declared range may be."""

ZERO = Interval(0, 0)


class IntervalRing:
    """Integer intervals under exact (not modular) arithmetic."""

    def const(self, c: int) -> Interval:
        return Interval(c, c)

    def add(self, a: Interval, b: Interval) -> Interval:
        return Interval(a.lo + b.lo, a.hi + b.hi)

    def sub(self, a: Interval, b: Interval) -> Interval:
        return Interval(a.lo - b.hi, a.hi - b.lo)

    def mul(self, a: Interval, b: Interval) -> Interval:
        ends = (a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi)
        return Interval(min(ends), max(ends))

    def neg(self, a: Interval) -> Interval:
        return Interval(-a.hi, -a.lo)


def residue(c: int) -> int:
    """``c`` mod t as the integer of least magnitude: the integer a plaintext slot holds."""
    c %= T
    return c - T if c > MAX_VALUE else c


def input_range(decl: InputDecl) -> Interval:
    """The integers an element of ``decl`` may be: its declared range (``bits``: 0..1), else
    any residue."""
    bounds = decl.value_bounds()
    return EXACT if bounds is None else Interval(*bounds)


def declares_ranges(spec: Spec) -> bool:
    """Whether any input of ``spec`` declares a range (``in lo..hi`` or ``bits``): without
    one, the spec computes in Z_t by declaration and there is nothing to check."""
    return any(d.value_bounds() is not None for d in spec.inputs)


@dataclass(frozen=True)
class ValueRange:
    """The integer range of one value: ``what`` names it for a person."""

    what: str
    interval: Interval

    @property
    def exact(self) -> bool:
        return self.interval.exact


def spec_ranges(spec: Spec) -> ValueRange:
    """The range of the spec's output over the slots that matter, for inputs in range
    (slots outside an input's layout hold 0)."""
    ring = IntervalRing()
    inputs: dict[str, list[Interval]] = {}
    for decl in spec.inputs:
        covered = decl.layout.size if decl.zero_outside else spec.n
        inputs[decl.name] = [input_range(decl) if s < covered else ZERO for s in range(spec.n)]
    values = list(spec.evaluate(ring, inputs).values())
    total = values[0]
    for v in values[1:]:
        total = total.hull(v)
    return ValueRange(f"output {spec.output.name} of spec {spec.name}", total)


def program_ranges(program: Program, spec: Spec) -> list[ValueRange]:
    """The range of every value ``program`` computes, one interval for all its slots, for
    the inputs of ``spec`` in range."""
    ring = IntervalRing()
    env: dict[str, Interval] = {}
    for decl in spec.inputs:
        whole = input_range(decl)
        env[decl.name] = whole.hull(ZERO) if decl.layout.size < spec.n else whole
    for c in program.consts:
        values = [residue(v) for v in c.values]
        env[c.name] = Interval(min(values), max(values))
    out: list[ValueRange] = []
    for ins in program.body:
        args = [env[a] for a in ins.args]
        reads = OPS[ins.opcode].reads
        if reads is not None:  # moves slots (one interval for all), adding up what it reads
            assert ins.amount is not None
            total = args[0]
            for _ in reads(0, ins.amount, spec.n)[1:]:
                total = ring.add(total, args[0])
            env[ins.dest] = total
        else:
            env[ins.dest] = apply_scalar(ring, ins.opcode, args)
        out.append(ValueRange(f"{format_instr(ins)} in kernel {program.name}", env[ins.dest]))
    return out
