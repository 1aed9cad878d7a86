"""A spec whose reference is a Quill program, for running arbitrary programs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from quill.interp import interpret
from quill.ir import Program
from quill.slots import T
from quill.spec import Definition, Domain, InputDecl, Layout
from quill.spec_ast import Num


@dataclass(frozen=True)
class ProgramSpec:
    """A spec whose reference is a Quill program itself, on ``n`` plain vector slots.

    For probing the backend and the noise model on arbitrary programs (no synthesis is
    involved, so no real spec is needed): every input is a ``vector(n)`` of random values
    mod t and every output slot matters.
    """

    program: Program
    n: int

    @property
    def name(self) -> str:
        return self.program.name

    @property
    def inputs(self) -> tuple[InputDecl, ...]:
        layout = Layout("vector", (self.n,))
        return tuple(
            InputDecl(p.name, p.kind, layout, Domain.ZT, pad=False) for p in self.program.params
        )

    @property
    def output(self) -> Definition:
        region = tuple((i,) for i in range(self.n))
        return Definition("out", ("i",), Layout("vector", (self.n,)), Num(0), (), region)

    def output_slots(self) -> tuple[int, ...]:
        return tuple(range(self.n))

    def reference(self, inputs: Mapping[str, npt.ArrayLike]) -> dict[int, int]:
        out = interpret(self.program, {p.name: inputs[p.name] for p in self.program.params})
        return {i: int(v) for i, v in enumerate(out)}

    def random_inputs(self, rng: np.random.Generator) -> dict[str, npt.NDArray[np.int64]]:
        return {p.name: rng.integers(0, T, self.n, dtype=np.int64) for p in self.program.params}
