"""The splat term is sound (porcupine.search.splat_circuits).

splat_circuit, the exhaustive search over integer weights with one multiply by a known
constant kappa: it must never deny what a random program of its model computes with as
many additions, and splat_adds never counts more. Through the bound: random kernels with
one or two rotation groups of x and a multiply by a splat constant (the sketch's kind),
each against the bound over a sketch that holds it (its constant among the sketch's).
smooth5's and gaussian3's claims themselves, which end their searches.
"""

from __future__ import annotations

import random
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from porcupine.search import splat_circuits
from porcupine.search.bounds import floor_for, lower_bound
from porcupine.search.cegis import ring_for
from porcupine.search.restrictions import Restrictions, derive
from porcupine.search.splat_circuits import splat_adds, splat_circuit
from porcupine.search.stencil_circuits import Stencil, stencil_groups, stencil_of
from quill.cost import DEFAULT_TABLE, Objective, objective, row_us
from quill.ir import Const, Instr, Param, Program
from quill.ops import Kind, Opcode
from quill.slots import T
from quill.spec import load_spec, parse_spec
from quill.verify import reference
from tests.test_bounds_sound import KERNELS, _over_x
from tests.test_bounds_stencil import draw_groups

Vector = tuple[int, ...]
N = 64
STEPS = 2_000  # the search's budget here: it may give up (None), never deny
Case = tuple[Stencil, tuple[tuple[int, ...], ...], int, int]


