"""The lower bound is sound: no correct kernel costs less than it (porcupine.search.bounds).

A wrong bound makes a false ``optimal`` claim, so the bound over every kernel
(``floor_for(ref, restrictions)`` at 0 components) is checked against kernels known to be
correct: random Quill programs, each against a spec written from its own slot semantics
(so the program is a correct kernel for it by construction, and verified), and every
recorded kernel of the repository. Under both objectives and on several parameter sets,
the program's rank is at or above the bound, and its components at or above the fewest
any kernel has.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from porcupine.search.bound_terms import arcs_needed, inertia, product_groups
from porcupine.search.bounds import fewest_components, floor_for, lower_bound
from porcupine.search.cegis import ring_for
from porcupine.search.restrictions import derive
from quill.cost import DEFAULT_TABLE, Objective, objective, row_us
from quill.ir import Const, Instr, Param, Program
from quill.ops import Kind, Opcode
from quill.params import SETS, ParameterSet
from quill.parser import load_program, parse_program
from quill.slots import normalize_amount
from quill.spec import Spec, load_spec, parse_spec
from quill.transform import live_instructions
from quill.verify import Reference, reference, verify

KERNELS = Path(__file__).parent.parent / "kernels"
CORPUS = KERNELS / "corpus" / "results"
ROWS = tuple(s for s in SETS if s.name in ("n2048_q50_w10", "n4096_q60_w20", "n8192_q180_w0"))


def _check(program: Program, spec: Spec, ref: Reference) -> None:
    """The bound over every kernel is at or below ``program`` (a correct kernel for
    ``spec``), on the search's parameter set and on others."""
    restrictions = derive(ref)
    floor = floor_for(ref, restrictions)
    live = [i for i in live_instructions(program) if i.opcode not in (Opcode.ROT, Opcode.RELIN)]
    assert len(live) >= fewest_components(floor), (len(live), fewest_components(floor))
    sets: list[ParameterSet] = [ring_for(restrictions, spec.n), *ROWS]
    for where in sets:
        row = row_us(DEFAULT_TABLE, where)
        for goal in Objective:
            have = objective(program, where, DEFAULT_TABLE, goal)
            bound = lower_bound(floor, 0, row, goal)
            assert have >= bound, (where.name, goal.value, have, bound)


def _holds(program: Program, text: str) -> None:
    """:func:`_check` for ``program`` against the spec ``text`` (its own semantics, so it
    verifies), unless it computes 0 (no input read: no bound to speak of)."""
    spec = parse_spec(text)
    ref = reference(spec)
    assert verify(program, ref).ok
    if any(ref.polys.values()):
        _check(program, spec, ref)


def _over_x(name: str, n: int, program: Program) -> str:
    """The text of the spec over one ct vector x of ``n`` slots that ``program`` computes."""
    text = f"spec {name}\nparam n = {n}\nslots n\ninput x: ct vector(n)\n"
    return text + f"output out[k]: vector(n) = {_expr(program, program.result, 0, n)}\n"


def _chain(draw: st.DrawFn, body: list[Instr], terms: list[str], stem: str) -> str:
    """``terms`` added or subtracted in turn (each at random) by instructions appended to
    ``body``, named ``stem`` and a count: the value they make."""
    acc = terms[0]
    for j, t in enumerate(terms[1:]):
        op = draw(st.sampled_from([Opcode.ADD_CC, Opcode.SUB_CC]))
        body.append(Instr(f"{stem}{j}", op, (acc, t)))
        acc = f"{stem}{j}"
    return acc


# -- random programs and the specs their semantics are ---------------------------------------

_BINARY = (Opcode.ADD_CC, Opcode.SUB_CC, Opcode.MUL_CC)


