"""A direct kernel for any spec of one shape, with masks: what a careful hand-writer does.

The sketch search finds kernels whose every slot computes the same formula, moved by
rotations. A spec whose inputs do not line up with its output (a filter in the first
slots, a matrix product in row-major order, a read past the end of a ``pad zero`` input)
needs data movement first: for each read of the formula, a ciphertext holding, at every
output slot, the element that read takes there (0 where it reads past a padded input's
end). :func:`lower` builds each such ciphertext from masks (a ct*pt multiply by a 0/1
plaintext) and rotations, grouping the slots that move by the same offset, or by one mask
and an ``EvalSum`` when every slot takes the same element; then it evaluates the formula
slot by slot. Arithmetic on constants alone is folded into one plaintext constant; a value
with no ciphertext in it that must meet another plaintext (there is no plaintext-plaintext
instruction) is first added to a ciphertext of zeros. The kernel is verified like any
other; it is a correct starting point, not an optimum.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from porcupine.normalize import normalized_term
from quill.algebra import ModTRing
from quill.ir import Const, Instr, Param, Program
from quill.ops import OPS, Family, Kind, Opcode, apply_scalar, opcode_for
from quill.slots import T, normalize_amount
from quill.spec import Spec
from quill.spec_eval import Add, InputSlot, Mul, Negate, Power, StageSlot, Sub, Term, children
from quill.spec_eval import Const as ConstTerm
from quill.stats import counts
from quill.transform import simplify
from quill.verify import reference

Value = tuple[str, Kind]  # a name in the program, and its kind
Operand = Value | int  # a named value, or a constant (mod t, the same in every slot) not yet named
Read = tuple[str, int | None]  # an input and the slot a read takes; None: 0, past a padded end


class _Builder:
    """Straight-line Quill with fresh names and constants; every instruction well-typed."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.body: list[Instr] = []
        self.consts: dict[tuple[int, ...], str] = {}
        self.count = 0
        self.zeros: Value | None = None

    def fresh(self) -> str:
        self.count += 1
        return f"v{self.count}"

    def const(self, values: tuple[int, ...]) -> Value:
        if values not in self.consts:
            self.consts[values] = f"c{len(self.consts) + 1}"
        return self.consts[values], Kind.PT

    def op(self, opcode: Opcode, *args: Value, amount: int | None = None) -> Value:
        kinds = tuple(k for _, k in args)
        assert kinds == OPS[opcode].operands, f"{opcode.value} takes {OPS[opcode].operands}"
        name = self.fresh()
        self.body.append(Instr(name, opcode, tuple(a for a, _ in args), amount))
        return name, Kind.CT

    def named(self, x: Operand) -> Value:
        return self.const((x % T,)) if isinstance(x, int) else x

    def ciphertext(self, x: Operand) -> Value:
        """``x`` as a ciphertext: a plaintext or constant is added to a ciphertext of zeros
        (one input minus itself), the only way to compute on it further."""
        if not isinstance(x, int) and x[1] is Kind.CT:
            return x
        if self.zeros is None:
            first = next(d.name for d in self.spec.inputs if d.kind is Kind.CT)
            self.zeros = self.op(Opcode.SUB_CC, (first, Kind.CT), (first, Kind.CT))
        if x == 0:
            return self.zeros
        return self.op(Opcode.ADD_CP, self.zeros, self.named(x))

    def binary(self, family: Family, a: Operand, b: Operand) -> Operand:
        """add, sub or mul of two values: constants folded, a plaintext second (swapped
        where it commutes)."""
        info = OPS[opcode_for(family, (Kind.CT, Kind.CT))]  # the family's algebra
        if isinstance(a, int) and isinstance(b, int):
            return apply_scalar(ModTRing(), info.opcode, [a, b])
        if info.absorbing is not None and info.absorbing in (a, b):
            return info.absorbing
        if info.left_unit is not None and a == info.left_unit:
            return b
        if info.right_unit is not None and b == info.right_unit:
            return a
        if not _is_ct(a) and not _is_ct(b):
            a = self.ciphertext(a)
        if not _is_ct(a) and info.commutative:
            a, b = b, a
        if not _is_ct(a):  # pt - ct: negate, then add
            return self.binary(Family.ADD, self.op(Opcode.NEG, self.ciphertext(b)), a)
        b = self.named(b)
        assert not isinstance(a, int)
        return self.op(opcode_for(family, (Kind.CT, b[1])), a, b)

    def negate(self, a: Operand) -> Operand:
        if isinstance(a, int):
            return -a % T
        return self.op(Opcode.NEG, self.ciphertext(a))

    def program(self, result: Operand) -> Program:
        out = self.ciphertext(result)
        params = tuple(Param(d.name, d.kind) for d in self.spec.inputs)
        consts = tuple(Const(name, values) for values, name in self.consts.items())
        return Program(self.spec.name, params, consts, tuple(self.body), out[0])


