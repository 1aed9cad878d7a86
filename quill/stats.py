"""Static measures of a kernel: the one place instructions are counted."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from quill.ir import Instr, Program
from quill.ops import OPS
from quill.relin import place_relinearizations
from quill.transform import live_instructions


def ct_ct_depth(program: Program) -> int:
    """The static ct*ct multiplicative depth: what ``GetNoiseScaleDeg() - 1`` reaches."""
    depth = {p.name: 0 for p in program.params}
    for ins in program.body:
        below = max((depth[a] for a in ins.args if a in depth), default=0)
        depth[ins.dest] = below + (1 if OPS[ins.opcode].ct_ct_mult else 0)
    return depth[program.result]


@dataclass(frozen=True)
class Counts:
    """What a kernel executes, as emitted (dead code dropped, relinearizations placed).

    ``instructions`` counts everything but relinearizations, as the Porcupine paper does
    (it counts a ct*ct multiply as one instruction); ``relinearizations`` says how many of
    those multiplies' key switches the kernel pays after lazy placement.
    """

    instructions: int
    rotations: int
    sums: int  # library reductions (EvalSum)
    additions: int  # add, sub and negate, ciphertext or plaintext operand
    ct_pt_mults: int
    ct_ct_mults: int
    relinearizations: int
    rotation_keys: tuple[int, ...]
    mult_depth: int  # ct*ct multiplicative depth

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["rotation_keys"] = list(self.rotation_keys)
        return out


def counts(program: Program) -> Counts:
    """The :class:`Counts` of ``program``."""
    lowered = place_relinearizations(program)
    live = live_instructions(lowered)
    rows = [OPS[i.opcode] for i in live]
    return Counts(
        instructions=sum(1 for r in rows if r.counted),
        rotations=sum(1 for r in rows if r.rotates),
        sums=sum(1 for r in rows if r.sums),
        additions=sum(1 for r in rows if r.additive),
        ct_pt_mults=sum(1 for r in rows if r.multiplies_plaintext),
        ct_ct_mults=sum(1 for r in rows if r.ct_ct_mult),
        relinearizations=sum(1 for r in rows if r.relinearizes),
        rotation_keys=tuple(
            sorted(
                {
                    k
                    for i in live
                    if i.amount is not None
                    for k in OPS[i.opcode].rotation_keys(i.amount)
                }
            )
        ),
        mult_depth=ct_ct_depth(lowered),
    )


def _keys(live: list[Instr]) -> tuple[int, ...]:
    """The rotation keys the instructions need, from the op table."""
    keys = {k for i in live if i.amount is not None for k in OPS[i.opcode].rotation_keys(i.amount)}
    return tuple(sorted(keys))
