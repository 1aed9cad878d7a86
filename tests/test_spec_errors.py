"""Malformed specs: each fails with its own located, worded error, and no input text makes
the spec loader fail any other way."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quill.errors import QuillError, QuillSemanticError, QuillSyntaxError
from quill.spec import Spec, parse_spec

KERNELS = Path(__file__).resolve().parent.parent / "kernels"
SPEC_TEXTS = [p.read_text() for p in sorted(KERNELS.glob("*.spec"))]

HEAD = """spec k
param w = 4
param h = 4
slots w * h
input x: ct image(h, w)
"""  # five lines: the definition under test is on line 6
OUT = "output y[i][j]: image(h, w) = x[i][j]\n"


def fail(text: str) -> QuillError:
    with pytest.raises(QuillError) as info:
        parse_spec(text, "t.spec")
    return info.value


# (test id, spec text, error class, message fragment, (line, column) or None, caret width)
CASES: list[tuple[str, str, type[QuillError], str, tuple[int, int] | None, int]] = [
    # syntax
    ("missing '='", "spec k\nparam w 4\n", QuillSyntaxError, "expected '='", (2, 9), 1),
    ("missing ':'", HEAD + "output y[i][j] image(h, w) = x[i][j]\n", QuillSyntaxError,
     "unexpected keyword 'image'; expected ':' or '['", (6, 16), 5),
    ("dangling operator", HEAD + "output y[i][j]: image(h, w) = x[i][j] +\n", QuillSyntaxError,
     "unexpected end of file; expected an expression", (6, 40), 1),
    ("bad character", HEAD + "output y[i][j]: image(h, w) = x[i][j] @ 2\n", QuillSyntaxError,
     "unexpected character '@'; expected an operator", (6, 39), 1),
    ("two values in a row", HEAD + "output y[i][j]: image(h, w) = x[i][j] x[i][j]\n",
     QuillSyntaxError, "unexpected name 'x'", (6, 39), 1),
    ("keyword as name", HEAD + "input zero: ct vector(4)\n" + OUT, QuillSyntaxError,
     "'zero' is a reserved word, not a name", (6, 7), 4),
    ("unclosed paren", HEAD + "output y[i][j]: image(h, w) = (x[i][j]\n", QuillSyntaxError,
     "expected", (6, 39), 1),
    ("unknown layout", HEAD + "output y[i]: matrix(h) = x[i][0]\n", QuillSyntaxError,
     "unexpected name 'matrix'", (6, 14), 6),
    ("huge literal", "spec k\nparam w = " + "9" * 40 + "\n", QuillSyntaxError,
     "integer literal has 40 digits", (2, 11), 40),
    # sizes and layouts
    ("n not a power of two", HEAD.replace("slots w * h", "slots w * 3") + OUT,
     QuillSemanticError, "must be a power of two, but `slots` is 12; the nearest are 8 and 16",
     (4, 1), 11),
    ("layout larger than slots", HEAD.replace("slots w * h", "slots 8") + OUT,
     QuillSemanticError, "size mismatch: the layout image(4, 4) of input x has 16 elements but"
     " the kernel has only 8 slots", (5, 13), 11),
    ("unknown param", HEAD.replace("slots w * h", "slots w * hh") + OUT, QuillSemanticError,
     "unknown param hh in `slots`", (4, 11), 2),
    # names and indices
    ("unknown input", HEAD + "output y[i][j]: image(h, w) = z[i][j]\n", QuillSemanticError,
     "unknown input or stage z", (6, 31), 7),
    ("unbound index variable", HEAD + "output y[i][j]: image(h, w) = x[i][k]\n",
     QuillSemanticError, "unbound index variable k", (6, 36), 1),
    ("wrong number of indices in a read", HEAD + "output y[i][j]: image(h, w) = x[i]\n",
     QuillSemanticError, "wrong number of indices: x has layout image(4, 4)", (6, 31), 4),
    ("wrong number of indices in a head", HEAD + "output y[i]: image(h, w) = x[i][0]\n",
     QuillSemanticError, "wrong number of indices: output y has 1 but its layout image(4, 4)"
     " needs 2", (6, 1), 34),
    ("where names a non-index", HEAD + "output y[i][j]: image(h, w) = x[i][j] where k < 2\n",
     QuillSemanticError, "`where` names k, which is not an index of y", (6, 45), 1),
    ("duplicate declaration", HEAD + "param x = 3\n" + OUT, QuillSemanticError,
     "duplicate declaration: x is already declared as an input at line 5", (6, 1), 11),
    ("duplicate index", HEAD + "output y[i][i]: image(h, w) = x[i][i]\n", QuillSemanticError,
     "index i appears twice", (6, 13), 1),
    ("index shadows a param", HEAD + "output y[i][w]: image(h, w) = x[i][w]\n",
     QuillSemanticError, "index w of y has the name of a declared param", (6, 13), 1),
    ("sum variable shadows an index",
     HEAD + "output y[i][j]: image(h, w) = sum(i in 0..2) x[i][j]\n", QuillSemanticError,
     "sum variable i shadows", (6, 31), 22),
    # reads out of range
    ("read outside an input", HEAD + "output y[i][j]: image(h, w) = x[i][j+1]\n",
     QuillSemanticError, "out-of-range read: x[i][j + 1] at output y[0][3] reads x[0][4],"
     " outside input x's image(4, 4)", (6, 31), 9),
    ("read of a stage outside its region", HEAD
     + "stage g[i][j]: image(h, w) = x[i][j] where i < 2\noutput y[i][j]: image(h, w) = g[i][j]\n",
     QuillSemanticError, "g[i][j] at output y[2][0] reads g[2][0], outside the region of stage g"
     " (i < 2)", (7, 31), 7),
    ("empty sum", HEAD + "output s: scalar = sum(k in 3..3) x[0][k]\n", QuillSemanticError,
     "sum over k in 3..3 is empty at output s", (6, 20), 22),
    ("inverted sum", HEAD + "output s: scalar = sum(k in 3..1) x[0][k]\n", QuillSemanticError,
     "sum over k in 3..1 is inverted", (6, 20), 22),
    ("empty region", HEAD + "output y[i][j]: image(h, w) = x[i][j] where i < 0\n",
     QuillSemanticError, "no slot of output y matters", (6, 45), 5),
    # whole-spec structure
    ("missing slots", HEAD.replace("slots w * h\n", "") + OUT, QuillSemanticError,
     "missing `slots` declaration", None, 0),
    ("missing output", HEAD, QuillSemanticError, "missing output", None, 0),
    ("missing spec name", HEAD.replace("spec k\n", "") + OUT, QuillSemanticError,
     "missing `spec NAME`", None, 0),
    ("two outputs", HEAD + OUT + "output z[i][j]: image(h, w) = x[i][j]\n", QuillSemanticError,
     "exactly one output, but y is already the output", (7, 1), 37),
    ("plaintext-only output", HEAD + "input b: pt image(h, w)\n"
     "output y[i][j]: image(h, w) = b[i][j] * 2\n", QuillSemanticError,
     "plaintext-only output: y reads only the plaintext input(s) b", (7, 1), 41),
    ("stage cycle", HEAD + "stage a[i]: vector(w) = b[i]\nstage b[i]: vector(w) = a[i] + x[0][i]\n"
     "output y[i]: vector(w) = a[i]\n", QuillSemanticError,
     "stages read each other in a cycle: a -> b -> a", (6, 1), 28),
    ("dead stage", HEAD + "stage g[i][j]: image(h, w) = x[i][j]\n" + OUT, QuillSemanticError,
     "stage g is never read", (6, 1), 36),
    ("output read by a definition", HEAD + "output y[i][j]: image(h, w) = y[i][j]\n",
     QuillSemanticError, "y is the output; no definition can read it", (6, 31), 7),
    ("exponent too large", HEAD + "output y[i][j]: image(h, w) = x[i][j] ^ 1000\n",
     QuillSemanticError, "exponent 1000 is too large", (6, 31), 14),
    # cyclic reads (mod) and value ranges
    ("modulus zero", HEAD + "output y[i][j]: image(h, w) = x[i][j mod 0]\n", QuillSemanticError,
     "the modulus of `j mod 0` is 0 at output y[0][0]; it must be positive", (6, 42), 1),
    ("negative modulus", HEAD + "output y[i][j]: image(h, w) = x[i][(j + 1) mod (1 - w)]\n",
     QuillSemanticError, "the modulus of `(j + 1) mod (1 - w)` is -3", (6, 49), 5),
    ("modulus zero in a sum",
     HEAD + "output y[i][j]: image(h, w) = sum(k in 0..2) x[i][(j + k) mod (k * 3)]\n",
     QuillSemanticError, "is 0 at output y[0][0] (with k = 0)", (6, 64), 5),
    ("modulus zero in a where", HEAD + "output y[i][j]: image(h, w) = x[i][j] where i mod j < 1\n",
     QuillSemanticError, "the modulus of `i mod j` is 0 (with i = 0, j = 0)", (6, 51), 1),
    ("mod of a value", HEAD + "output y[i][j]: image(h, w) = (x[i][j] + 1) mod 2\n",
     QuillSemanticError, "`(x[i][j] + 1) mod 2` takes the remainder of a value that reads x",
     (6, 31), 19),
    ("percent for mod", HEAD + "output y[i][j]: image(h, w) = x[i][j % w]\n", QuillSyntaxError,
     "unexpected character '%'", (6, 38), 1),
    ("empty value range", HEAD.replace("image(h, w)\n", "image(h, w) in w..0\n") + OUT,
     QuillSemanticError, "the value range 4..0 of input x is empty", (5, 25), 7),
    ("value range too wide", HEAD.replace("image(h, w)\n", "image(h, w) in -1..40000\n") + OUT,
     QuillSemanticError, "the value range of input x has bound 40000, outside -32768..32768",
     (5, 32), 5),
    ("bits and a wider range", HEAD.replace("image(h, w)\n", "image(h, w) bits in 0..2\n") + OUT,
     QuillSemanticError, "input x is `bits` (0 or 1), but its value range is 0..2", (5, 30), 7),
    ("two value ranges", HEAD.replace("image(h, w)\n", "image(h, w) in 0..1 in 0..2\n") + OUT,
     QuillSyntaxError, "the value range is given twice for input x", (5, 33), 7),
    ("unknown param in a range", HEAD.replace("image(h, w)\n", "image(h, w) in 0..m\n") + OUT,
     QuillSemanticError, "unknown param m in the value range of input x", (5, 31), 1),
    ("value range without bounds", HEAD.replace("image(h, w)\n", "image(h, w) in\n") + OUT,
     QuillSyntaxError, "unexpected keyword 'output'; expected an expression", (6, 1), 6),
    # hints
    ("unknown hint op", HEAD + OUT + "hint ops add, rot\n", QuillSemanticError,
     "unknown op add in `hint ops`", (7, 10), 3),
    ("rotation by zero", HEAD + OUT + "hint rotations w * h\n", QuillSemanticError,
     "a rotation by 0 (mod 16)", (7, 16), 5),
    ("duplicate hint", HEAD + OUT + "hint ops rot\nhint ops rot\n", QuillSemanticError,
     "`hint ops` is already given", (8, 1), 12),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "cls", "fragment", "where", "width"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_error(
    text: str, cls: type[QuillError], fragment: str, where: tuple[int, int] | None, width: int
) -> None:
    e = fail(text)
    assert type(e) is cls, str(e)
    assert fragment in e.message, str(e)
    if where is None:
        assert e.location is None
        return
    assert e.location is not None
    assert (e.location.file, e.location.line, e.location.column) == ("t.spec", *where), str(e)
    assert e.location.width == width, str(e)
    line = text.splitlines()[where[0] - 1]
    rendered = str(e)
    assert rendered.startswith(f"t.spec:{where[0]}:{where[1]}: ")
    assert f"\n    {line}\n    {' ' * (where[1] - 1)}{'^' * width}" in rendered


def test_errors_are_distinct() -> None:
    fragments = [c[3] for c in CASES]
    assert len(set(fragments)) == len(fragments)
    assert len(CASES) >= 15


def test_unknown_param_override_lists_params() -> None:
    with pytest.raises(
        QuillSemanticError, match=r"unknown param override 'q': spec k has params w, h"
    ):
        parse_spec(HEAD + OUT, "t.spec", {"q": 3})


def test_hints_say_how_to_fix() -> None:
    assert "pad zero" in fail(HEAD + "output y[i][j]: image(h, w) = x[i][j+1]\n").hint
    assert "valid ops: add_cc, sub_cc" in fail(HEAD + OUT + "hint ops add\n").hint
    assert "did you mean x?" in fail(HEAD + "output y[i][j]: image(h, w) = xx[i][j]\n").hint
    outside = fail(
        "spec k slots 4 input a: ct vector(4) output s: scalar = sum(k in 0..4) a[k] - a[k]"
    )
    assert "a sum's body is one product" in outside.hint
    assert "written `a mod m`" in fail(HEAD + "output y[i][j]: image(h, w) = x[i][j % 2]\n").hint
    assert "`bits` alone means 0..1" in fail(HEAD.replace("w)\n", "w) bits in 0..9\n") + OUT).hint


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    head = "spec k slots 4 input x: ct scalar output y: scalar = "
    assert parse_spec(head + "(" * 3000 + "x" + ")" * 3000)  # parentheses make no nodes
    assert "nested too deeply" in fail(head + "(x + " * 3000 + "x" + ")" * 3000).message


def test_huge_sizes_are_refused_quickly() -> None:
    assert (
        "more than the 8192 in a row of the largest ring"
        in fail("spec k slots 2^20 input x: ct scalar output y: scalar = x").message
    )
    big = "spec k slots 4 input x: ct vector(4) output y: scalar = sum(k in 0..10^9) x[0]"
    assert "unrolls to more than" in fail(big).message


# --- no input makes the loader fail any other way ----------------------------------------

VOCAB = [
    "spec", "param", "slots", "input", "stage", "output", "hint", "ops", "rotations",
    "components", "constants", "ct", "pt", "vector", "image", "scalar", "bits", "pad", "zero",
    "where", "sum", "in", "x", "y", "i", "j", "k", "w", "h", "n", "0", "1", "4", "16", "(", ")",
    "[", "]", ":", "=", ",", "..", "+", "-", "*", "^", "<", "<=", "==", "!=", "#", "\n", "add_cc",
    "mod", "%", "-3", "255",
]  # fmt: skip


def check(text: str) -> None:
    try:
        result = parse_spec(text, "junk.spec")
    except QuillError as e:
        assert str(e)  # the message renders
    else:
        assert isinstance(result, Spec)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    check(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(VOCAB), max_size=60))
def test_random_token_soup(tokens: list[str]) -> None:
    check(" ".join(tokens))


@st.composite
def mutated_specs(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SPEC_TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        a = draw(st.integers(0, len(text)))
        b = draw(st.integers(a, min(len(text), a + 12)))
        edit = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        piece = draw(st.sampled_from(VOCAB) | st.text(max_size=3))
        if edit == "delete":
            text = text[:a] + text[b:]
        elif edit == "insert":
            text = text[:a] + piece + text[a:]
        elif edit == "replace":
            text = text[:a] + piece + text[b:]
        else:
            text = text[:b] + text[a:b] + text[b:]
    return text


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_specs())
def test_mutated_kernels(text: str) -> None:
    check(text)