def _expr(program: Program, value: str, off: int, n: int) -> str:
    """The spec term of ``value`` read at offset ``off`` from the output slot (by the slot
    semantics of :mod:`quill.ops`: ``rot(a, r)[k] = a[k + r]``, ``sum(a, w)[k]`` the sum of
    ``a[k .. k + w - 1]``, a plaintext operand read at the same slot)."""
    defs = {i.dest: i for i in program.body}
    consts = {c.name: c.values[0] for c in program.consts}
    if value in consts:
        return f"({consts[value]})"
    if value not in defs:
        return f"{value}[(k + {off % n}) mod n]"
    ins = defs[value]

    def arg(j: int, shift: int = 0) -> str:
        return _expr(program, ins.args[j], off + shift, n)

    op = ins.opcode
    if op is Opcode.ROT:
        assert ins.amount is not None
        return arg(0, ins.amount)
    if op is Opcode.SUM:
        assert ins.amount is not None
        return "(" + " + ".join(arg(0, j) for j in range(ins.amount)) + ")"
    if op is Opcode.NEG:
        return f"(-{arg(0)})"
    symbol = {"add": "+", "sub": "-", "mul": "*"}[op.info.family.value]
    return f"({arg(0)} {symbol} {arg(1)})"


@st.composite
def programs(draw: st.DrawFn) -> tuple[Program, str]:
    """A small random program over ct inputs x (and y), maybe a plaintext p and constants,
    with rotations and sums, and the text of a spec computing exactly what it computes."""
    n = draw(st.sampled_from([4, 8, 16]))
    inputs = ["x"] + (["y"] if draw(st.booleans()) else [])
    plain = draw(st.booleans())
    params = [Param(v, Kind.CT) for v in inputs] + ([Param("p", Kind.PT)] if plain else [])
    consts: list[Const] = []
    body: list[Instr] = []
    values = list(inputs)
    degree = dict.fromkeys(inputs, 1)
    for i in range(draw(st.integers(1, 6))):
        name = f"v{i}"
        kind = draw(st.sampled_from(["binary", "rot", "unary", "sum"]))
        a = draw(st.sampled_from(values))
        degree[name] = degree[a]
        if kind == "binary":
            b = draw(st.sampled_from(values))
            op = draw(st.sampled_from(_BINARY))
            if op is Opcode.MUL_CC and degree[a] + degree[b] > 4:
                op = Opcode.ADD_CC
            body.append(Instr(name, op, (a, b)))
            product = degree[a] + degree[b]
            degree[name] = product if op is Opcode.MUL_CC else max(degree[a], degree[b])
        elif kind == "rot":
            body.append(Instr(name, Opcode.ROT, (a,), draw(st.integers(1, n - 1))))
        elif kind == "sum":
            body.append(Instr(name, Opcode.SUM, (a,), draw(st.sampled_from([2, 4]))))
        else:
            op = draw(st.sampled_from([Opcode.NEG, Opcode.MUL_CP, Opcode.ADD_CP]))
            if op is Opcode.NEG:
                body.append(Instr(name, op, (a,)))
            else:
                operand = "p"
                if not plain or draw(st.booleans()):
                    operand = f"c{len(consts)}"
                    consts.append(Const(operand, (draw(st.integers(-5, 5)),)))
                body.append(Instr(name, op, (a, operand)))
        values.append(name)
    program = Program("random", tuple(params), tuple(consts), tuple(body), values[-1])
    lines = [f"spec random\nparam n = {n}\nslots n\n"]
    lines += [f"input {v}: ct vector(n)\n" for v in inputs]
    if plain:
        lines.append("input p: pt vector(n)\n")
    lines.append(f"output out[k]: vector(n) = {_expr(program, values[-1], 0, n)}\n")
    return program, "".join(lines)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_no_random_correct_kernel_beats_the_bound(case: tuple[Program, str]) -> None:
    _holds(*case)  # the spec is the program's own semantics


# -- one rotation group and constant weights (bound_terms.unrotated_binary) ----------------


