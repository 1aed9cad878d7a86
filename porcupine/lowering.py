"""A direct kernel for any spec of one shape, with masks: what a careful hand-writer does.

The sketch search finds kernels whose every slot computes the same formula, moved by
rotations. A spec whose inputs do not line up with its output (a filter in the first
slots, a matrix product in row-major order) needs data movement first: for each read of
the formula, a ciphertext holding, at every output slot, the element that read takes
there. :func:`lower` builds each such ciphertext from masks (a ct*pt multiply by a 0/1
plaintext) and rotations, grouping the slots that move by the same offset, or by one mask
and an ``EvalSum`` when every slot takes the same element; then it evaluates the formula
slot by slot. The kernel is verified like any other; it is a correct starting point, not
an optimum.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from quill.ir import Const, Instr, Param, Program
from quill.ops import Kind, Opcode
from quill.slots import T, normalize_amount
from quill.spec import Spec
from quill.spec_eval import Add, InputSlot, Mul, Negate, Power, StageSlot, Sub, Term, children
from quill.spec_eval import Const as ConstTerm
from quill.transform import simplify

Value = tuple[str, Kind]  # a name in the program, and its kind


class _Builder:
    """Straight-line Quill with fresh names and constants."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.body: list[Instr] = []
        self.consts: dict[tuple[int, ...], str] = {}
        self.count = 0

    def fresh(self) -> str:
        self.count += 1
        return f"v{self.count}"

    def const(self, values: tuple[int, ...]) -> Value:
        if values not in self.consts:
            self.consts[values] = f"c{len(self.consts) + 1}"
        return self.consts[values], Kind.PT

    def op(self, opcode: Opcode, *args: Value, amount: int | None = None) -> Value:
        name = self.fresh()
        self.body.append(Instr(name, opcode, tuple(a for a, _ in args), amount))
        return name, Kind.CT

    def binary(self, family: str, a: Value, b: Value) -> Value:
        """add, sub or mul of two values, a plaintext second (swapped where it commutes)."""
        if a[1] is Kind.PT and b[1] is Kind.CT and family != "sub":
            a, b = b, a
        if a[1] is Kind.PT:  # pt - ct: negate, then add
            return self.binary("add", self.op(Opcode.NEG, b), a)
        table = {
            ("add", Kind.CT): Opcode.ADD_CC, ("sub", Kind.CT): Opcode.SUB_CC,
            ("mul", Kind.CT): Opcode.MUL_CC, ("add", Kind.PT): Opcode.ADD_CP,
            ("sub", Kind.PT): Opcode.SUB_CP, ("mul", Kind.PT): Opcode.MUL_CP,
        }  # fmt: skip
        return self.op(table[family, b[1]], a, b)

    def program(self, result: Value) -> Program:
        params = tuple(Param(d.name, d.kind) for d in self.spec.inputs)
        consts = tuple(Const(name, values) for values, name in self.consts.items())
        return Program(self.spec.name, params, consts, tuple(self.body), result[0])


def lower(spec: Spec) -> Program | None:
    """The direct kernel for ``spec``, or ``None`` when its output slots do not all compute
    one formula (up to which elements they read), a plaintext input would need moving, or
    it has stages."""
    if spec.stages:
        return None
    terms, template, shape = _formula(spec)
    slots = sorted(terms)
    if any(_shape(t) != shape for t in terms.values()):
        return None
    reads = {o: _reads(t) for o, t in terms.items()}
    b = _Builder(spec)
    gathered: list[Value] = []
    for p, (name, _) in enumerate(_reads(template)):
        source = {o: reads[o][p][1] for o in slots}
        value = _gather(b, spec, name, source)
        if value is None:
            return None
        gathered.append(value)
    result = _evaluate(b, template, iter(gathered))
    if result[1] is Kind.PT:
        return None
    return simplify(b.program(result))


