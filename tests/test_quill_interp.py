"""quill.interp against an independent reference, and the kernel files on concrete data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import programs, slot_counts

from quill.interp import interpret
from quill.ir import Program
from quill.ops import Opcode
from quill.parser import load_program, parse_program

T = 65537  # restated on purpose: the reference must not lean on the code under test
KERNELS = Path(__file__).resolve().parent.parent / "kernels"

# The published Porcupine box blur as the paper states it (w = 4).
BRIEF_BLUR = """kernel box_blur(x: ct) {
    c1 = rot(x, 4)
    c2 = add(x, c1)
    c3 = rot(c2, 1)
    c4 = add(c2, c3)
    return c4
}
"""


def reference(program: Program, inputs: dict[str, list[int]], n: int) -> list[int]:
    """Evaluate ``program`` with Python ints: explicit index arithmetic and mod-T sums.

    Written from the language definition, sharing nothing with quill.interp or the op
    table's semantics: rotation is ``out[i] = x[(i + k) % n]``; a constant repeats its
    values periodically.
    """
    env = {name: [v % T for v in vector] for name, vector in inputs.items()}
    for c in program.consts:
        env[c.name] = [c.values[i % len(c.values)] % T for i in range(n)]
    for ins in program.body:
        a = env[ins.args[0]]
        b = env[ins.args[1]] if len(ins.args) > 1 else []
        if ins.opcode in (Opcode.ADD_CC, Opcode.ADD_CP):
            out = [(a[i] + b[i]) % T for i in range(n)]
        elif ins.opcode in (Opcode.SUB_CC, Opcode.SUB_CP):
            out = [(a[i] - b[i]) % T for i in range(n)]
        elif ins.opcode in (Opcode.MUL_CC, Opcode.MUL_CP):
            out = [(a[i] * b[i]) % T for i in range(n)]
        elif ins.opcode is Opcode.NEG:
            out = [(T - a[i]) % T for i in range(n)]
        elif ins.opcode is Opcode.RELIN:  # changes the ciphertext's form, not its slots
            out = list(a)
        elif ins.opcode is Opcode.SUM:  # slot i adds up the window of slots i .. i + k - 1
            assert ins.amount is not None
            out = [sum(a[(i + j) % n] for j in range(ins.amount)) % T for i in range(n)]
        elif ins.opcode is Opcode.ROT:
            assert ins.amount is not None
            out = [a[(i + ins.amount) % n] for i in range(n)]
        else:  # pragma: no cover - a new opcode needs a reference rule here
            raise AssertionError(f"no reference semantics for {ins.opcode}")
        env[ins.dest] = out
    return env[program.result]


@st.composite
def runs(draw: st.DrawFn) -> tuple[Program, dict[str, list[int]], int]:
    """A program, inputs for its parameters, and the slot count n they have."""
    n = draw(slot_counts)
    program = draw(programs(slots=n))
    vector = st.lists(st.integers(-4 * T, 4 * T), min_size=n, max_size=n)
    inputs = {p.name: draw(vector) for p in program.params}
    return program, inputs, n


@pytest.mark.slow
@settings(max_examples=300)
@given(runs())
def test_interpreter_agrees_with_reference(run: tuple[Program, dict[str, list[int]], int]) -> None:
    program, inputs, n = run
    got = interpret(program, inputs)
    assert got.shape == (n,)
    assert [int(v) for v in got] == reference(program, inputs, n)


def test_rotation_is_a_left_shift() -> None:
    program = parse_program("kernel r(x: ct) {\n    y = rot(x, 1)\n    return y\n}\n")
    assert list(interpret(program, {"x": [0, 1, 2, 3]})) == [1, 2, 3, 0]
    assert reference(program, {"x": [0, 1, 2, 3]}, 4) == [1, 2, 3, 0]
    back = parse_program("kernel r(x: ct) {\n    y = rot(x, -1)\n    return y\n}\n")
    assert list(interpret(back, {"x": [0, 1, 2, 3]})) == [3, 0, 1, 2]


def test_periodic_constant_and_negative_values() -> None:
    program = parse_program(
        "kernel k(x: ct) {\n    m = const([1, -1])\n    y = mul(x, m)\n    return y\n}\n"
    )
    assert list(interpret(program, {"x": [5, 6, 7, 8]})) == [5, T - 6, 7, T - 8]


def _blur_expected(image: list[list[int]], i: int, j: int) -> int:
    return (image[i][j] + image[i][j + 1] + image[i + 1][j] + image[i + 1][j + 1]) % T


@settings(max_examples=50)
@given(st.lists(st.integers(0, T - 1), min_size=16, max_size=16))
def test_box_blurs_on_a_4x4_image(pixels: list[int]) -> None:
    w = 4
    image = [pixels[i * w : (i + 1) * w] for i in range(w)]  # row-major: x[i][j] at i*w+j
    published = interpret(load_program(KERNELS / "published" / "box_blur.quill"), {"x": pixels})
    baseline = interpret(load_program(KERNELS / "baselines" / "box_blur.quill"), {"x": pixels})
    for i in range(w - 1):
        for j in range(w - 1):
            assert published[i * w + j] == _blur_expected(image, i, j)
    # Both compute the same cyclic 2x2 sum, so they agree on every slot, edges included.
    assert list(published) == list(baseline)


@settings(max_examples=50)
@given(
    st.lists(st.integers(0, T - 1), min_size=8, max_size=8),
    st.lists(st.integers(0, T - 1), min_size=8, max_size=8),
)
def test_dot_products_put_the_sum_in_slot_0(a: list[int], b: list[int]) -> None:
    expected = sum(x * y for x, y in zip(a, b, strict=True)) % T
    for kind in ("published", "baselines"):
        out = interpret(load_program(KERNELS / kind / "dot_product.quill"), {"a": a, "b": b})
        assert out[0] == expected, kind


def test_box_blur_on_a_known_image() -> None:
    pixels = list(range(16))  # x[i][j] = 4i + j, so each 2x2 box sums to 16i + 4j + 10
    out = interpret(load_program(KERNELS / "published" / "box_blur.quill"), {"x": pixels})
    assert [int(out[i * 4 + j]) for i in range(3) for j in range(3)] == [
        16 * i + 4 * j + 10 for i in range(3) for j in range(3)
    ]
    brief = parse_program(BRIEF_BLUR)
    assert brief == load_program(KERNELS / "published" / "box_blur.quill")
    assert np.array_equal(out, interpret(brief, {"x": pixels}))
