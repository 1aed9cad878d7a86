"""Parse Quill text into the IR of :mod:`quill.ir`, with errors a user can act on.

The grammar (``quill.lark``) fixes only the shape of the text. The :class:`_ToIR`
transformer turns the parse tree into a :class:`~quill.ir.Program` and makes every check
that needs names or kinds, in source order, so the error reported is the first one in the
file. Every failure is a :class:`~quill.errors.QuillSyntaxError` or
:class:`~quill.errors.QuillSemanticError` with a location and a hint; Lark's own exceptions
never escape (:mod:`quill.syntax_errors` words syntax errors, as for specs).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lark import Token, Transformer, v_args
from lark.tree import Meta

from quill.errors import Location, QuillError, QuillSemanticError, locate
from quill.ir import Const, Instr, Param, Program
from quill.ops import MNEMONICS, OPS, Kind, by_mnemonic, needs_swap, resolve
from quill.slots import T
from quill.syntax_errors import Grammar, Hint, Noun, shorten, transform

MAX_AMOUNT = 2**31
"""Rotation amounts must lie strictly inside ``±MAX_AMOUNT``: OpenFHE rotation indices are
32-bit, and ``rot(x, k)`` equals ``rot(x, k mod n)`` anyway."""

_GRAMMAR = Grammar(
    Path(__file__).with_name("quill.lark"),
    nouns={"NUMBER": Noun("a number", "number {}"), "_NL": Noun("a line break", "end of line")},
    newline="_NL",
    hints=[
        Hint(
            "a Quill file holds exactly one kernel; put the others in files of their own",
            token="KERNEL",
            accepts=frozenset({"$END"}),
        ),
        Hint(
            "every instruction names its result: write `name = op(operands)`",
            token="LPAR",
            accepts=frozenset({"EQUAL"}),
            exactly=True,
        ),
        Hint(
            "the kernel body is not closed: end it with '}'",
            token="$END",
            accepts=frozenset({"RBRACE"}),
        ),
    ],
)

RESERVED: frozenset[str] = _GRAMMAR.keywords
"""Words that cannot name a kernel or a value (the grammar's keywords)."""


# ---------------------------------------------------------------------------------------
# Syntax records: what the grammar rules hand to the kernel check, tokens kept for location.


@dataclass(frozen=True)
class _ParamStx:
    name: Token
    kind: Token


@dataclass(frozen=True)
class _ListStx:
    """A bracketed constant list and its span (for pointing at an empty ``[]``)."""

    values: tuple[Token, ...]
    line: int
    column: int
    width: int


@dataclass(frozen=True)
class _ConstStx:
    dest: Token
    values: tuple[Token, ...]
    span: _ListStx | None  # None for the scalar form const(INT)


@dataclass(frozen=True)
class _OpStx:
    dest: Token
    op: Token
    operands: tuple[Token, ...]


@dataclass(frozen=True)
class _ReturnStx:
    keyword: Token
    name: Token


def _present(children: Iterable[object]) -> list[object]:
    """Children without the ``None`` placeholders Lark puts for absent ``[...]`` parts."""
    return [c for c in children if c is not None]


def _arity(mnemonic: str) -> tuple[int, bool]:
    """Number of value operands of ``mnemonic`` and whether it takes a rotation amount.

    Every form of one mnemonic has the same shape, so the first form in the table decides.
    """
    info = by_mnemonic(mnemonic)
    return len(info.operands), info.has_amount


def _forms(mnemonic: str) -> str:
    """The forms of ``mnemonic`` the table offers, e.g. ``"add(ct, ct), add(ct, pt)"``."""
    infos = [i for i in OPS.values() if i.mnemonic == mnemonic]
    return ", ".join(
        f"{mnemonic}({', '.join([*map(str, i.operands), *(['k'] if i.has_amount else [])])})"
        for i in infos
    )


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


class _ToIR(Transformer[Token, Program]):
    """Parse tree -> :class:`Program`, checking names, kinds and statement order."""

    def __init__(self, file: str, text: str) -> None:
        super().__init__()
        self.file = file
        self.text = text
        # name -> (kind, defining token) for every value defined so far, in source order.
        self.env: dict[str, tuple[Kind, Token]] = {}
        # name -> first defining token anywhere in the body, for "used before defined".
        self.defs: dict[str, Token] = {}

    # -- grammar rules -----------------------------------------------------------------

    def start(self, children: list[Program]) -> Program:
        return children[0]

    def param(self, children: list[Token]) -> _ParamStx:
        return _ParamStx(children[0], children[1])

    @v_args(meta=True)
    def const_list(self, meta: Meta, children: list[Token | None]) -> _ListStx:
        values = tuple(c for c in children[1:] if c is not None)  # children[0] is '['
        width = meta.end_column - meta.column if meta.end_line == meta.line else 1
        return _ListStx(values, meta.line, meta.column, width)

    def const_def(self, children: list[Token | _ListStx]) -> _ConstStx:
        dest, body = children
        assert isinstance(dest, Token)
        if isinstance(body, _ListStx):
            return _ConstStx(dest, body.values, body)
        return _ConstStx(dest, (body,), None)

    def op_def(self, children: list[Token | None]) -> _OpStx:
        dest, op, *operands = children
        assert dest is not None and op is not None
        return _OpStx(dest, op, tuple(t for t in operands if t is not None))

    def ret(self, children: list[Token]) -> _ReturnStx:
        return _ReturnStx(children[0], children[1])

    def kernel(self, children: list[object]) -> Program:
        name, *rest = _present(children)
        close = rest.pop()  # the closing '}', where a missing return is reported
        assert isinstance(name, Token) and isinstance(close, Token)
        params = self._params(name, [c for c in rest if isinstance(c, _ParamStx)])
        stmts = [c for c in rest if isinstance(c, (_ConstStx, _OpStx, _ReturnStx))]
        for s in stmts:
            if not isinstance(s, _ReturnStx):
                self.defs.setdefault(s.dest, s.dest)
        consts: list[Const] = []
        body: list[Instr] = []
        result: str | None = None
        for s in stmts:
            if result is not None:
                where = s.keyword if isinstance(s, _ReturnStx) else s.dest
                raise self._error(
                    "statement after return",
                    where,
                    "`return` ends the kernel, so it must be its last statement: move it "
                    "below this line (a kernel returns exactly one value)",
                )
            if isinstance(s, _ConstStx):
                consts.append(self._const(s))
            elif isinstance(s, _OpStx):
                body.append(self._instr(s))
            else:
                result = self._return(s)
        if result is None:
            last = body[-1].dest if body else next(p.name for p in params if p.kind is Kind.CT)
            raise self._error(
                f"kernel '{name}' has no return statement",
                close,
                f"end the body with `return NAME` naming the ciphertext the kernel computes, "
                f"e.g. `return {last}`",
            )
        return Program(str(name), tuple(params), tuple(consts), tuple(body), result)

    # -- checks --------------------------------------------------------------------------

    def _at(self, token: Token) -> Location:
        return locate(self.file, self.text, token.line or 1, token.column or 1, len(token))

    def _error(self, message: str, token: Token, hint: str) -> QuillSemanticError:
        return QuillSemanticError(message, self._at(token), hint)

    def _params(self, kernel: Token, params: list[_ParamStx]) -> list[Param]:
        out: list[Param] = []
        for p in params:
            if p.name in self.env:
                raise self._error(
                    f"parameter '{p.name}' is declared twice",
                    p.name,
                    f"give each parameter its own name (the first '{p.name}' is on line "
                    f"{self.env[p.name][1].line})",
                )
            kind = Kind(str(p.kind))
            self.env[str(p.name)] = (kind, p.name)
            out.append(Param(str(p.name), kind))
        if all(p.kind is not Kind.CT for p in out):
            raise self._error(
                f"kernel '{kernel}' has no ciphertext parameter",
                kernel,
                "a kernel computes on encrypted data: declare at least one input as `name: ct`",
            )
        return out

    def _check_new(self, dest: Token) -> None:
        """SSA: each name is defined once. Checked before the operands (source order), but
        ``dest`` is bound only after them, so an instruction cannot read its own result."""
        if dest in self.env:
            first = self.env[dest][1]
            raise self._error(
                f"'{dest}' is already defined (line {first.line})",
                dest,
                "Quill is in SSA form: every value is assigned exactly once; give this "
                f"result a new name such as '{dest}_2' and use that below",
            )

    def _kind_of(self, token: Token) -> Kind:
        """The kind of a value used as an operand; it must already be defined."""
        if token in self.env:
            return self.env[token][0]
        later = self.defs.get(token)
        if later is not None:
            if later.line == token.line:  # `y = add(y, x)`: a result used in its own definition
                raise self._error(
                    f"'{token}' is used in its own definition",
                    token,
                    "an instruction cannot read its result: use a value defined above",
                )
            raise self._error(
                f"'{token}' is used before it is defined (on line {later.line})",
                token,
                f"move this statement below the definition of '{token}'",
            )
        raise self._error(
            f"'{token}' is not defined",
            token,
            "define it above this line (with an instruction or `const(...)`) or declare it "
            "as a kernel parameter" + _suggest(token, self.env),
        )

    def _integer(self, token: Token, what: str, bound: int, hint: str) -> int:
        """The integer a NUMBER token spells, which must lie strictly inside ``±bound``."""
        if token.type != "NUMBER" or "." in token:
            shown = f"'{shorten(token)}'" if token.type == "NAME" else shorten(token)
            raise self._error(f"{what} must be an integer, got {shown}", token, hint)
        digits = token.lstrip("-")
        # Length first: Python refuses to convert strings of thousands of digits.
        value = int(token) if len(digits) <= 30 else bound
        if not -bound < value < bound:
            raise self._error(f"{what} {shorten(token)} is out of range", token, hint)
        return value

    def _const(self, s: _ConstStx) -> Const:
        self._check_new(s.dest)
        if not s.values:
            assert s.span is not None  # the scalar form always has its one value
            where = locate(self.file, self.text, s.span.line, s.span.column, s.span.width)
            raise QuillSemanticError(
                f"constant '{s.dest}' has no values",
                where,
                "write at least one value: `const(2)` puts 2 in every slot, `const([1, 0])` "
                "repeats 1, 0 across the slots",
            )
        hint = f"slot values are integers mod {T}: write whole numbers from {1 - T} to {T - 1}"
        values = tuple(self._integer(v, "constant value", T, hint) for v in s.values)
        self.env[str(s.dest)] = (Kind.PT, s.dest)
        return Const(str(s.dest), values)

    def _instr(self, s: _OpStx) -> Instr:
        self._check_new(s.dest)
        op = str(s.op)
        if op not in MNEMONICS:
            hint = "valid operations: " + ", ".join(sorted(MNEMONICS))
            raise self._error(
                f"unknown operation '{op}'",
                s.op,
                hint + ", and `const(...)` for constants" + _suggest(op, MNEMONICS),
            )
        count, has_amount = _arity(op)
        operands = list(s.operands)
        amount: int | None = None
        if has_amount:
            if len(operands) == count:
                raise self._error(
                    f"'{op}' needs a rotation amount",
                    s.op,
                    f"write `{op}({', '.join(operands) or 'x'}, k)` with an integer k: slot i "
                    "of the result is slot i + k of the input",
                )
            if len(operands) != count + 1:
                raise self._error(
                    f"'{op}' takes a value and an integer amount, got {len(operands)} operands",
                    s.op,
                    f"write `{op}(x, k)`, e.g. `{op}(x, 1)`",
                )
            token = operands.pop()
            amount = self._integer(
                token,
                "rotation amount" if by_mnemonic(op).rotates else f"{op} amount",
                MAX_AMOUNT,
                "amounts are fixed when the kernel is compiled (each rotation needs its own "
                f"key): write a literal integer such as `{op}(x, 1)`, within "
                f"±{MAX_AMOUNT - 1}",
            )
            info = by_mnemonic(op)
            if not info.amount_ok(amount):
                raise self._error(
                    f"'{op}' takes {info.amounts} as its amount, got {amount}",
                    token,
                    f"write e.g. `{op}(x, 8)`",
                )
        elif len(operands) != count:
            names = ", ".join("abc"[:count])
            raise self._error(
                f"'{op}' takes {count} operand{'s' * (count != 1)}, got {len(operands)}",
                s.op,
                f"write `{op}({names})`",
            )
        for v in operands:
            if v.type != "NAME":
                raise self._error(
                    f"'{op}' operates on values, not numbers: got {v}",
                    v,
                    f"define a constant first, e.g. `k = const({v})`, and use its name",
                )
        kinds = tuple(self._kind_of(v) for v in operands)
        opcode = resolve(op, kinds)
        if opcode is None:
            raise self._no_form(s.op, operands, kinds)
        args = tuple(map(str, operands))
        if needs_swap(opcode, kinds):  # plaintext written first: store in the table's order
            args = args[::-1]
        self.env[str(s.dest)] = (Kind.CT, s.dest)
        return Instr(str(s.dest), opcode, args, amount)

    def _no_form(self, op: Token, operands: list[Token], kinds: tuple[Kind, ...]) -> QuillError:
        """The error for an op applied to operand kinds that no instruction form takes."""
        names = ", ".join(f"'{v}'" for v in operands)
        if all(k is Kind.PT for k in kinds):
            if len(kinds) == 1:
                what = "rotating" if by_mnemonic(str(op)).rotates else f"'{op}' of"
                return self._error(
                    f"{what} a plaintext ({names}) is not an HE instruction: '{op}' works on "
                    "ciphertexts",
                    op,
                    f"apply '{op}' to the values yourself and write the result as a constant "
                    "(`name = const([...])`), or apply it to a ciphertext",
                )
            return self._error(
                f"'{op}' of two plaintexts ({names}): plaintext-plaintext arithmetic is not "
                "an HE instruction",
                op,
                "fold it into a constant: compute the values yourself and write "
                "`name = const([...])`",
            )
        if op == "sub" and kinds == (Kind.PT, Kind.CT):
            a, b = operands
            return self._error(
                f"there is no plaintext-minus-ciphertext instruction ('{op}({a}, {b})')",
                op,
                f"write `n = neg({b})` then `add(n, {a})`",
            )
        shown = ", ".join(map(str, kinds))
        return self._error(
            f"'{op}' has no form for operands ({shown})", op, f"the forms are {_forms(op)}"
        )

    def _return(self, s: _ReturnStx) -> str:
        if s.name not in self.env and s.name not in self.defs:
            raise self._error(
                f"the kernel returns '{s.name}', which is not defined",
                s.name,
                "return a value defined above (a ciphertext parameter or an instruction's "
                "result)" + _suggest(s.name, self.env),
            )
        if self._kind_of(s.name) is Kind.PT:
            raise self._error(
                f"'{s.name}' is a plaintext, but a kernel must return a ciphertext",
                s.name,
                "return an instruction's result or a ciphertext parameter; a plaintext result "
                "needs no encryption and can be computed without HE",
            )
        return str(s.name)


# ---------------------------------------------------------------------------------------
# Public API


def parse_program(text: str, file: str = "<quill>") -> Program:
    """Parse one Quill kernel from ``text``; ``file`` names it in error locations.

    Raises :class:`QuillSyntaxError` when the text does not have Quill's shape and
    :class:`QuillSemanticError` when it does but is not a valid kernel (undefined or
    redefined names, wrong operands, misplaced or missing return, ...).
    """
    program: Program = transform(_ToIR(file, text), _GRAMMAR.parse(text, file))
    return program


def load_program(path: str | Path) -> Program:
    """Read and parse the Quill kernel in the file at ``path``.

    Raises :class:`QuillError` also when the file cannot be read or is not UTF-8 text.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise QuillError(f"cannot read {path}: {e}") from None
    return parse_program(text, str(path))
