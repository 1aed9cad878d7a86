"""The two-group stencil term is sound (porcupine.search.stencil_paths.crossed_paths).

A kernel whose rotations are exactly two groups offering one tuple per offset of its read,
with no multiply, has at least crossed_paths two-operand instructions: checked against
random correct kernels of that kind (separable ones among them, which meet it), directly
and through the bound, and against the exhaustive check of the scalar model (no program
with fewer). Kept apart from tests/test_bounds_stencil.py; it uses
tests/test_bounds_sound.py's helpers as that module does.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from porcupine.search.stencil_circuits import Stencil, stencil_circuit, stencil_groups, stencil_of
from porcupine.search.stencil_paths import crossed_paths
from quill.ir import Const, Instr, Param, Program
from quill.ops import Kind, Opcode
from quill.spec import load_spec
from quill.transform import live_instructions
from quill.verify import reference
from tests.test_bounds_sound import KERNELS, _holds, _over_x

N = 64


@st.composite
def two_groups(draw: st.DrawFn, scale: bool = False) -> tuple[Program, str, tuple[int, int]]:
    """A random linear kernel over x (n = 64): a source c1 (x, 2x, -x or x +- x's
    doubling), a first group of one or two amounts within 3 of 0, a sum c2 of x (or c1)
    and every rotation of c1 (random signs, doublings, repeats), a second group of one or
    two multiples of 8 of c2, and the output summing c2 and its every rotation with random
    signs, doublings and maybe an earlier value. Every tuple of choices has its own offset.
    With ``scale``, maybe one multiply by a constant (-6 to 6): c1, or in the sums. The
    spec is its semantics (cyclic: every slot matches); also the groups' sizes."""
    first = draw(
        st.lists(
            st.sampled_from([1, 2, 3, N - 1, N - 2, N - 3]), min_size=1, max_size=2, unique=True
        )
    )
    second = draw(
        st.lists(st.sampled_from([8, 16, N - 8, N - 16]), min_size=1, max_size=2, unique=True)
    )
    body: list[Instr] = []
    consts: list[Const] = []
    count = [0]

    def new(op: Opcode, args: tuple[str, ...], amount: int | None = None) -> str:
        count[0] += 1
        body.append(Instr(f"v{count[0]}", op, args, amount))
        return f"v{count[0]}"

    def chain(terms: list[str], extras: list[str]) -> str:
        acc = terms[0]
        for t in [*terms[1:], *draw(st.lists(st.sampled_from(extras), max_size=1))]:
            if draw(st.integers(0, 4)) == 0:
                acc = new(Opcode.ADD_CC, (acc, acc))
            if scale and not consts and draw(st.integers(0, 3)) == 0:
                consts.append(Const("k", (draw(st.integers(-6, 6)),)))
                acc = new(Opcode.MUL_CP, (acc, "k"))
            op = Opcode.SUB_CC if draw(st.integers(0, 3)) == 0 else Opcode.ADD_CC
            acc = new(op, (acc, t))
        return acc

    c1 = draw(st.sampled_from(["x", "double", "neg", "scale"][: 4 if scale else 3]))
    if c1 == "scale":
        consts.append(Const("k", (draw(st.integers(-6, 6)),)))
        c1 = new(Opcode.MUL_CP, ("x", "k"))
    elif c1 == "double":
        c1 = new(Opcode.ADD_CC, ("x", "x"))
    elif c1 == "neg":
        c1 = new(Opcode.NEG, ("x",))
    rot1 = [new(Opcode.ROT, (c1,), a) for a in first]
    base = draw(st.sampled_from(["x", c1]))
    terms = draw(st.permutations([base, *rot1]))
    c2 = chain(terms, [base, *rot1])
    rot2 = [new(Opcode.ROT, (c2,), b) for b in second]
    extras = ["x", *rot1, c2]
    out = chain(draw(st.permutations([*rot2, c2])), extras)  # c2 unrotated: row b = 0
    program = Program("two", (Param("x", Kind.CT),), tuple(consts), tuple(body), out)
    return program, _over_x("two", N, program), (len(first), len(second))


def _binary(program: Program) -> int:
    return sum(1 for i in live_instructions(program) if i.opcode in (Opcode.ADD_CC, Opcode.SUB_CC))


def _stencil(program: Program) -> Stencil | None:
    """The output's weights by offset (the slot semantics ``rot(a, r)[k] = a[k + r]``, the
    spec being cyclic), as :func:`stencil_of` reads them from the spec, without writing
    the spec out; None when 0 is not read."""
    value: dict[str, dict[int, int]] = {"x": {0: 1}}
    for i in program.body:
        a = value[i.args[0]]
        if i.opcode is Opcode.ROT:
            value[i.dest] = {(o + (i.amount or 0)) % N: c for o, c in a.items()}
        elif i.opcode is Opcode.NEG:
            value[i.dest] = {o: -c for o, c in a.items()}
        else:
            sign = -1 if i.opcode is Opcode.SUB_CC else 1
            b, out = value[i.args[1]], dict(a)
            for o, c in b.items():
                out[o] = out.get(o, 0) + sign * c
            value[i.dest] = {o: c for o, c in out.items() if c}
    read = value[program.result]
    if 0 not in read:
        return None
    offsets = (0, *sorted(set(read) - {0}))
    return Stencil(offsets, tuple(read[o] for o in offsets), N)


