"""Quill's IR: straight-line SSA over named ciphertext and plaintext values.

Plain frozen dataclasses, so programs compare, hash and print structurally. Source
locations are not part of the IR (``parse(print(p)) == p`` must hold); the parser reports
them while it builds the IR.
"""

from __future__ import annotations

from dataclasses import dataclass

from quill.ops import Kind, Opcode


@dataclass(frozen=True)
class Param:
    """A kernel input: a ciphertext, or a plaintext the evaluator knows."""

    name: str
    kind: Kind


@dataclass(frozen=True)
class Const:
    """A plaintext constant. ``values`` repeat periodically to fill the slots, so ``(2,)`` is
    2 in every slot and ``(1, 0)`` alternates; the length must divide the slot count."""

    name: str
    values: tuple[int, ...]


@dataclass(frozen=True)
class Instr:
    """``dest = opcode(args..., amount)``; ``amount`` only for rotations."""

    dest: str
    opcode: Opcode
    args: tuple[str, ...]
    amount: int | None = None


@dataclass(frozen=True)
class Program:
    """A kernel: inputs, constants, instructions in order, and the returned value."""

    name: str
    params: tuple[Param, ...]
    consts: tuple[Const, ...]
    body: tuple[Instr, ...]
    result: str

    def __hash__(self) -> int:
        # Programs key the pricing caches (functools.lru_cache), which hash them at every
        # lookup: a whole program's instructions each time. A program never changes, so
        # its hash is computed once (and left out of pickles: hashes differ by process).
        try:
            return self.__dict__["_hash"]  # type: ignore[no-any-return]
        except KeyError:
            value = hash((self.name, self.params, self.consts, self.body, self.result))
            object.__setattr__(self, "_hash", value)
            return value

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    def kinds(self) -> dict[str, Kind]:
        """The kind of every value the program names."""
        kinds = {p.name: p.kind for p in self.params}
        kinds.update((c.name, Kind.PT) for c in self.consts)
        for ins in self.body:
            kinds[ins.dest] = Kind.CT  # every instruction yields a ciphertext
        return kinds
