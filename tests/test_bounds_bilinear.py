"""The bilinear product count is sound (porcupine.search.bilinear): no kernel of a sketch
(depth 1, splat constants, rotations anywhere, mod t) has fewer ct*ct products than it.

It lifted conv1d's bound over its sketch's kernels from 3453 to its kernel's 8103 us, so
a wrong count would make a false "no cheaper kernel in the sketch" claim. Checked against
random kernels of the kind it speaks of: linear forms of rotated inputs, products of a
form in the h inputs by a form in x (or a pair whose h-h and x-x parts cancel, or any two
forms), and rotations, sums, splat multiplies and additions after them, on 4 to 16 slots
(every wrap-around): the count never exceeds the products the kernel has.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from porcupine.search.bilinear import bilinear_products, isotropic_products, rank_mod_t
from porcupine.search.bounds import floor_for
from porcupine.search.restrictions import derive
from quill.interp import evaluate_at_slots
from quill.ir import Const, Instr, Param, Program
from quill.ops import Kind, Opcode
from quill.parser import parse_program
from quill.spec import load_spec, parse_spec
from quill.transform import live_instructions
from quill.verify import Reference, reference, verify


def _own_reference(program: Program, n: int) -> Reference:
    """The reference of the spec ``program`` computes (its own semantics, every slot)."""
    names = [p.name for p in program.params]
    text = f"spec own\nparam n = {n}\nslots n\n"
    text += "".join(f"input {v}: ct vector(n)\n" for v in names)
    text += f"output y[k]: vector(n) = {names[0]}[k]\n"  # its polynomials: the program's
    ref = reference(parse_spec(text))
    polys = evaluate_at_slots(program, ref.sym.ring, ref.sym.vectors, range(n), n)
    return Reference(ref.spec, ref.sym, polys)


def _products(program: Program) -> int:
    return sum(1 for i in live_instructions(program) if i.opcode is Opcode.MUL_CC)


class _Builder:
    """Appends instructions and splat constants to a program under construction."""

    def __init__(self) -> None:
        self.body: list[Instr] = []
        self.consts: list[Const] = []

    def add(self, op: Opcode, args: tuple[str, ...], amount: int | None = None) -> str:
        name = f"v{len(self.body)}"
        self.body.append(Instr(name, op, args, amount))
        return name

    def splat(self, value: int) -> str:
        name = f"c{len(self.consts)}"
        self.consts.append(Const(name, (value,)))
        return name


def _form(draw: st.DrawFn, b: _Builder, sources: list[str], n: int) -> str:
    """A random translation-invariant linear form of ``sources``: one of them, maybe
    rotated, or more made with rotations, library sums, additions, subtractions and
    splat multiplies."""
    value = draw(st.sampled_from(sources))
    if draw(st.booleans()):
        value = b.add(Opcode.ROT, (value,), draw(st.integers(1, n - 1)))
    steps = draw(st.sampled_from([0, 0, 1, 2]))
    return _steps(draw, b, [*sources, value], n, steps, [-2, -1, 2, 3])


def _steps(
    draw: st.DrawFn, b: _Builder, values: list[str], n: int, steps: int, scales: list[int]
) -> str:
    """``steps`` random translation-invariant linear steps from the last of ``values``
    (rotations, library sums, splat multiplies, additions and subtractions of any of
    them); the last value made."""
    value = values[-1]
    for _ in range(steps):
        a = draw(st.sampled_from(values))
        kind = draw(st.sampled_from(["rot", "add", "sub", "scale", "sum"]))
        if kind == "rot":
            value = b.add(Opcode.ROT, (a,), draw(st.integers(1, n - 1)))
        elif kind == "sum":
            value = b.add(Opcode.SUM, (a,), draw(st.sampled_from([2, 4])))
        elif kind == "scale":
            value = b.add(Opcode.MUL_CP, (a, b.splat(draw(st.sampled_from(scales)))))
        else:
            op = Opcode.ADD_CC if kind == "add" else Opcode.SUB_CC
            value = b.add(op, (value, a))
        values.append(value)
    return value


@st.composite
def bilinear_kernels(draw: st.DrawFn) -> tuple[Program, int]:
    """A random kernel of ct*ct depth 1 over x and h0 .. h(m-1) on n slots, mostly
    bilinear between the h inputs and x, and n."""
    n = draw(st.sampled_from([4, 8, 16]))
    hs = [f"h{j}" for j in range(draw(st.sampled_from([2, 3, 3, 4])))]
    b = _Builder()
    quadratic: list[str] = []
    order = draw(st.permutations(hs))  # the h of each bilinear product, distinct at first
    shifts = draw(st.permutations(range(n)))  # and its x's offset, when it reads one
    for i in range(draw(st.sampled_from([1, 2, 3, 3, 4]))):
        kind = draw(st.sampled_from(["bilinear", "bilinear", "bilinear", "pair", "any"]))
        if kind == "bilinear":  # mostly one h input as it is (read at one offset)
            h = order[i] if i < len(order) else draw(st.sampled_from(hs))
            if draw(st.integers(0, 4)) == 0:
                h = _form(draw, b, [h], n)
            x = "x" if shifts[i] == 0 else b.add(Opcode.ROT, ("x",), shifts[i])
            if draw(st.integers(0, 2)) == 0:
                x = _form(draw, b, ["x"], n)
            quadratic.append(b.add(Opcode.MUL_CC, (h, x)))
        elif kind == "pair":  # (A + X)(B + Y) - (A - X)(B - Y) = 2 (A Y + X B)
            a, bb = _form(draw, b, hs[:2], n), _form(draw, b, hs[1:], n)
            x, y = _form(draw, b, ["x"], n), _form(draw, b, ["x"], n)
            made = []
            for op in (Opcode.ADD_CC, Opcode.SUB_CC):
                left, right = b.add(op, (a, x)), b.add(op, (bb, y))
                made.append(b.add(Opcode.MUL_CC, (left, right)))
            quadratic.append(b.add(Opcode.SUB_CC, (made[0], made[1])))
        else:
            f, g = _form(draw, b, ["x", *hs], n), _form(draw, b, ["x", *hs], n)
            quadratic.append(b.add(Opcode.MUL_CC, (f, g)))
    out = quadratic[0]
    for q in quadratic[1:]:
        out = b.add(draw(st.sampled_from([Opcode.ADD_CC, Opcode.SUB_CC])), (out, q))
    steps = draw(st.sampled_from([0, 0, 0, 1, 2, 4]))  # after the products: translates
    out = _steps(draw, b, [*quadratic, out], n, steps, [-1, 2])
    params = tuple(Param(v, Kind.CT) for v in ["x", *hs])
    return Program("bilinear", params, tuple(b.consts), tuple(b.body), out), n


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bilinear_kernels())
def test_no_kernel_has_fewer_products_than_counted(case: tuple[Program, int]) -> None:
    program, n = case
    ref = _own_reference(program, n)
    if ref.ct_degree != 2:
        return  # the products cancelled: nothing to count
    restrictions = derive(ref)
    counted = bilinear_products(ref, restrictions)
    event(f"counted {counted}, has {_products(program)}")
    assert counted <= _products(program)
    assert floor_for(ref, restrictions, in_sketch=True).products <= _products(program)


CONV1D = """kernel conv1d(x: ct, h0: ct, h1: ct, h2: ct) {
    p0 = mul(h0, x)
    r1 = rot(x, 1)
    p1 = mul(h1, r1)
    r2 = rot(x, 2)
    p2 = mul(h2, r2)
    s = add(p0, p1)
    y = add(s, p2)
    return y
}
"""

TWO_TAPS = """kernel two(x: ct, h0: ct, h1: ct) {
    p0 = mul(h0, x)
    r1 = rot(x, 1)
    p1 = mul(h1, r1)
    y = add(p0, p1)
    return y
}
"""


@pytest.mark.parametrize("n", [4, 8, 16])
def test_conv1d_needs_its_three_products(n: int) -> None:
    """The count is conv1d's, at the search's instance and at full size, and its kernel
    meets it (one more would be false); two taps are not counted (two products do)."""
    spec = load_spec("kernels/corpus/conv1d.spec", params={"n": n})
    ref = reference(spec)
    program = parse_program(CONV1D)
    assert verify(program, ref).ok
    assert bilinear_products(ref, derive(ref)) == _products(program) == 3
    two = parse_program(TWO_TAPS)
    own = _own_reference(two, n)
    assert bilinear_products(own, derive(own)) == 0 < _products(two) == 2


def test_the_count_reads_no_pair_within_the_group() -> None:
    """With a pair inside every split, or a split with an input at two offsets, nothing is
    claimed; cross entries of two monomials each are counted as well (rank 3)."""
    across = {(("h0", 0), ("x", 0)): 1, (("h1", 0), ("x", 1)): 1, (("h2", 0), ("x", 2)): 1}
    assert isotropic_products(across, 16) == 3
    assert isotropic_products({**across, (("h0", 0), ("h1", 0)): 1}, 16) == 0
    assert isotropic_products({**across, (("h0", 3), ("x", 0)): 1}, 16) == 0
    doubled = {**across, (("h0", 0), ("x", 5)): 2, (("h1", 0), ("x", 6)): 2}
    doubled |= {(("h2", 0), ("x", 7)): 2}
    assert isotropic_products(doubled, 16) == 3  # x + 2 rot(x, 5) in place of x
    assert isotropic_products({k: v for k, v in across.items() if k[0][0] != "h2"}, 16) == 0


def test_rank_is_taken_mod_t() -> None:
    assert rank_mod_t([[1, 2], [2, 4]]) == 1
    assert rank_mod_t([[1, 0], [0, 65537]]) == 1
    assert rank_mod_t([[1, 2, 3], [0, 1, 4], [5, 6, 0]]) == 3
    assert rank_mod_t([]) == 0


def test_slots_known_to_be_zero_leave_it_unclaimed() -> None:
    """An input that covers 12 of 16 slots is 0 in the rest: a kernel's identity there is
    not asked for, so nothing is claimed (the same spec over every slot: 3)."""
    counts = []
    for size in ("n", "12"):
        text = f"spec c\nparam n = 16\nslots n\ninput x: ct vector({size})\n"
        text += "".join(f"input h{j}: ct vector(n)\n" for j in range(3))
        text += "output y[k]: vector(n) = h0[k] * x[k] + h1[k] * x[k + 1] + h2[k] * x[k + 2]\n"
        text += "    where k < 9\n"
        ref = reference(parse_spec(text))
        counts.append(bilinear_products(ref, derive(ref)))
    assert counts == [3, 0]