@pytest.mark.slow
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(two_groups())
def test_crossed_paths_is_below_every_kernel_it_speaks_of(
    case: tuple[Program, str, tuple[int, int]],
) -> None:
    """A kernel with exactly two groups of the read's tuples and no multiply has at least
    crossed_paths two-operand instructions."""
    program, _, shape = case
    stencil = _stencil(program)
    assume(stencil is not None and len(stencil.offsets) == (1 + shape[0]) * (1 + shape[1]))
    assert stencil is not None
    amounts = {(i.amount or 0) % N for i in program.body if i.opcode is Opcode.ROT}
    choices = stencil_groups(stencil, shape) or []
    assume(any(set().union(*map(set, c)) == amounts for c in choices))
    assert _binary(program) >= crossed_paths(stencil, shape), (_binary(program), stencil)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(two_groups(scale=True))
def test_no_two_group_kernel_beats_the_bound(case: tuple[Program, str, tuple[int, int]]) -> None:
    """The bound (with the term) is at or below every such kernel, and every such kernel
    with a multiply by a constant."""
    _holds(case[0], case[1])


def test_gaussian3_needs_six_additions_without_a_multiply() -> None:
    """gaussian3 with two groups of two ({+-1}, {+-8}) and no multiply: six additions (its
    kernel's count; the plain fan-in counts four)."""
    stencil = stencil_of(reference(load_spec(KERNELS / "corpus" / "gaussian3.spec")), uniform=True)
    assert stencil is not None
    assert stencil_groups(stencil, (2, 2)) == [((1, 63), (8, 56))]
    assert crossed_paths(stencil, (2, 2)) == 6
    blur3 = stencil_of(reference(load_spec(KERNELS / "corpus" / "blur3.spec")), uniform=True)
    assert blur3 is not None and crossed_paths(blur3, (2, 2)) == 4  # x + r1 + r-1, twice


def test_a_multiply_can_save_two_additions() -> None:
    """4 x blur3 (every weight 4) as a multiply by 4 and blur3's four additions (811 us at
    the search's set) is below the plan without a multiply (crossed paths: six additions,
    816 us): the bound must price the plan with a multiply beside it."""
    body = (
        Instr("c", Opcode.MUL_CP, ("x", "k")),
        Instr("r1", Opcode.ROT, ("c",), 1),
        Instr("r2", Opcode.ROT, ("c",), N - 1),
        Instr("a1", Opcode.ADD_CC, ("c", "r1")),
        Instr("a2", Opcode.ADD_CC, ("a1", "r2")),
        Instr("s1", Opcode.ROT, ("a2",), 8),
        Instr("s2", Opcode.ROT, ("a2",), N - 8),
        Instr("a3", Opcode.ADD_CC, ("a2", "s1")),
        Instr("out", Opcode.ADD_CC, ("a3", "s2")),
    )
    program = Program("four", (Param("x", Kind.CT),), (Const("k", (4,)),), body, "out")
    plain = (Instr("c", Opcode.ADD_CC, ("x", "x")), *body[1:])  # 2 x blur3
    stencil = _stencil(Program("plain", program.params, (), plain, "out"))
    assert stencil is not None and set(stencil.weights) == {2}
    four = Stencil(stencil.offsets, (4,) * 9, N)
    assert crossed_paths(four, (2, 2)) == 6  # ... 4 x blur3 without a multiply
    _holds(program, _over_x("four", N, program))


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(two_groups())
def test_no_program_of_the_scalar_model_beats_crossed_paths(
    case: tuple[Program, str, tuple[int, int]],
) -> None:
    """The exhaustive check (values up to sign: negations free, so it counts two-operand
    instructions) finds no program with fewer than crossed_paths: the term is below the
    best kernel, not only below random ones."""
    program, _, shape = case
    stencil = _stencil(program)
    assume(stencil is not None and len(stencil.offsets) == (1 + shape[0]) * (1 + shape[1]))
    assert stencil is not None
    amounts = {(i.amount or 0) % N for i in program.body if i.opcode is Opcode.ROT}
    chosen = [c for c in stencil_groups(stencil, shape) or [] if set().union(*c) == amounts]
    assume(chosen)
    fewer = crossed_paths(stencil, shape) - 1
    assume(fewer >= 0)
    assert stencil_circuit(stencil, chosen[0], fewer, False, 20_000) is not True
