"""Probe OpenFHE's real BFV noise capacity and check :mod:`quill.noise` against it.

For each pattern below and each configured multiplicative depth, find the longest chain
that still decrypts correctly under real OpenFHE (t = 65537, 128-bit security, random
inputs), then check that the depth :func:`quill.noise.parameters` picks for every chain it
accepts really decrypts correctly. A chain the model accepts but that decrypts wrongly
means the model is too optimistic: its constants must be made more conservative.

Patterns (``L`` = chain length):

* ``square``      L consecutive ct*ct squarings;
* ``mul_pt``      L ct*pt multiplies by a random plaintext input;
* ``mul_mask``    L ct*pt multiplies by a 0/1 constant mask;
* ``rot_mul_pt``  L rounds of rotate-by-1 then ct*pt multiply;
* ``sum16_cc``    L rounds of: 16 ct*ct products ``rot(c, j) * c`` added up;
* ``sum16_pt``    L rounds of: 16 ct*pt products ``rot(c, j) * p`` added up.

Run: ``.venv/bin/python -m eval.noise_probe`` (about a minute on two cores).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from porcupine.backend import ProgramSpec, Session, emitted_module
from quill.ir import Const, Instr, Param, Program
from quill.noise import LOG2_Q, NoiseBudgetExceeded, parameters
from quill.ops import Kind, Opcode

Builder = Callable[[int, int], Program]


class _Chain:
    """Accumulates the instructions of one pattern's program."""

    def __init__(self) -> None:
        self.body: list[Instr] = []

    def op(self, opcode: Opcode, *args: str, amount: int | None = None) -> str:
        dest = f"v{len(self.body)}"
        self.body.append(Instr(dest, opcode, args, amount))
        return dest


def _program(name: str, params: list[Param], consts: list[Const], chain: _Chain) -> Program:
    return Program(name, tuple(params), tuple(consts), tuple(chain.body), chain.body[-1].dest)


def square(length: int, n: int) -> Program:
    chain, c = _Chain(), "x"
    for _ in range(length):
        c = chain.op(Opcode.MUL_CC, c, c)
    return _program(f"square_{length}", [Param("x", Kind.CT)], [], chain)


def mul_pt(length: int, n: int) -> Program:
    chain, c = _Chain(), "x"
    for _ in range(length):
        c = chain.op(Opcode.MUL_CP, c, "p")
    return _program(f"mul_pt_{length}", [Param("x", Kind.CT), Param("p", Kind.PT)], [], chain)


def mul_mask(length: int, n: int) -> Program:
    mask = Const("mask", tuple(int(b) for b in np.random.default_rng(n).integers(0, 2, n)))
    chain, c = _Chain(), "x"
    for _ in range(length):
        c = chain.op(Opcode.MUL_CP, c, "mask")
    return _program(f"mul_mask_{length}", [Param("x", Kind.CT)], [mask], chain)


def rot_mul_pt(length: int, n: int) -> Program:
    chain, c = _Chain(), "x"
    for _ in range(length):
        c = chain.op(Opcode.MUL_CP, chain.op(Opcode.ROT, c, amount=1), "p")
    params = [Param("x", Kind.CT), Param("p", Kind.PT)]
    return _program(f"rot_mul_pt_{length}", params, [], chain)


def _sum16(length: int, ct_ct: bool) -> tuple[list[Param], _Chain]:
    chain, c = _Chain(), "x"
    for _ in range(length):
        total = ""
        for j in range(16):
            r = chain.op(Opcode.ROT, c, amount=j) if j else c
            prod = chain.op(Opcode.MUL_CC, r, c) if ct_ct else chain.op(Opcode.MUL_CP, r, "p")
            total = chain.op(Opcode.ADD_CC, total, prod) if total else prod
        c = total
    params = [Param("x", Kind.CT)] + ([] if ct_ct else [Param("p", Kind.PT)])
    return params, chain


def sum16_cc(length: int, n: int) -> Program:
    params, chain = _sum16(length, ct_ct=True)
    return _program(f"sum16_cc_{length}", params, [], chain)