def needs_movement(spec: Spec) -> bool:
    """Whether some read of the formula takes its element at a different offset from
    different output slots (a filter's tap, a matrix row): rotations alone, which move
    every slot by the same amount, cannot line that up; masks can. (Specs with stages are
    synthesized stage by stage and do not come here.)"""
    if spec.stages:
        return False
    terms, _, shape = _formula(spec)
    offsets: defaultdict[int, set[int]] = defaultdict(set)
    for o, t in terms.items():
        if _shape(t) != shape:
            continue
        for p, (_, s) in enumerate(_reads(t)):
            offsets[p].add(normalize_amount(s - o, spec.n))
    return any(len(v) > 1 for v in offsets.values())


def _formula(spec: Spec) -> tuple[dict[int, Term], Term, object]:
    """The output's term at every slot that matters, the one at the middle slot (the
    formula), and that formula's shape."""
    terms = dict(spec._unrolled.terms[spec.output.name])
    template = terms[sorted(terms)[len(terms) // 2]]
    return terms, template, _shape(template)


def _reads(t: Term) -> list[tuple[str, int]]:
    if isinstance(t, InputSlot):
        return [(t.name, t.slot)]
    if isinstance(t, StageSlot):
        raise ValueError("stages are lowered one by one")
    return [r for c in children(t) for r in _reads(c)]


def _shape(t: Term) -> object:
    if isinstance(t, InputSlot):
        return t.name
    if isinstance(t, ConstTerm):
        return ("const", t.value)
    extra = t.exponent if isinstance(t, Power) else None
    return (type(t).__name__, extra, tuple(_shape(c) for c in children(t)))


def _gather(b: _Builder, spec: Spec, name: str, source: dict[int, int]) -> Value | None:
    """A value holding, at each output slot ``o``, element ``source[o]`` of input ``name``."""
    n, decl = spec.n, spec.input(name)
    here: Value = (name, decl.kind)
    by_offset: defaultdict[int, set[int]] = defaultdict(set)
    for o, s in source.items():
        by_offset[normalize_amount(s - o, n)].add(s)
    if list(by_offset) == [0]:
        return here
    if decl.kind is Kind.PT:
        return None  # a plaintext is not moved: no rotation or mask applies to it
    every = set(range(decl.layout.size)) if decl.zero_outside else set(range(n))
    if len(set(source.values())) == 1 and n & (n - 1) == 0 and len(source) > 1:
        (s,) = set(source.values())  # one element everywhere: mask it, then add up all slots
        return b.op(Opcode.SUM, b.binary("mul", here, b.const(_mask({s}, n))), amount=n)
    pieces = []
    for offset, needed in sorted(by_offset.items()):
        # Slots moving by another offset must not come along; others are don't-care.
        others = set().union(*(v for k, v in by_offset.items() if k != offset))
        part = here if not (others & every) else b.binary("mul", here, b.const(_mask(needed, n)))
        pieces.append(part if offset == 0 else b.op(Opcode.ROT, part, amount=offset))
    total = pieces[0]
    for p in pieces[1:]:
        total = b.binary("add", total, p)
    return total


def _mask(slots: set[int], n: int) -> tuple[int, ...]:
    return tuple(1 if s in slots else 0 for s in range(n))


def _evaluate(b: _Builder, t: Term, leaves: Iterator[Value]) -> Value:
    """``t`` slot by slot, its reads taken in order from ``leaves``."""

    def go(x: Term) -> Value:
        if isinstance(x, InputSlot):
            return next(leaves)
        if isinstance(x, ConstTerm):
            return b.const((x.value % T,))
        if isinstance(x, Add):
            acc = go(x.parts[0])
            for p in x.parts[1:]:
                acc = b.binary("add", acc, go(p))
            return acc
        if isinstance(x, Sub):
            return b.binary("sub", go(x.left), go(x.right))
        if isinstance(x, Mul):
            return b.binary("mul", go(x.left), go(x.right))
        if isinstance(x, Negate):
            return b.op(Opcode.NEG, go(x.operand))
        assert isinstance(x, Power)
        base = go(x.base)
        out = base
        for _ in range(x.exponent - 1):
            out = b.binary("mul", out, base)
        return out

    return go(t)