def _is_ct(x: Operand) -> bool:
    return not isinstance(x, int) and x[1] is Kind.CT


def lower(spec: Spec) -> Program | None:
    """The direct kernel for ``spec``, or ``None`` when its output slots do not all compute
    one formula (up to which elements they read, and reads past a padded input's end), it
    has no ciphertext input, or it has stages. A plaintext input that must move is made a
    ciphertext first."""
    if spec.stages or all(d.kind is not Kind.CT for d in spec.inputs):
        return None
    if len(spec.output_slots()) == 1:
        return _one_slot(spec, spec.output_slots()[0])
    reads = _aligned_reads(spec)
    if reads is None:
        return None
    template, by_slot = reads
    written = _written(spec, template, by_slot)
    if written is None or any(s != o for o, rs in by_slot.items() for _, s in rs):
        return written
    # Elementwise: the spec's polynomial factored (:mod:`porcupine.normalize`) may be cheaper
    # than the formula as the spec writes it.
    normal = factored_kernel(spec)
    if normal is None or _dearness(normal) >= _dearness(written):
        return written
    return normal


def factored_kernel(spec: Spec) -> Program | None:
    """The kernel of an elementwise spec's polynomial in factored form
    (:func:`porcupine.normalize.normalized_term`), or ``None`` when the spec is not
    elementwise, has stages or has no ciphertext input. Unverified, like :func:`lower`."""
    if spec.stages or all(d.kind is not Kind.CT for d in spec.inputs):
        return None
    factored = normalized_term(spec, reference(spec))
    if factored is None:
        return None
    leaves: dict[int, list[Read]] = {
        o: [(name, o) for name, _ in _reads(factored)] for o in spec.terms()
    }
    return _written(spec, factored, leaves)


def _dearness(program: Program) -> tuple[int, int, int]:
    """What makes a direct kernel dearer, in order: ct*ct products, depth, instructions."""
    c = counts(program)
    return (c.ct_ct_mults, c.mult_depth, c.instructions)


def _written(spec: Spec, template: Term, by_slot: dict[int, list[Read]]) -> Program | None:
    """``template`` written out, its reads gathered as ``by_slot`` says (:func:`_gather`)."""
    b = _Builder(spec)
    gathered: list[Operand] = []
    for p, (name, _) in enumerate(_reads(template)):
        value = _gather(b, spec, name, {o: r[p][1] for o, r in by_slot.items()})
        if value is None:
            return None
        gathered.append(value)
    return simplify(b.program(_evaluate(b, template, iter(gathered))))


def needs_movement(spec: Spec) -> bool:
    """Whether some read of the formula takes its element at a different offset from
    different output slots (a filter's tap, a matrix row), or reads past a padded input's
    end at some slots only: rotations alone, which move every slot by the same amount,
    cannot line that up; masks can. (Specs with stages are synthesized stage by stage and
    do not come here.)"""
    if spec.stages:
        return False
    reads = _aligned_reads(spec)
    if reads is None:
        return False
    offsets: defaultdict[int, set[int | None]] = defaultdict(set)
    for o, rs in reads[1].items():
        for p, (_, s) in enumerate(rs):
            offsets[p].add(None if s is None else normalize_amount(s - o, spec.n))
    return any(len(v) > 1 for v in offsets.values())