def sum16_pt(length: int, n: int) -> Program:
    params, chain = _sum16(length, ct_ct=False)
    return _program(f"sum16_pt_{length}", params, [], chain)


PATTERNS: dict[str, tuple[Builder, int]] = {
    "square": (square, 7),
    "mul_pt": (mul_pt, 12),
    "mul_mask": (mul_mask, 12),
    "rot_mul_pt": (rot_mul_pt, 12),
    "sum16_cc": (sum16_cc, 5),
    "sum16_pt": (sum16_pt, 7),
}
"""Each pattern's builder and the longest chain probed."""


@dataclass(frozen=True)
class Probe:
    """The longest correct chain of one pattern at one depth (-1: none probed correct)."""

    pattern: str
    depth: int
    longest: int
    model_longest: int  # the longest chain quill.noise accepts at this depth


def correct(program: Program, n: int, depth: int, seed: int) -> bool:
    """Whether ``program`` decrypts correctly at multiplicative ``depth``."""
    spec = ProgramSpec(program, n)
    module = emitted_module(program, spec, mult_depth=depth)
    session = Session([module])
    _, mismatches = session.check(module, spec, spec.random_inputs(np.random.default_rng(seed)))
    return not mismatches


def model_accepts(program: Program, n: int, depth: int) -> bool:
    """Whether quill.noise deems ``program`` correct at ``depth`` (some depth <= it)."""
    try:
        return parameters(program, n).mult_depth <= depth
    except NoiseBudgetExceeded:
        return False


def probe(pattern: str, depth: int, n: int, seed: int) -> Probe:
    """Longest correct chain of ``pattern`` at ``depth``, stopping at the first failure."""
    build, longest_probed = PATTERNS[pattern]
    longest = 0
    for length in range(1, longest_probed + 1):
        if not correct(build(length, n), n, depth, seed):
            break
        longest = length
    model = max(
        (k for k in range(1, longest_probed + 1) if model_accepts(build(k, n), n, depth)),
        default=0,
    )
    return Probe(pattern, depth, longest, model)


def check_model(pattern: str, n: int, seed: int) -> list[str]:
    """Problems: chains the model accepts whose picked depth decrypts wrongly."""
    build, longest_probed = PATTERNS[pattern]
    problems = []
    for length in range(1, longest_probed + 1):
        program = build(length, n)
        try:
            depth = parameters(program, n).mult_depth
        except NoiseBudgetExceeded:
            break
        if not correct(program, n, depth, seed):
            problems.append(f"{program.name}: model picks depth {depth}, which decrypts wrongly")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--slots", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--patterns", nargs="+", default=list(PATTERNS), choices=list(PATTERNS))
    args = parser.parse_args(argv)
    print("longest chain that decrypts correctly (measured / quill.noise accepts)")
    print(
        f"{'pattern':<12}"
        + "".join(f"  depth {d} (logQ {LOG2_Q.get(d, '?')})" for d in args.depths)
    )
    optimistic = []
    for pattern in args.patterns:
        cells = []
        for depth in args.depths:
            p = probe(pattern, depth, args.slots, args.seed)
            cells.append(f"{p.longest:>8} / {p.model_longest:<10}")
            if p.model_longest > p.longest:
                optimistic.append(f"{pattern} at depth {depth}: {p.model_longest} > {p.longest}")
        print(f"{pattern:<12}" + "".join(f"  {c:<20}" for c in cells), flush=True)
    problems = [msg for pattern in args.patterns for msg in check_model(pattern, args.slots, 0)]
    print("\nquill.noise.parameters: every chain it accepts, run at the depth it picks:")
    print("  all correct" if not problems else "\n".join(f"  WRONG: {m}" for m in problems))
    if optimistic:
        print("model more optimistic than measured:\n  " + "\n  ".join(optimistic))
    return 1 if problems or optimistic else 0


if __name__ == "__main__":
    sys.exit(main())
