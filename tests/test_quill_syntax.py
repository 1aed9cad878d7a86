"""Quill syntax: printing and parsing are inverse, the kernel files parse, junk never crashes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import mutated_sources, programs

from quill.errors import QuillError
from quill.ir import Const, Instr, Param, Program
from quill.ops import Kind, Opcode
from quill.parser import load_program, parse_program
from quill.printer import format_program

KERNELS = Path(__file__).resolve().parent.parent / "kernels"
KERNEL_FILES = sorted(KERNELS.glob("*/*.quill"))
BRIEF_KERNELS = [
    "baselines/box_blur.quill",
    "baselines/dot_product.quill",
    "published/box_blur.quill",
    "published/dot_product.quill",
]


@pytest.mark.slow
@settings(max_examples=300)
@given(programs())
def test_print_then_parse_is_identity(program: Program) -> None:
    text = format_program(program)
    assert parse_program(text) == program
    assert format_program(parse_program(text)) == text  # the printed form is a fixed point


def test_printer_canonical_layout() -> None:
    program = Program(
        "k",
        (Param("x", Kind.CT), Param("p", Kind.PT)),
        (Const("two", (2,)), Const("mask", (1, 0, -1, 0))),
        (
            Instr("a", Opcode.ADD_CP, ("x", "p")),
            Instr("r", Opcode.ROT, ("a",), -3),
            Instr("m", Opcode.MUL_CP, ("r", "two")),
        ),
        "m",
    )
    assert format_program(program) == (
        "kernel k(x: ct, p: pt) {\n"
        "    two = const(2)\n"
        "    mask = const([1, 0, -1, 0])\n"
        "    a = add(x, p)\n"
        "    r = rot(a, -3)\n"
        "    m = mul(r, two)\n"
        "    return m\n"
        "}\n"
    )


def test_plaintext_first_operands_are_swapped_into_table_order() -> None:
    program = parse_program(
        "kernel k(x: ct, p: pt) {\n"
        "    two = const(2)\n"
        "    a = add(p, x)\n"
        "    m = mul(two, a)\n"
        "    s = sub(m, p)\n"
        "    return s\n"
        "}\n"
    )
    assert program.body == (
        Instr("a", Opcode.ADD_CP, ("x", "p")),
        Instr("m", Opcode.MUL_CP, ("a", "two")),
        Instr("s", Opcode.SUB_CP, ("m", "p")),
    )


def test_layout_is_free_within_lines() -> None:
    """Comments, blank lines, odd spacing, CRLF and a one-line body all parse the same."""
    canonical = parse_program(
        "kernel k(x: ct) {\n    c = rot(x, -1)\n    d = add(x, c)\n    return d\n}\n"
    )
    messy = (
        "# leading comment\r\n\r\n"
        "kernel   k ( x : ct )   {  # opening\r\n"
        "\tc=rot( x ,-1 )\r\n"
        "   # a comment line\r\n\r\n"
        "d = add(x,c)   \r\n"
        "return d}"
    )
    assert parse_program(messy) == canonical
    assert parse_program("kernel k(x: ct) { return x }") == Program(
        "k", (Param("x", Kind.CT),), (), (), "x"
    )


def test_scalar_and_one_element_list_constants_are_the_same() -> None:
    one = parse_program("kernel k(x: ct) {\n c = const(5)\n m = mul(x, c)\n return m\n}")
    two = parse_program("kernel k(x: ct) {\n c = const([5])\n m = mul(x, c)\n return m\n}")
    assert one == two
    assert one.consts == (Const("c", (5,)),)


def test_keyword_prefixed_names_and_mnemonic_names_are_names() -> None:
    program = parse_program(
        "kernel add(ctx: ct, pt2: pt) {\n"
        "    constant = const(3)\n"
        "    rot = add(ctx, pt2)\n"
        "    kernel_ = mul(rot, constant)\n"
        "    return kernel_\n"
        "}\n"
    )
    assert program.name == "add"
    assert [i.dest for i in program.body] == ["rot", "kernel_"]


@pytest.mark.parametrize("path", KERNEL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_kernel_files_parse_and_round_trip(path: Path) -> None:
    program = load_program(path)
    assert parse_program(format_program(program)) == program


@pytest.mark.parametrize("name", BRIEF_KERNELS)
def test_brief_kernel_files_exist_and_say_what_they_are(name: str) -> None:
    path = KERNELS / name
    assert path in KERNEL_FILES
    assert path.read_text().startswith("# "), "a kernel file starts with a comment"
    assert load_program(path).name == path.stem


def shape(program: Program) -> tuple[dict[Opcode, int], tuple[int, ...]]:
    """How often each op occurs in ``program``, and its distinct rotation amounts."""
    ops: dict[Opcode, int] = {}
    for i in program.body:
        ops[i.opcode] = ops.get(i.opcode, 0) + 1
    return ops, tuple(sorted({i.amount for i in program.body if i.amount is not None}))


def test_published_kernels_have_the_published_shape() -> None:
    blur = load_program(KERNELS / "published" / "box_blur.quill")
    assert shape(blur) == ({Opcode.ROT: 2, Opcode.ADD_CC: 2}, (1, 4))
    baseline = load_program(KERNELS / "baselines" / "box_blur.quill")
    assert shape(baseline) == ({Opcode.ROT: 3, Opcode.ADD_CC: 3}, (1, 4, 5))
    dot = load_program(KERNELS / "published" / "dot_product.quill")
    assert [p.kind for p in dot.params] == [Kind.CT, Kind.PT]
    ops, amounts = shape(dot)
    assert ops[Opcode.MUL_CP] == 1 and amounts == (1, 2, 4)


def _check_outcome(text: str) -> None:
    """``parse_program(text)`` returns a valid Program or raises a located QuillError."""
    try:
        program = parse_program(text, "junk.quill")
    except QuillError as e:
        assert e.location is not None and e.location.file == "junk.quill"
        assert 1 <= e.location.line <= text.count("\n") + 1
        assert e.location.column >= 1
        assert str(e).startswith(f"junk.quill:{e.location.line}:{e.location.column}: ")
    else:
        assert isinstance(program, Program)
        assert parse_program(format_program(program)) == program


@pytest.mark.slow
@settings(max_examples=300)
@given(st.text())
def test_random_text_never_crashes(text: str) -> None:
    _check_outcome(text)


@settings(max_examples=300)
@given(st.text(alphabet="kernel()ct:pt{}=add,rot-1[]#\n x"))
def test_quill_flavoured_text_never_crashes(text: str) -> None:
    _check_outcome(text)


@pytest.mark.slow
@settings(max_examples=400)
@given(mutated_sources())
def test_mutated_programs_never_crash(text: str) -> None:
    _check_outcome(text)
