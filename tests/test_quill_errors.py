"""Quill's error messages: each malformed program gets its own message, location and caret."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from quill.errors import QuillError, QuillSemanticError, QuillSyntaxError
from quill.parser import load_program, parse_program

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Case:
    """A malformed kernel and what its error must say and where it must point."""

    id: str
    lines: tuple[str, ...]
    error: type[QuillError]
    fragment: str
    line: int
    column: int
    caret: str = "^"
    hint: str = ""

    @property
    def source(self) -> str:
        return "\n".join(self.lines) + "\n"


HEAD = "kernel k(x: ct, p: pt) {"


def body(*statements: str) -> tuple[str, ...]:
    """The lines of ``kernel k(x: ct, p: pt)`` with ``statements`` as its body."""
    return (HEAD, *(f"    {s}" for s in statements), "}")


SYN, SEM = QuillSyntaxError, QuillSemanticError

CASES = [
    # -- syntax errors: the expected tokens in words, the caret under the offending token --
    Case("missing-close-paren", body("c = rot(x, 4", "return c"), SYN,
         "unexpected end of line; expected ')' or ','", 2, 17),
    Case("bad-character", body("c = add(x, @)", "return c"), SYN,
         "unexpected character '@'; expected a name or a number", 2, 16),
    Case("reserved-word", body("ct = add(x, x)", "return ct"), SYN,
         "'ct' is a reserved word, not a name", 2, 5, "^^", "reserved words are const, ct"),
    Case("missing-equals", body("c add(x, x)", "return c"), SYN,
         "unexpected name 'add'; expected '='", 2, 7, "^^^"),
    Case("no-result-name", body("add(x, x)", "return x"), SYN,
         "unexpected '('; expected '='", 2, 8, "^", "every instruction names its result"),
    Case("missing-close-brace", (HEAD, "    c = add(x, x)", "    return c"), SYN,
         "unexpected end of file; expected a name, 'return' or '}'", 3, 13, "^",
         "end it with '}'"),
    Case("param-without-kind", ("kernel k(x) {", "    return x", "}"), SYN,
         "unexpected ')'; expected ':'", 1, 11),
    Case("unknown-kind", ("kernel k(x: int) {", "    return x", "}"), SYN,
         "unexpected name 'int'; expected 'ct' or 'pt'", 1, 13, "^^^"),
    Case("two-kernels", ("kernel k(x: ct) {", "    return x", "}", "kernel j(x: ct) {",
                         "    return x", "}"), SYN,
         "unexpected keyword 'kernel'; expected the end of the file", 4, 1, "^^^^^^",
         "exactly one kernel"),
    # -- semantic errors: what is wrong and how to fix it, at the offending name --
    Case("undefined-value", body("c = add(x, y)", "return c"), SEM,
         "'y' is not defined", 2, 16, "^", "declare it as a kernel parameter"),
    Case("used-before-defined", body("c = add(x, d)", "d = neg(x)", "return c"),
         SEM, "'d' is used before it is defined (on line 3)", 2, 16, "^", "move this statement"),
    Case("defined-twice", body("c = add(x, x)", "c = neg(x)", "return c"),
         SEM, "'c' is already defined (line 2)", 3, 5, "^", "SSA"),
    Case("const-shadows-param", body("p = const(3)", "return x"), SEM,
         "'p' is already defined (line 1)", 2, 5),
    Case("duplicate-param", ("kernel k(x: ct, y: pt, x: ct) {", "    return x", "}"), SEM,
         "parameter 'x' is declared twice", 1, 24, "^", "its own name"),
    Case("no-ciphertext-param", ("kernel k(p: pt) {", "    return p", "}"), SEM,
         "kernel 'k' has no ciphertext parameter", 1, 8, "^", "`name: ct`"),
    Case("unknown-op", body("c = mult(x, p)", "return c"), SEM,
         "unknown operation 'mult'", 2, 9, "^^^^", "did you mean 'mul'?"),
    Case("too-few-operands", body("c = add(x)", "return c"), SEM,
         "'add' takes 2 operands, got 1", 2, 9, "^^^", "add(a, b)"),
    Case("too-many-operands", body("c = neg(x, p)", "return c"), SEM,
         "'neg' takes 1 operand, got 2", 2, 9, "^^^"),
    Case("number-operand", body("c = mul(x, 3)", "return c"), SEM,
         "'mul' operates on values, not numbers: got 3", 2, 16, "^", "k = const(3)"),
    Case("pt-times-pt", body("c = mul(p, p)", "return c"), SEM,
         "plaintext-plaintext arithmetic is not an HE instruction", 2, 9, "^^^",
         "fold it into a constant"),
    Case("pt-minus-ct", body("c = sub(p, x)", "return c"), SEM,
         "no plaintext-minus-ciphertext instruction", 2, 9, "^^^",
         "write `n = neg(x)` then `add(n, p)`"),
    Case("rotate-plaintext", body("c = rot(p, 1)", "return c"), SEM,
         "rotating a plaintext ('p') is not an HE instruction", 2, 9, "^^^"),
    Case("rotation-without-amount", body("c = rot(x)", "return c"), SEM,
         "'rot' needs a rotation amount", 2, 9, "^^^", "rot(x, k)"),
    Case("rotation-by-name", body("c = rot(x, p)", "return c"), SEM,
         "rotation amount must be an integer, got 'p'", 2, 16, "^", "literal integer"),
    Case("rotation-by-decimal", body("c = rot(x, 1.5)", "return c"), SEM,
         "rotation amount must be an integer, got 1.5", 2, 16, "^^^"),
    Case("empty-constant", body("m = const([])", "return x"), SEM,
         "constant 'm' has no values", 2, 15, "^^", "`const(2)` puts 2 in every slot"),
    Case("constant-out-of-range", body("m = const([1, 70000])", "return x"), SEM,
         "constant value 70000 is out of range", 2, 19, "^^^^^", "mod 65537"),
    Case("return-undefined", body("c = neg(x)", "return d"), SEM,
         "the kernel returns 'd', which is not defined", 3, 12),
    Case("return-plaintext", body("return p"), SEM,
         "'p' is a plaintext, but a kernel must return a ciphertext", 2, 12),
    Case("missing-return", body("c = neg(x)"), SEM,
         "kernel 'k' has no return statement", 3, 1, "^", "`return c`"),
    Case("statement-after-return", body("return x", "c = neg(x)"), SEM,
         "statement after return", 3, 5, "^", "must be its last statement"),
    Case("second-return", body("return x", "return x"), SEM,
         "statement after return", 3, 5, "^^^^^^"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_error_message_location_and_caret(case: Case) -> None:
    with pytest.raises(case.error) as info:
        parse_program(case.source, "bad.quill")
    e = info.value
    assert case.fragment in e.message
    assert case.hint in e.hint
    assert e.location is not None
    assert (e.location.file, e.location.line, e.location.column) == (
        "bad.quill",
        case.line,
        case.column,
    )
    header, source, caret, *rest = str(e).splitlines()
    assert header == f"bad.quill:{case.line}:{case.column}: {e.kind}: {e.message}"
    assert source == "    " + case.lines[case.line - 1]
    assert caret == "    " + " " * (case.column - 1) + case.caret
    assert rest == ([f"  hint: {e.hint}"] if e.hint else [])


def test_cases_are_distinct_and_enough() -> None:
    assert len({c.source for c in CASES}) == len(CASES) >= 15
    assert len({c.fragment for c in CASES}) >= 15


def test_empty_file() -> None:
    with pytest.raises(QuillSyntaxError, match="unexpected end of file; expected 'kernel'"):
        parse_program("# nothing here\n\n")


def test_load_program_reports_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(QuillError, match="cannot read"):
        load_program(tmp_path / "missing.quill")
    binary = tmp_path / "binary.quill"
    binary.write_bytes(b"\xff\xfe kernel")
    with pytest.raises(QuillError, match="cannot read"):
        load_program(binary)


# What a command-line front end does with a kernel file: parse it and print str(error).
_DRIVER = """
import sys
from quill.errors import QuillError
from quill.parser import load_program
try:
    load_program(sys.argv[1])
except QuillError as e:
    print(e, file=sys.stderr)
    sys.exit(2)
"""


@pytest.mark.subprocess
def test_errors_print_without_traceback(tmp_path: Path) -> None:
    sources = [c.source for c in CASES] + ["kernel \x00 (", "}}}}", "kernel k(x: ct) {\r\n"]
    for i, source in enumerate(sources):
        path = tmp_path / f"bad{i}.quill"
        path.write_text(source, encoding="utf-8")
        with pytest.raises(QuillError) as info:
            load_program(path)
        text = str(info.value)
        assert text.startswith(f"{path}:") and "Traceback" not in text
        assert info.value.__cause__ is None and info.value.__suppress_context__
    # One real process too: what reaches stderr is the message alone.
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(tmp_path / "bad0.quill")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"{tmp_path / 'bad0.quill'}:2:17: syntax error: ")