@st.composite
def stencils(draw: st.DrawFn) -> tuple[Program, str]:
    """A random linear kernel over one input x whose rotations all rotate one ciphertext
    (x, or a multiple of x made first), combined with additions, subtractions, doublings,
    negations and maybe a multiply by a constant: the kernels the unrotated-weight term
    prices (a weight like the -4 of a Laplacian at the output slot itself), and the spec
    its semantics is."""
    n = draw(st.sampled_from([8, 16]))
    consts: list[Const] = []
    body: list[Instr] = []
    values = ["x"]
    source = "x"
    if draw(st.booleans()):  # rotate a multiple of x, not x itself
        op = draw(st.sampled_from([Opcode.ADD_CC, Opcode.SUB_CC, Opcode.NEG]))
        args = ("x",) if op is Opcode.NEG else ("x", "x")
        body.append(Instr("c", op, args))
        values.append("c")
        source = "c"
    amounts = draw(st.lists(st.integers(1, n - 1), min_size=1, max_size=4, unique=True))
    for j, amount in enumerate(amounts):
        body.append(Instr(f"r{j}", Opcode.ROT, (source,), amount))
        values.append(f"r{j}")
    for i in range(draw(st.integers(1, 8))):
        name = f"v{i}"
        kind = draw(st.sampled_from(["add", "sub", "double", "neg", "scale"]))
        a = draw(st.sampled_from(values))
        if kind == "double":
            body.append(Instr(name, Opcode.ADD_CC, (a, a)))
        elif kind == "neg":
            body.append(Instr(name, Opcode.NEG, (a,)))
        elif kind == "scale":
            operand = f"k{len(consts)}"
            consts.append(Const(operand, (draw(st.integers(-6, 6)),)))
            body.append(Instr(name, Opcode.MUL_CP, (a, operand)))
        else:
            op = Opcode.ADD_CC if kind == "add" else Opcode.SUB_CC
            body.append(Instr(name, op, (a, draw(st.sampled_from(values)))))
        values.append(name)
    params = (Param("x", Kind.CT),)
    program = Program("stencil", params, tuple(consts), tuple(body), values[-1])
    return program, _over_x("stencil", n, program)


# -- rotation groups in sequence (bound_terms.first_targets) -------------------------------


@st.composite
def grouped(draw: st.DrawFn) -> tuple[Program, str]:
    """A random linear kernel over one input x whose rotations form one to three groups in
    sequence, as a separable stencil has them (rotations of x, summed with x or not, then
    rotations of that, ...), with additions, subtractions and doublings between: the
    kernels whose paths part before their first rotation, and the spec their semantics is."""
    n = draw(st.sampled_from([16, 64]))
    body: list[Instr] = []
    values = ["x"]
    current = "x"
    for g in range(draw(st.integers(1, 3))):
        amounts = draw(st.lists(st.integers(1, n - 1), min_size=1, max_size=4, unique=True))
        terms = [current] if draw(st.booleans()) else []
        for j, amount in enumerate(amounts):
            body.append(Instr(f"r{g}_{j}", Opcode.ROT, (current,), amount))
            terms.append(f"r{g}_{j}")
        acc = _chain(draw, body, terms, f"s{g}_")
        if draw(st.booleans()):  # a doubling, or a value from before added in
            other = draw(st.sampled_from([acc, *values]))
            body.append(Instr(f"d{g}", Opcode.ADD_CC, (acc, other)))
            acc = f"d{g}"
        values += [*terms, acc]
        current = acc
    params = (Param("x", Kind.CT),)
    program = Program("grouped", params, (), tuple(body), current)
    return program, _over_x("grouped", n, program)


# -- library sums that must span the reads (bound_terms.arcs_needed) -----------------------


@st.composite
def summed(draw: st.DrawFn) -> tuple[Program, str]:
    """A random linear kernel over one input x built around library sums (windows 2 to 8):
    sums, a few rotations, additions and subtractions, so that sums alone often cannot
    span what the output reads (the plans the arcs term rules out), and the spec its
    semantics is."""
    n = draw(st.sampled_from([8, 16, 32]))
    body: list[Instr] = []
    values = ["x"]
    for i in range(draw(st.integers(1, 7))):
        name = f"v{i}"
        kind = draw(st.sampled_from(["sum", "sum", "rot", "add", "sub"]))
        a = draw(st.sampled_from(values))
        if kind == "sum":
            body.append(Instr(name, Opcode.SUM, (a,), draw(st.sampled_from([2, 4, 8]))))
        elif kind == "rot":
            body.append(Instr(name, Opcode.ROT, (a,), draw(st.integers(1, n - 1))))
        else:
            op = Opcode.ADD_CC if kind == "add" else Opcode.SUB_CC
            body.append(Instr(name, op, (a, draw(st.sampled_from(values)))))
        values.append(name)
    params = (Param("x", Kind.CT),)
    program = Program("summed", params, (), tuple(body), values[-1])
    return program, _over_x("summed", n, program)