def _aligned_reads(spec: Spec) -> tuple[Term, dict[int, list[Read]]] | None:
    """The formula (the output's term with the most reads, the middle slot's if it is one of
    them) and, at every output slot that matters, the reads its term takes in the formula's
    order; ``None`` when some slot computes another formula."""
    terms = spec.terms()
    slots = sorted(terms)
    middle = slots[len(slots) // 2]
    counts = {o: len(_reads(t)) for o, t in terms.items()}
    template: Term | None = terms[max([middle, *slots], key=lambda o: counts[o])]
    padded = {d.name for d in spec.inputs if d.pad}
    for o in slots:  # a read that is 0 past a padded end at the slots chosen, read elsewhere
        template = None if template is None else _merged(template, terms[o], padded)
    if template is None:
        return None
    by_slot: dict[int, list[Read]] = {}
    for o in slots:
        matched = _match(template, terms[o], padded)
        if matched is None:
            return None
        by_slot[o] = matched
    return template, by_slot


def _merged(x: Term, y: Term, padded: set[str]) -> Term | None:
    """``x`` with a read of ``y`` wherever ``x`` has the 0 of a padded input's read past its
    end; ``None`` when the two are not one formula up to such reads."""
    if isinstance(y, InputSlot) and y.name in padded and x == ConstTerm(0):
        return y
    if isinstance(x, StageSlot):
        return x if x == y else None
    if isinstance(x, (InputSlot, ConstTerm)):
        return x if _match(x, y, padded) is not None else None
    if type(x) is not type(y):
        return None
    xs, ys = children(x), children(y)
    if len(xs) != len(ys):
        return None
    merged = []
    for a, c in zip(xs, ys, strict=True):
        m = _merged(a, c, padded)
        if m is None:
            return None
        merged.append(m)
    if isinstance(x, Add):
        return Add(tuple(merged))
    if isinstance(x, (Sub, Mul)):
        return type(x)(merged[0], merged[1])
    if isinstance(x, Negate):
        return Negate(merged[0])
    assert isinstance(x, Power) and isinstance(y, Power)
    return Power(merged[0], x.exponent) if x.exponent == y.exponent else None


def _match(x: Term, y: Term, padded: set[str]) -> list[Read] | None:
    """The reads of ``y`` where it is ``x``'s formula up to which elements it reads (a 0
    standing for a read of a padded input), in ``x``'s order; ``None`` when it is not."""
    if isinstance(x, InputSlot):
        if isinstance(y, InputSlot) and y.name == x.name:
            return [(y.name, y.slot)]
        return [(x.name, None)] if x.name in padded and y == ConstTerm(0) else None
    if isinstance(x, StageSlot):
        raise ValueError("stages are lowered one by one")
    if isinstance(x, ConstTerm) or type(x) is not type(y):
        return [] if x == y else None
    if isinstance(x, Power) and isinstance(y, Power) and x.exponent != y.exponent:
        return None
    xs, ys = children(x), children(y)
    if len(xs) != len(ys):
        return None
    out: list[Read] = []
    for a, c in zip(xs, ys, strict=True):
        got = _match(a, c, padded)
        if got is None:
            return None
        out += got
    return out


def _reads(t: Term) -> list[tuple[str, int]]:
    if isinstance(t, InputSlot):
        return [(t.name, t.slot)]
    if isinstance(t, StageSlot):
        raise ValueError("stages are lowered one by one")
    return [r for c in children(t) for r in _reads(c)]


def _gather(b: _Builder, spec: Spec, name: str, source: dict[int, int | None]) -> Operand | None:
    """A value holding, at each output slot ``o``, element ``source[o]`` of input ``name``
    (0 where that is ``None``)."""
    n, decl = spec.n, spec.input(name)
    here: Value = (name, decl.kind)
    by_offset: defaultdict[int, set[int]] = defaultdict(set)
    for o, s in source.items():
        if s is not None:
            by_offset[normalize_amount(s - o, n)].add(s)
    if not by_offset:
        return 0
    zero_at = {o for o, s in source.items() if s is None}
    if list(by_offset) == [0] and not zero_at:
        return here
    if decl.kind is Kind.PT:
        # No rotation or mask applies to a plaintext: moved, it is first made a ciphertext
        # (added to a ciphertext of zeros), at one addition's noise.
        here = b.ciphertext(here)
    every = set(range(decl.layout.size)) if decl.zero_outside else set(range(n))
    if len(set(source.values())) == 1 and n & (n - 1) == 0 and len(source) > 1 and not zero_at:
        # One element everywhere: mask it, then add up all slots.
        (s,) = set().union(*by_offset.values())
        return b.op(Opcode.SUM, b.op(Opcode.MUL_CP, here, b.const(_mask({s}, n))), amount=n)
    pieces = []
    for offset, needed in sorted(by_offset.items()):
        # Output slots that take another offset, or 0, must get nothing from this piece
        # (other slots are don't-care): unless what lands there is 0 anyway, mask.
        elsewhere = {o for o, s in source.items() if s is None or (s - o - offset) % n}
        landing = {(o + offset) % n for o in elsewhere}
        masked = bool(landing & every)
        part = b.op(Opcode.MUL_CP, here, b.const(_mask(needed, n))) if masked else here
        pieces.append(part if offset == 0 else b.op(Opcode.ROT, part, amount=offset))
    total = pieces[0]
    for p in pieces[1:]:
        total = b.op(Opcode.ADD_CC, total, p)
    return total


def _mask(slots: set[int], n: int) -> tuple[int, ...]:
    return tuple(1 if s in slots else 0 for s in range(n))


def _evaluate(b: _Builder, t: Term, leaves: Iterator[Operand]) -> Operand:
    """``t`` slot by slot, its reads taken in order from ``leaves``."""

    def go(x: Term) -> Operand:
        if isinstance(x, InputSlot):
            return next(leaves)
        if isinstance(x, ConstTerm):
            return x.value % T
        if isinstance(x, Add):
            acc = go(x.parts[0])
            for p in x.parts[1:]:
                acc = b.binary(Family.ADD, acc, go(p))
            return acc
        if isinstance(x, Sub):
            return b.binary(Family.SUB, go(x.left), go(x.right))
        if isinstance(x, Mul):
            return b.binary(Family.MUL, go(x.left), go(x.right))
        if isinstance(x, Negate):
            return b.negate(go(x.operand))
        assert isinstance(x, Power)
        base = go(x.base)
        out = base
        for _ in range(x.exponent - 1):
            out = b.binary(Family.MUL, out, base)
        return out

    return go(t)


# --- one output slot (a scalar): sums of shifted copies by one EvalSum --------------------


def _one_slot(spec: Spec, o: int) -> Program:
    """The direct kernel of a spec with one output slot ``o``: each read rotated to ``o``,
    except that a sum whose terms are one formula read at shifted elements (``sum(j in
    0..n) a[j] * b[j]``) is that formula computed once in every slot, masked to the slots
    its terms sit in, and added up by one ``EvalSum``: one rotation per read of the formula
    instead of one per term."""
    b = _Builder(spec)
    n = spec.n

    def read(x: InputSlot) -> Operand:
        here: Value = (x.name, spec.input(x.name).kind)
        amount = normalize_amount(x.slot - o, n)
        if amount == 0:
            return here
        return b.op(Opcode.ROT, b.ciphertext(here), amount=amount)

    def go(x: Term, fold: bool) -> Operand:
        # fold: a value right at slot o is enough. Inside a folded sum's formula a value
        # must be right in every slot o + d, for the term shifted by d: no EvalSum there.
        if isinstance(x, InputSlot):
            return read(x)
        if isinstance(x, StageSlot):
            raise ValueError("stages are lowered one by one")
        if isinstance(x, ConstTerm):
            return x.value % T
        if isinstance(x, Add):
            acc: Operand = 0
            for rep, deltas in _families(x.parts) if fold else [(p, [0]) for p in x.parts]:
                value = go(rep, fold=len(deltas) == 1 and fold)
                if len(deltas) > 1:
                    value = _sum_of_shifts(b, value, {(o + d) % n for d in deltas}, n)
                acc = b.binary(Family.ADD, acc, value)
            return acc
        if isinstance(x, Sub):
            return b.binary(Family.SUB, go(x.left, fold), go(x.right, fold))
        if isinstance(x, Mul):
            return b.binary(Family.MUL, go(x.left, fold), go(x.right, fold))
        if isinstance(x, Negate):
            return b.negate(go(x.operand, fold))
        assert isinstance(x, Power)
        base = go(x.base, fold)
        out = base
        for _ in range(x.exponent - 1):
            out = b.binary(Family.MUL, out, base)
        return out

    return simplify(b.program(go(spec.terms()[o], fold=True)))


def _sum_of_shifts(b: _Builder, value: Operand, slots: set[int], n: int) -> Operand:
    """The sum of ``value`` over ``slots`` (masked unless that is every slot), in every slot."""
    if isinstance(value, int):
        return value * len(slots) % T
    ct = b.ciphertext(value)
    if len(slots) < n:
        ct = b.op(Opcode.MUL_CP, ct, b.const(_mask(slots, n)))
    return b.op(Opcode.SUM, ct, amount=n)


def _families(parts: tuple[Term, ...]) -> list[tuple[Term, list[int]]]:
    """``parts`` grouped into terms that are one formula read at elements shifted by
    distinct amounts: each group's first term and the shifts of the group (0 first)."""
    groups: list[tuple[Term, list[int]]] = []
    for p in parts:
        for rep, deltas in groups:
            d = _shift(rep, p)
            if d is not None and d not in deltas:
                deltas.append(d)
                break
        else:
            groups.append((p, [0]))
    return groups


def _shift(x: Term, y: Term) -> int | None:
    """The amount ``d`` such that ``y`` is ``x`` with every read at element + ``d`` (the
    same input), or ``None`` (also when ``x`` reads nothing)."""
    found: set[int] = set()

    def same(a: Term, c: Term) -> bool:
        if isinstance(a, InputSlot):
            if not isinstance(c, InputSlot) or c.name != a.name:
                return False
            found.add(c.slot - a.slot)
            return len(found) == 1
        if type(a) is not type(c):
            return False
        if isinstance(a, (ConstTerm, StageSlot)):
            return a == c
        if isinstance(a, Power) and isinstance(c, Power) and a.exponent != c.exponent:
            return False
        xs, ys = children(a), children(c)
        return len(xs) == len(ys) and all(same(u, v) for u, v in zip(xs, ys, strict=True))

    return found.pop() if same(x, y) and found else None