@st.composite
def splat_programs(draw: st.DrawFn) -> Case:
    """A random program of the model: one group of 1 to 4 amounts, or two groups (amounts
    within 3 of 0, then multiples of 8: every tuple of choices at its own offset mod 64),
    additions, differences, doublings, negations and at most one multiply by kappa; its
    stencil (its output's weights, all nonzero), groups, additions and kappa."""
    kappa = draw(st.sampled_from([2, 3, 4, 5, 6, -2, -4, 9]))
    groups, offsets = draw_groups(draw)
    width = len(offsets)
    index = {o: i for i, o in enumerate(offsets)}
    values: list[Vector] = [(1,) + (0,) * (width - 1)]
    adds, multiplied = 0, False

    def plus(a: Vector, b: Vector, sign: int = 1) -> Vector:
        return tuple(p + sign * q for p, q in zip(a, b, strict=True))

    def step() -> None:
        nonlocal adds, multiplied
        kind = draw(st.sampled_from(["add", "sub", "neg", "mul"]))
        a = draw(st.sampled_from(values))
        if kind == "mul" and not multiplied:
            values.append(tuple(kappa * p for p in a))
            multiplied = True
            return
        if kind == "neg":
            values.append(tuple(-p for p in a))
            return
        values.append(plus(a, draw(st.sampled_from(values)), -1 if kind == "sub" else 1))
        adds += 1

    made: list[Vector] = [values[0]]  # x and the rotations: all must reach the output
    for g in groups:
        for _ in range(draw(st.integers(0, 1))):
            step()
        c = draw(st.sampled_from(values))
        if len(made) > 1:  # a later group rotates x and the rotations before it
            c = made[0]
            for v in made[1:]:
                c = plus(c, v)
                adds += 1
        for amount in g:
            moved = [0] * width
            for i, o in enumerate(offsets):
                if c[i]:
                    moved[index[(o + amount) % N]] += c[i]
            values.append(tuple(moved))
            made.append(values[-1])
    for _ in range(draw(st.integers(0, 2))):
        step()
    out = values[-1]
    for v in made:  # add those the output does not read yet, and some that it does
        unread = any(v[i] and not out[i] for i in range(width))
        if v != out and (unread or draw(st.booleans())):
            out = plus(out, v, draw(st.sampled_from([1, -1])))
            adds += 1
    weights = tuple(w % T for w in out)
    assume(all(weights))
    centred = tuple(w - T if w > T // 2 else w for w in weights)
    chosen = tuple(tuple(sorted(g, key=offsets.index)) for g in groups)
    return Stencil(offsets, centred, N), chosen, adds, kappa


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(splat_programs())
def test_splat_circuit_never_denies_a_program_of_its_model(case: Case) -> None:
    """What a random program computes with some additions and a multiply by kappa is never
    denied at that many (None: the search gave up, no claim), and splat_adds, which counts
    over every choice of amounts stencil_groups offers, claims no more."""
    stencil, groups, adds, kappa = case
    assert splat_circuit(stencil, groups, adds, kappa, STEPS) is not False
    shape = tuple(len(g) for g in groups)
    choices = stencil_groups(stencil, shape)
    assert choices is not None  # equal sizes in one order: compared as sets
    assert frozenset(map(frozenset, groups)) in {frozenset(map(frozenset, c)) for c in choices}
    assert splat_adds(stencil, shape, (kappa,), adds, 1, STEPS) == adds


@st.composite
def splat_kernels(draw: st.DrawFn) -> tuple[Program, int, int]:
    """A random linear kernel over x: one group of rotations (of x, 2x or kappa x), or two
    (the second rotating a sum of x and the first's rotations), summed with random signs
    and doublings, with a multiply by the splat constant kappa before, between or after
    (or none); its n and kappa."""
    kappa = draw(st.sampled_from([2, 3, 4, 6]))
    two = draw(st.booleans())
    n = 64 if two else draw(st.sampled_from([8, 16]))
    rng = random.Random(draw(st.integers(0, 2**32)))
    consts = [Const("k", (kappa,))]
    body: list[Instr] = []
    where = draw(st.sampled_from(["none", "before", "between", "after"]))
    counter = [0]

    def fresh(op: Opcode, args: tuple[str, ...], amount: int | None = None) -> str:
        counter[0] += 1
        body.append(Instr(f"v{counter[0]}", op, args, amount))
        return f"v{counter[0]}"

    def combine(terms: list[str], scale: bool) -> str:
        rng.shuffle(terms)
        acc = terms[0]
        for t in terms[1:]:
            if draw(st.integers(0, 3)) == 0:
                acc = fresh(Opcode.ADD_CC, (acc, acc))
            if scale and draw(st.booleans()):
                acc, scale = fresh(Opcode.MUL_CP, (acc, "k")), False
            acc = fresh(draw(st.sampled_from([Opcode.ADD_CC, Opcode.SUB_CC])), (acc, t))
        return fresh(Opcode.MUL_CP, (acc, "k")) if scale else acc

    source = "x"
    if where == "before":
        source = fresh(Opcode.MUL_CP, ("x", "k"))
    elif draw(st.booleans()):
        source = fresh(Opcode.ADD_CC, ("x", "x"))
    small = draw(st.lists(st.sampled_from([1, 2, 3, n - 1, n - 2]), min_size=1, max_size=4))
    first = [fresh(Opcode.ROT, (source,), a) for a in sorted(set(small))[: 2 if two else 4]]
    acc = combine(["x", *first], where == "between" or (where == "after" and not two))
    if two:
        eights = draw(st.lists(st.sampled_from([8, 16, n - 8]), min_size=1, max_size=2))
        second = [fresh(Opcode.ROT, (acc,), a) for a in sorted(set(eights))]
        acc = combine([acc, *second], where == "after")
    program = Program("splat", (Param("x", Kind.CT),), tuple(consts), tuple(body), acc)
    return program, n, kappa


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(splat_kernels())
def test_no_splat_kernel_beats_the_bound_over_its_sketch(case: tuple[Program, int, int]) -> None:
    """The bound over a sketch's kernels (with the splat term) is at or below every kernel
    of that sketch: here one with the kernel's constant, ops and rotation amounts."""
    program, n, kappa = case
    ref = reference(parse_spec(_over_x("splat", n, program)))
    assume(any(ref.polys.values()))
    derived = derive(ref)
    amounts = {i.amount for i in program.body if i.opcode is Opcode.ROT and i.amount}
    rotations = tuple(sorted(set(derived.rotations) | {a % n for a in amounts}))
    ops = (Opcode.ADD_CC, Opcode.SUB_CC, Opcode.MUL_CP)
    sketch = Restrictions(ops, rotations, (kappa,), 0, 1)
    ring = ring_for(sketch, n)
    with patch.object(splat_circuits, "SPLAT_STEPS", STEPS):  # may give up, never deny
        floor = floor_for(ref, sketch, in_sketch=True)
        bound = lower_bound(floor, 0, row_us(DEFAULT_TABLE, ring), Objective.LATENCY)
    assert bound <= objective(program, ring, DEFAULT_TABLE, Objective.LATENCY)


def _corpus(name: str, params: dict[str, int]) -> Stencil:
    text = (KERNELS / "corpus" / f"{name}.spec").read_text()
    for key, value in params.items():
        text = text.replace(f"param {key} = ", f"param {key} = {value} #")
    stencil = stencil_of(reference(parse_spec(text)), uniform=True)
    assert stencil is not None
    return stencil


def test_smooth5_needs_six_additions_with_a_splat_multiply() -> None:
    """smooth5's sketch (constants 4 and 6), one group of four and one multiply: four and
    five additions are denied at its instance (n = 8) and at full size (the same search)."""
    for n in (8, 16):
        stencil = _corpus("smooth5", {"n": n})
        (groups,) = stencil_groups(stencil, (4,)) or [()]
        for kappa in (4, 6):
            assert splat_circuit(stencil, groups, 5, kappa) is False
        assert splat_adds(stencil, (4,), (4, 6), 4) == 6


def test_gaussian3_needs_five_additions_with_a_splat_multiply() -> None:
    """gaussian3's sketch (constants 2 and 4), two groups of two and one multiply: four
    additions are denied (at its 4x4 instance); five with a multiply by 2 are not
    (2 (r8 + r-8 + 2x) ... needs five: the bound asks no more than it counts)."""
    stencil = _corpus("gaussian3", {"w": 4, "h": 4})
    (groups,) = stencil_groups(stencil, (2, 2)) or [()]
    assert splat_adds(stencil, (2, 2), (2, 4), 4, 1) == 5
    assert splat_circuit(stencil, groups, 5, 2) is True


def test_the_in_sketch_bounds_meet_the_kernels() -> None:
    """The bound over each sketch's kernels is its kernel's latency (632 and 816 us at the
    search's set), so the search bounded by the kernel ends at once; over every kernel it
    stays 611 and 811 (a plaintext multiply by any value is not counted)."""
    for name, kernel in (("smooth5", 632), ("gaussian3", 816)):
        spec = load_spec(KERNELS / "corpus" / f"{name}.spec")
        ref = reference(spec)
        sketch = derive(ref)
        row = row_us(DEFAULT_TABLE, ring_for(sketch, spec.n))
        inside = lower_bound(floor_for(ref, sketch, in_sketch=True), 0, row, Objective.LATENCY)
        anywhere = lower_bound(floor_for(ref, sketch), 0, row, Objective.LATENCY)
        assert inside == (kernel,)
        assert anywhere < inside


def test_the_cuts_keep_the_least_programs() -> None:
    """Least programs that sit on each cut's edge (a multiply by 1 is of no use to them):
    2 (x + r1) + r2 ends with a value of two paths (F = 1; doubling x before the rotations
    would double r2 too), 4 x + r1 needs its doublings to the last, and neither is found
    with an addition fewer."""
    double = Stencil((0, 1, 2), (2, 2, 1), 8)
    assert splat_circuit(double, ((1, 2),), 3, 1) is True
    assert splat_circuit(double, ((1, 2),), 2, 1) is False
    doublings = Stencil((0, 1), (4, 1), 8)
    assert splat_circuit(doublings, ((1,),), 3, 1) is True
    assert splat_circuit(doublings, ((1,),), 2, 1) is False