@pytest.mark.slow
@pytest.mark.parametrize("kernels", [stencils, grouped, summed], ids=lambda f: f.__name__)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_kernel_of_these_shapes_beats_the_bound(
    kernels: Callable[[], st.SearchStrategy[tuple[Program, str]]], data: st.DataObject
) -> None:
    """The strategies above, each written for a term: weights around one rotation group
    (unrotated_weight), groups in sequence (first_targets), sums (arcs_needed)."""
    _holds(*data.draw(kernels()))


@settings(deadline=None)  # a brute force: its time is the machine's load, not the property
@given(
    st.integers(2, 24).flatmap(
        lambda n: st.tuples(
            st.just(n), st.frozensets(st.integers(0, n - 1), max_size=8), st.integers(0, n)
        )
    )
)
def test_arcs_needed_is_the_least_cover(case: tuple[int, frozenset[int], int]) -> None:
    """bound_terms.arcs_needed against every choice of arc starts, smallest first."""
    n, offsets, reach = case
    arc = [frozenset((a + s) % n for s in range(reach + 1)) for a in range(n)]
    least = next(
        k
        for k in range(len(offsets) + 1)
        if any(offsets <= frozenset().union(*c) for c in itertools.combinations(arc, k))
    )
    assert arcs_needed(offsets, reach, n) == least


# -- products over the integers (bound_terms.real_products) ---------------------------------


def _depth(program: Program) -> int:
    depth: dict[str, int] = {}
    for ins in program.body:
        below = max((depth.get(a, 0) for a in ins.args), default=0)
        depth[ins.dest] = below + (1 if ins.opcode is Opcode.MUL_CC else 0)
    return depth.get(program.result, 0)


@st.composite
def quadratics(draw: st.DrawFn) -> tuple[Program, str]:
    """A random elementwise kernel of ct*ct depth 1 over x, y (and z): linear forms made
    with additions, subtractions and small constant multiplies, products of them, and
    sums of those; the kernels a sketch without rotations holds, and their spec."""
    inputs = ["x", "y"] + (["z"] if draw(st.booleans()) else [])
    consts: list[Const] = []
    body: list[Instr] = []
    linear = list(inputs)
    for i in range(draw(st.integers(0, 4))):
        a, b = draw(st.sampled_from(linear)), draw(st.sampled_from(linear))
        kind = draw(st.sampled_from(["add", "sub", "scale"]))
        if kind == "scale":
            operand = f"k{len(consts)}"
            consts.append(Const(operand, (draw(st.sampled_from([-3, -2, 2, 3])),)))
            body.append(Instr(f"l{i}", Opcode.MUL_CP, (a, operand)))
        else:
            op = Opcode.ADD_CC if kind == "add" else Opcode.SUB_CC
            body.append(Instr(f"l{i}", op, (a, b)))
        linear.append(f"l{i}")
    terms = []
    for i in range(draw(st.integers(1, 3))):
        a, b = draw(st.sampled_from(linear)), draw(st.sampled_from(linear))
        body.append(Instr(f"p{i}", Opcode.MUL_CC, (a, b)))
        terms.append(f"p{i}")
    out = _chain(draw, body, terms, "s")
    params = tuple(Param(v, Kind.CT) for v in inputs)
    program = Program("quadratic", params, tuple(consts), tuple(body), out)
    text = "spec quadratic\nparam n = 4\nslots n\n"
    text += "".join(f"input {v}: ct vector(n)\n" for v in inputs)
    text += f"output out[k]: vector(n) = {_expr(program, out, 0, 4)}\n"
    return program, text


