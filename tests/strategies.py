"""Hypothesis strategies for valid Quill programs, shared by the test modules.

A generated :class:`~quill.ir.Program` is valid in exactly the sense the parser checks:
distinct names that are not reserved words, at least one ciphertext parameter, constants
within ±(T-1), instructions whose operands are defined earlier and have kinds some form of
the op accepts (stored in the op table's operand order), and a ciphertext result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from hypothesis import strategies as st

from eval.spec_grammar import FAMILIES, GeneratedSpec, any_spec
from quill.ir import Const, Instr, Param, Program
from quill.ops import MNEMONICS, OPS, Kind, Opcode
from quill.parser import RESERVED
from quill.printer import format_program
from quill.slots import T

X = TypeVar("X")

_FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_REST = _FIRST + "0123456789"

# Names that look like keywords or mnemonics are the interesting ones for the lexer.
_TRICKY_NAMES = [*sorted(MNEMONICS), "kernel_", "constant", "ctx", "pt2", "returns", "_", "x"]

names: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(_TRICKY_NAMES),
    st.builds(str.__add__, st.sampled_from(_FIRST), st.text(_REST, max_size=6)),
).filter(lambda s: s not in RESERVED)
"""Identifiers Quill accepts as kernel and value names."""

amounts: st.SearchStrategy[int] = st.integers(-70, 70) | st.integers(-(2**31) + 1, 2**31 - 1)
"""Rotation amounts, mostly small (and often negative), sometimes anywhere in range."""

windows: st.SearchStrategy[int] = st.sampled_from([1, 2, 4, 8, 16])
"""Amounts of a sum: powers of two."""

slot_values: st.SearchStrategy[int] = st.integers(-(T - 1), T - 1)
"""Values a constant may hold."""

slot_counts: st.SearchStrategy[int] = st.sampled_from([1, 2, 4, 8, 16, 32, 64])
"""Vector lengths n for running programs: powers of two."""


@st.composite
def programs(draw: st.DrawFn, slots: int | None = None, max_instrs: int = 10) -> Program:
    """A random valid Program.

    With ``slots`` given, every constant's length divides it, so the program can run on
    vectors of that many slots.
    """
    n_params = draw(st.integers(1, 4))
    n_consts = draw(st.integers(0, 3))
    n_instrs = draw(st.integers(0, max_instrs))
    size = n_params + n_consts + n_instrs
    value_names = draw(st.lists(names, min_size=size, max_size=size, unique=True))
    param_names = value_names[:n_params]
    const_names = value_names[n_params : n_params + n_consts]
    instr_names = value_names[n_params + n_consts :]

    kinds = draw(st.lists(st.sampled_from(Kind), min_size=n_params, max_size=n_params))
    kinds[draw(st.integers(0, n_params - 1))] = Kind.CT  # a kernel needs a ciphertext input
    params = tuple(Param(name, kind) for name, kind in zip(param_names, kinds, strict=True))

    if slots is None:
        lengths = st.integers(1, 6)
    else:
        lengths = st.sampled_from([d for d in (1, 2, 4, 8) if slots % d == 0])
    consts = tuple(
        Const(name, tuple(draw(st.lists(slot_values, min_size=k, max_size=k))))
        for name in const_names
        for k in [draw(lengths)]
    )

    values = {Kind.CT: [p.name for p in params if p.kind is Kind.CT]}
    values[Kind.PT] = [p.name for p in params if p.kind is Kind.PT] + list(const_names)
    body: list[Instr] = []
    for dest in instr_names:
        forms = [i for i in OPS.values() if all(values[k] for k in i.operands)]
        info = draw(st.sampled_from(forms))
        args = tuple(draw(st.sampled_from(values[k])) for k in info.operands)
        amount = None
        if info.has_amount:
            valid = amounts.filter(info.amount_ok) if info.opcode.value == "rot" else windows
            amount = draw(valid)
        body.append(Instr(dest, info.opcode, args, amount))
        values[Kind.CT].append(dest)

    result = draw(st.sampled_from(values[Kind.CT]))
    return Program(draw(names), params, consts, tuple(body), result)


@st.composite
def mutated_sources(draw: st.DrawFn) -> str:
    """The text of a valid program with a few characters deleted, inserted or swapped."""
    text = format_program(draw(programs(max_instrs=4)))
    alphabet = st.sampled_from("(){}[],:=#-.\n\t x01ckrtp") | st.characters()
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        edit = draw(st.sampled_from(["delete", "insert", "swap"]))
        if edit == "delete":
            text = text[:i] + text[i + 1 :]
        elif edit == "insert":
            text = text[:i] + draw(alphabet) + text[i:]
        else:
            j = draw(st.integers(0, len(text) - 1))
            chars = list(text)
            chars[i], chars[j] = chars[j], chars[i]
            text = "".join(chars)
    return text


class Writer:
    """A kernel written instruction by instruction, as the passes' strategies draw them:
    fresh names ``v0, v1, ...``, uniform constants ``c0, c1, ...`` shared by value."""

    def __init__(self, inputs: tuple[str, ...]) -> None:
        self.inputs = inputs
        self.body: list[Instr] = []
        self.consts: dict[int, str] = {}

    def emit(self, op: Opcode, *args: str, amount: int | None = None) -> str:
        dest = f"v{len(self.body)}"
        self.body.append(Instr(dest, op, args, amount))
        return dest

    def const(self, c: int) -> str:
        return self.consts.setdefault(c, f"c{len(self.consts)}")

    def program(self, result: str, name: str = "random") -> Program:
        params = tuple(Param(x, Kind.CT) for x in self.inputs)
        consts = tuple(Const(n, (c,)) for c, n in self.consts.items())
        return Program(name, params, consts, tuple(self.body), result)


class _Drawn:
    """The spec grammar's :class:`~eval.spec_grammar.Draw` on Hypothesis' ``draw``, so that
    the choices are recorded and shrink."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def choice(self, options: Sequence[X]) -> X:
        return self.draw(st.sampled_from(options))


@st.composite
def spec_texts(draw: st.DrawFn, family: str | None = None) -> GeneratedSpec:
    """The text of a random spec as a user writes it (:mod:`eval.spec_grammar`, the grammar
    the random-spec bench draws from too), of ``family`` or of any."""
    d = _Drawn(draw)
    return FAMILIES[family](d) if family is not None else any_spec(d)
