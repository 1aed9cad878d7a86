"""The stencil terms are sound (porcupine.search.stencil_circuits).

rotated_paths, a term of the lower bound: a kernel with one rotation group of exactly the
read's amounts and no multiply needs that many additions; checked against random correct
kernels of that kind, directly and through the bound. stencil_circuit, the exhaustive
check of the scalar model (a multiply by any plaintext): it must never deny what a random
program of its model computes with as many additions, nor miss that program's amounts.
Kept apart from tests/test_bounds_sound.py (over 500 lines), whose helpers it uses.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from porcupine.search.stencil_circuits import (
    Stencil,
    rotated_paths,
    stencil_adds,
    stencil_circuit,
    stencil_groups,
    stencil_of,
)
from quill.ir import Const, Instr, Param, Program
from quill.ops import Kind, Opcode
from quill.slots import T
from quill.spec import load_spec, parse_spec
from quill.transform import live_instructions
from quill.verify import reference
from tests.test_bounds_sound import KERNELS, _holds, _over_x

Model = tuple[int, ...]
N = 64
Case = tuple[Stencil, tuple[tuple[int, ...], ...], int, bool]
STEPS = 20_000  # the search's budget here: it may give up (None), never deny


def draw_groups(draw: st.DrawFn) -> tuple[list[list[int]], tuple[int, ...]]:
    """One group of 1 to 4 amounts within 3 of 0, or two groups (such amounts, then
    multiples of 8), so that every tuple of choices has its own offset mod N; and the
    offsets the tuples reach, 0 first."""
    small = [1, 2, 3, N - 1, N - 2, N - 3]
    if draw(st.booleans()):
        groups = [draw(st.lists(st.sampled_from(small), min_size=1, max_size=4, unique=True))]
    else:
        eights = [8, 16, N - 8, N - 16]
        groups = [draw(st.lists(st.sampled_from(small), min_size=1, max_size=2, unique=True))]
        groups.append(draw(st.lists(st.sampled_from(eights), min_size=1, max_size=2, unique=True)))
    sums = [0]
    for g in groups:
        sums = [(s + a) % N for s in sums for a in (0, *g)]
    offsets = (0, *sorted(set(sums) - {0}))
    assert len(offsets) == len(sums)  # every tuple at its own offset
    return groups, offsets


@st.composite
def scalar_programs(draw: st.DrawFn) -> Case:
    """A random program of the scalar model: one group of 1 to 4 amounts, or two groups
    (amounts within 3 of 0, then multiples of 8, so that every tuple of choices has its own
    offset mod 64), additions, differences, doublings, negations and at most one multiply
    by pi anywhere; its stencil (its output's weights at a random pi, all of them nonzero),
    its groups, its additions and whether it multiplies."""
    groups, offsets = draw_groups(draw)
    width = len(offsets)
    index = {o: i for i, o in enumerate(offsets)}
    values: list[Model] = [(1,) + (0,) * (2 * width - 1)]
    adds, multiplied = 0, False

    def step() -> None:
        nonlocal adds, multiplied
        kind = draw(st.sampled_from(["add", "sub", "neg", "mul"]))
        a = draw(st.sampled_from(values))
        if kind == "mul" and not multiplied and not any(a[width:]):
            values.append((0,) * width + a[:width])
            multiplied = True
            return
        b = draw(st.sampled_from(values))
        if kind == "neg":
            values.append(tuple(-p for p in a))
        elif kind == "sub":
            values.append(tuple(p - q for p, q in zip(a, b, strict=True)))
        else:
            values.append(tuple(p + q for p, q in zip(a, b, strict=True)))
        adds += 1

    made: list[Model] = [values[0]]  # x and the rotations: all must reach the output
    for g in groups:
        for _ in range(draw(st.integers(0, 1))):
            step()
        c = draw(st.sampled_from(values))
        if len(made) > 1:  # a later group rotates x and the rotations before it
            c = made[0]
            for v in made[1:]:
                c = tuple(p + q for p, q in zip(c, v, strict=True))
                adds += 1
        for amount in g:
            moved = [0] * (2 * width)
            for i, o in enumerate(offsets):
                j = index[(o + amount) % N] if c[i] or c[width + i] else 0
                moved[j] += c[i]
                moved[width + j] += c[width + i]
            values.append(tuple(moved))
            made.append(values[-1])
    for _ in range(draw(st.integers(0, 3))):
        step()
    out = values[-1]
    for v in made:  # add those the output does not read yet, and some that it does
        unread = any(
            (v[i] or v[width + i]) and not (out[i] or out[width + i]) for i in range(width)
        )
        if v != out and (unread or draw(st.booleans()) or not any(out[:width])):
            sign = draw(st.sampled_from([1, -1]))
            out = tuple(p + sign * q for p, q in zip(out, v, strict=True))
            adds += 1
    pi = draw(st.integers(0, T - 1))
    weights = tuple((out[i] + out[width + i] * pi) % T for i in range(width))
    assume(all(weights))
    centred = tuple(w - T if w > T // 2 else w for w in weights)
    chosen = tuple(tuple(sorted(g, key=offsets.index)) for g in groups)
    return Stencil(offsets, centred, N), chosen, adds, multiplied


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scalar_programs())
def test_stencil_circuit_never_denies_a_program_of_its_model(case: Case) -> None:
    """What a random program computes with some additions is never denied at that many
    (None: the search gave up, no claim), the count claimed is not above them, and its
    amounts are among those stencil_groups offers."""
    stencil, groups, adds, multiplied = case
    assert stencil_circuit(stencil, groups, adds, multiplied, STEPS) is not False
    assert stencil_adds(stencil, [groups], multiplied, 0, steps=STEPS) <= adds
    shape = tuple(len(g) for g in groups)
    choices = stencil_groups(stencil, shape)
    assert choices is not None
    offered = {frozenset(map(frozenset, c)) for c in choices}
    assert frozenset(map(frozenset, groups)) in offered


def _smooth5(n: int) -> Stencil | None:
    text = (KERNELS / "corpus" / "smooth5.spec").read_text()
    return stencil_of(reference(parse_spec(text.replace("n = 16", f"n = {n}"))))


def test_smooth5_needs_seven_additions_without_a_multiply() -> None:
    """rotated_paths at smooth5 (where unrotated_binary counts 6); its recorded kernel,
    2 (2 (x + r1 + r-1) + x) + r2 + r-2, has seven."""
    stencil = stencil_of(reference(load_spec(KERNELS / "corpus" / "smooth5.spec")))
    assert stencil is not None
    assert stencil.offsets == (0, 1, 2, 14, 15) and stencil.weights == (6, 4, 1, 1, 4)
    assert rotated_paths(stencil) == 7
    assert stencil_groups(stencil, (4,)) == [((1, 2, 14, 15),)]


@pytest.mark.slow
def test_smooth5_has_no_kernel_with_four_additions_and_a_multiply() -> None:
    """The exhaustive check (5 to 13 s here): the bound's cheapest plan for smooth5 (one group
    of four, four additions and a multiply by any plaintext, 611 us) holds no kernel."""
    stencil = stencil_of(reference(load_spec(KERNELS / "corpus" / "smooth5.spec")))
    assert stencil is not None and stencil.one
    assert stencil_circuit(stencil, ((1, 2, 14, 15),), 4, True, 10**6) is False


def test_the_scalar_model_needs_an_interior() -> None:
    """With any plaintext, the model needs slots that read the neighbourhood of one: for
    smooth5's one group, (a) and (b) hold at n = 8 (slots 2 to 5 read their five offsets);
    for several groups R - R must lie within M - M: from n = 16, not at 8."""
    assert (s8 := _smooth5(8)) is not None and s8.one and not s8.many
    assert (s16 := _smooth5(16)) is not None and s16.many


@st.composite
def one_group(draw: st.DrawFn, scale: bool = True) -> tuple[Program, str]:
    """A random linear kernel over x with one rotation group (of x or of a multiple of x)
    whose every amount and x itself reach the output, summed with random signs, doublings
    and at most one multiply by a constant: the kernels stencil_plans prices, and the spec
    its semantics is (cyclic, so every slot matches)."""
    n = draw(st.sampled_from([8, 16]))
    rng = random.Random(draw(st.integers(0, 2**32)))
    consts: list[Const] = []
    body: list[Instr] = []
    source = "x"
    before = draw(st.sampled_from(["x", "double", "neg", "scale"][: 4 if scale else 3]))
    if before == "scale":
        consts.append(Const("k0", (draw(st.integers(-6, 6)),)))
        body.append(Instr("c", Opcode.MUL_CP, ("x", "k0")))
        source = "c"
    elif before != "x":
        args = ("x",) if before == "neg" else ("x", "x")
        body.append(Instr("c", Opcode.NEG if before == "neg" else Opcode.ADD_CC, args))
        source = "c"
    amounts = draw(st.lists(st.integers(1, n - 1), min_size=1, max_size=4, unique=True))
    terms = ["x"]
    for j, amount in enumerate(amounts):
        body.append(Instr(f"r{j}", Opcode.ROT, (source,), amount))
        terms.append(f"r{j}")
    rng.shuffle(terms)
    acc, scaled = terms[0], before == "scale" or not scale
    for i, t in enumerate([*terms[1:], *draw(st.lists(st.sampled_from(terms), max_size=2))]):
        kind = draw(st.sampled_from(["add", "sub", "double", "scale"]))
        if kind == "double":
            body.append(Instr(f"d{i}", Opcode.ADD_CC, (acc, acc)))
            acc = f"d{i}"
        elif kind == "scale" and not scaled:
            consts.append(Const(f"k{len(consts)}", (draw(st.integers(-6, 6)),)))
            body.append(Instr(f"m{i}", Opcode.MUL_CP, (acc, consts[-1].name)))
            acc, scaled = f"m{i}", True
        op = Opcode.SUB_CC if kind == "sub" else Opcode.ADD_CC
        body.append(Instr(f"s{i}", op, (acc, t)))
        acc = f"s{i}"
    program = Program("group", (Param("x", Kind.CT),), tuple(consts), tuple(body), acc)
    return program, _over_x("group", n, program)


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(one_group())
def test_no_one_group_kernel_beats_the_bound(case: tuple[Program, str]) -> None:
    """The bound (with the stencil term) is at or below every such kernel."""
    _holds(*case)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(one_group(scale=False))
def test_rotated_paths_is_below_every_kernel_it_speaks_of(case: tuple[Program, str]) -> None:
    """A kernel with one group of exactly the read's amounts and no multiply has at least
    rotated_paths two-operand instructions."""
    program, text = case
    ref = reference(parse_spec(text))
    stencil = stencil_of(ref, uniform=True)
    amounts = {(i.amount or 0) % ref.spec.n for i in program.body if i.opcode is Opcode.ROT}
    assume(stencil is not None and set(stencil.offsets[1:]) == amounts)
    assert stencil is not None
    live = live_instructions(program)
    binary = sum(1 for i in live if i.opcode in (Opcode.ADD_CC, Opcode.SUB_CC))
    assert binary >= rotated_paths(stencil), (binary, stencil)


@st.composite
def symmetric_programs(draw: st.DrawFn) -> Case:
    """A random program of the scalar model whose every value is symmetric (x_o and x_-o
    alike): one group of amounts +-a (and +-b), the pairs r_a + r_-a summed first, then
    additions, differences and doublings of symmetric values and at most one multiply by
    pi; so its stencil and groups are their own mirror images, where stencil_circuit takes
    a state and its mirror image as one."""
    pairs = draw(st.lists(st.sampled_from([1, 2, 3]), min_size=1, max_size=2, unique=True))
    group = tuple(a % N for p in pairs for a in (p, -p))
    offsets = (0, *sorted(group))
    width = len(offsets)
    index = {o: i for i, o in enumerate(offsets)}

    def unit(o: int) -> Model:
        return tuple(int(i == index[o]) for i in range(width)) + (0,) * width

    def plus(a: Model, b: Model, sign: int = 1) -> Model:
        return tuple(p + sign * q for p, q in zip(a, b, strict=True))

    values: list[Model] = [unit(0)]
    adds = 0
    for p in pairs:  # every rotation reaches the output through its pair
        values.append(plus(unit(p % N), unit(-p % N)))
        adds += 1
    multiplied = False
    for _ in range(draw(st.integers(0, 3))):
        a, b = draw(st.sampled_from(values)), draw(st.sampled_from(values))
        kind = draw(st.sampled_from(["add", "sub", "mul"]))
        if kind == "mul" and not multiplied and not any(a[width:]):
            values.append((0,) * width + a[:width])
            multiplied = True
            continue
        values.append(plus(a, b, -1 if kind == "sub" and a != b else 1))  # a - a is 0
        adds += 1
    out = values[-1]
    for v in values[:-1]:
        if draw(st.booleans()):
            out = plus(out, v, draw(st.sampled_from([1, -1])))
            adds += 1
    for v in values[: 1 + len(pairs)]:  # x and each pair must reach the output
        if not any(out[i] or out[width + i] for i in range(width) if v[i]):
            out = plus(out, v)
            adds += 1
    pi = draw(st.integers(0, T - 1))
    weights = tuple((out[i] + out[width + i] * pi) % T for i in range(width))
    assume(all(weights))
    centred = tuple(w - T if w > T // 2 else w for w in weights)
    return Stencil(offsets, centred, N), (group,), adds, multiplied


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(symmetric_programs())
def test_stencil_circuit_never_denies_a_symmetric_program(case: Case) -> None:
    """What a random symmetric program computes is never denied at its additions (None:
    the search gave up, no claim): the check's mirror images, which the other property
    rarely meets, lose no program."""
    stencil, groups, adds, multiplied = case
    assert stencil_circuit(stencil, groups, adds, multiplied, STEPS) is not False