@st.composite
def rotated_quadratics(draw: st.DrawFn) -> tuple[Program, str]:
    """A random kernel of ct*ct depth 1 over x (and y) on 16 slots with rotations before
    its products (linear forms of rotations), products of them, and rotations after
    (a product, or a sum of products, rotated and added): the kernels whose products
    serve several terms by their translates (bound_terms.product_groups), and their spec."""
    n = 16
    inputs = ["x"] + (["y"] if draw(st.booleans()) else [])
    body: list[Instr] = []
    linear = _rotated(draw, body, list(inputs), "l", n)
    quadratic = []
    for i in range(draw(st.integers(1, 3))):
        a, b = draw(st.sampled_from(linear)), draw(st.sampled_from(linear))
        body.append(Instr(f"p{i}", Opcode.MUL_CC, (a, b)))
        quadratic.append(f"p{i}")
    out = _rotated(draw, body, quadratic, "q", n)[-1]
    program = Program("rq", tuple(Param(v, Kind.CT) for v in inputs), (), tuple(body), out)
    text = f"spec rq\nparam n = {n}\nslots n\n"
    text += "".join(f"input {v}: ct vector(n)\n" for v in inputs)
    text += f"output out[k]: vector(n) = {_expr(program, out, 0, n)}\n"
    return program, text


def _rotated(draw: st.DrawFn, body: list[Instr], values: list[str], stem: str, n: int) -> list[str]:
    """``values`` and up to four more, each a rotation of one of them or their sum or
    difference, appended to ``body`` (named ``stem`` and a count)."""
    values = list(values)
    for i in range(draw(st.integers(0, 4))):
        a = draw(st.sampled_from(values))
        kind = draw(st.sampled_from(["rot", "add", "sub"]))
        if kind == "rot":
            body.append(Instr(f"{stem}{i}", Opcode.ROT, (a,), draw(st.integers(1, n - 1))))
        else:
            op = Opcode.ADD_CC if kind == "add" else Opcode.SUB_CC
            body.append(Instr(f"{stem}{i}", op, (a, draw(st.sampled_from(values)))))
        values.append(f"{stem}{i}")
    return values


TRANSLATES = [
    # one product and its translate, no rotation before it: one group, where the form
    # x[k]^2 + x[k+1]^2 has two positive directions
    (
        "kernel rq(x: ct) {\n    p = mul(x, x)\n    q = rot(p, 1)\n    y = add(p, q)\n"
        "    return y\n}\n",
        "spec rq\nparam n = 16\nslots n\ninput x: ct vector(n)\n"
        "output out[k]: vector(n) = x[k] * x[k] + x[(k + 1) mod n] * x[(k + 1) mod n]\n",
        1,
    ),
    # a rotation before the product too (its monomials read two slots): two groups
    (
        "kernel rq(x: ct) {\n    r = rot(x, 1)\n    u = add(x, r)\n    p = mul(u, u)\n"
        "    q = rot(p, 2)\n    y = add(p, q)\n    return y\n}\n",
        "spec rq\nparam n = 16\nslots n\ninput x: ct vector(n)\n"
        "output out[k]: vector(n) = (x[k] + x[(k + 1) mod n]) * (x[k] + x[(k + 1) mod n])"
        " + (x[(k + 2) mod n] + x[(k + 3) mod n]) * (x[(k + 2) mod n] + x[(k + 3) mod n])\n",
        2,
    ),
]


@pytest.mark.parametrize(("kernel", "text", "groups"), TRANSLATES)
def test_a_product_and_its_translates_need_only_the_groups_counted(
    kernel: str, text: str, groups: int
) -> None:
    # The least kernels product_groups speaks of: one group more would claim too much.
    program, spec = parse_program(kernel), parse_spec(text)
    ref = reference(spec)
    assert verify(program, ref).ok
    assert product_groups(ref, derive(ref)) == groups
    _within_its_sketch_bound(program, spec, ref)


@pytest.mark.slow
@pytest.mark.parametrize("kernels", [quadratics, rotated_quadratics], ids=lambda f: f.__name__)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_kernel_of_a_sketch_beats_its_bound(
    kernels: Callable[[], st.SearchStrategy[tuple[Program, str]]], data: st.DataObject
) -> None:
    """The bound over a sketch's kernels (``floor_for(..., in_sketch=True)``), which counts
    products over the integers below the sizes whose coefficients stay small (real_products)
    and holds a kernel with fewer to a rotation after a product and one before
    (product_groups), is at or below every random kernel of a sketch that holds it (the
    spec's own, widened by the kernel's rotations, ops and constants), at the kernel's size
    and at any size."""
    program, text = data.draw(kernels())
    spec = parse_spec(text)
    ref = reference(spec)
    assert verify(program, ref).ok
    if ref.ct_degree == 2:  # else the products cancelled
        _within_its_sketch_bound(program, spec, ref)


def _within_its_sketch_bound(program: Program, spec: Spec, ref: Reference) -> None:
    """``program`` costs no less than the bound over the kernels of the spec's sketch
    widened to hold it (its rotations, ops, constants and depth), at its size and at any
    size."""
    live = live_instructions(program)
    derived = derive(ref)
    amounts = {i.amount for i in live if i.opcode is Opcode.ROT and i.amount is not None}
    rotations = {normalize_amount(r, spec.n) for r in amounts} | set(derived.rotations)
    ops = set(derived.ops) | {i.opcode for i in live if i.opcode is not Opcode.ROT}
    restrictions = dataclasses.replace(
        derived,
        ops=tuple(sorted(ops, key=lambda o: o.value)),
        rotations=tuple(sorted(rotations)),
        constants=tuple(
            sorted(set(derived.constants) | {abs(c.values[0]) for c in program.consts})
        ),
        max_depth=max(derived.max_depth, _depth(program)),
    )
    floor = floor_for(ref, restrictions, in_sketch=True)
    components = len([i for i in live if i.opcode not in (Opcode.ROT, Opcode.RELIN)])
    where = ring_for(restrictions, spec.n)
    row = row_us(DEFAULT_TABLE, where)
    for goal in Objective:
        have = objective(program, where, DEFAULT_TABLE, goal)
        assert have >= lower_bound(floor, components, row, goal), (goal, floor)
        assert have >= lower_bound(floor, 0, row, goal), (goal, floor)


@given(
    st.integers(1, 5).flatmap(
        lambda m: st.lists(st.integers(-3, 3), min_size=m * m, max_size=m * m)
    ),
    st.booleans(),
)
def test_inertia_counts_the_signs_of_the_eigenvalues(entries: list[int], hollow: bool) -> None:
    """Exact inertia (bound_terms.inertia) against numpy's eigenvalues, on small integer
    symmetric matrices, half of them with a zero diagonal (the 2x2 pivot's case)."""
    m = math.isqrt(len(entries))
    a = np.array(entries, dtype=float).reshape(m, m)
    a = a + a.T
    if hollow:
        np.fill_diagonal(a, 0)
    eigen = np.linalg.eigvalsh(a)
    matrix = [[Fraction(int(v)) for v in row] for row in a]
    assert inertia(matrix) == (int((eigen > 1e-7).sum()), int((eigen < -1e-7).sum()))


# -- every recorded kernel ------------------------------------------------------------------

RECORDED = [
    (p, KERNELS / f"{p.stem}.spec")
    for d in ("published", "baselines")
    for p in sorted((KERNELS / d).glob("*.quill"))
] + [
    (p, KERNELS / "corpus" / f"{p.stem}.spec")
    for p in sorted(KERNELS.glob("corpus/results/*.quill"))
]


@pytest.mark.slow
@pytest.mark.parametrize(("kernel", "spec_path"), RECORDED, ids=lambda p: str(p.stem))
def test_no_recorded_kernel_beats_the_bound(kernel: Path, spec_path: Path) -> None:
    program = load_program(kernel)
    spec = load_spec(spec_path)
    ref = reference(spec)
    assert verify(program, ref).ok
    _check(program, spec, ref)
