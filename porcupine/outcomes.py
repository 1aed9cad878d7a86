"""The facts a synthesis reports, as values rather than prose: where the kernel came from,
why a search stopped early, which layout was asked for, and which passes rewrote it.

The words people read are written from these at the command line
(:mod:`porcupine.cli.report`); nothing in the synthesizer decides on message text. The enums
are ``str`` enums whose values are what ``--json`` has always printed, so a value compares
equal to its old string.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from porcupine.budget import Budget
from quill.stats import Counts


class _Named(str, Enum):
    """A ``str`` enum that prints as its value (``str()`` and ``%s`` too, as in 3.11)."""

    def __str__(self) -> str:
        return str(self.value)


class Source(_Named):
    """Where the kernel of a result came from."""

    SYNTHESIZED = "synthesized"  # the sketch search, or the stages composed
    LIFTED = "lifted"  # found at the smallest instance and lifted (porcupine.staging.scale)
    INITIAL = "initial"  # the given initial kernel: nothing cheaper was found
    DIRECT = "direct"  # the formula written out, which no kernel of the sketch beat
    LOWERED = "lowered"  # the direct kernel with masks: the sketch cannot move data


class Stop(_Named):
    """Why the budget ended a search before it finished (``None``: it did not)."""

    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    MEMORY = "memory"  # the command's memory limit (reported by the CLI only)

    @classmethod
    def of(cls, budget: Budget) -> Stop | None:
        """Why ``budget`` is over, or ``None`` while it is not."""
        reason = budget.stop_reason()
        return None if reason is None else cls(reason)


class Layout(_Named):
    """How the client packs the inputs (``porcupine synth --layout``)."""

    GIVEN = "given"  # as the spec says
    PADDED = "padded"  # as the spec says, zero padded when spare slots make it cheaper
    SEARCH = "search"  # the cheapest of the client packings tried

    @classmethod
    def parse(cls, value: Layout | str) -> Layout:
        """``value`` as a layout; a ValueError naming the choices for anything else."""
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in cls)
            raise ValueError(f"layout {value!r} is not one of {choices}") from None


class Pass(_Named):
    """A pass over verified kernels (each keeps a rewrite only when it pays and verifies)."""

    FEWER_PRODUCTS = (
        "fewer_products"  # products refactored over Z_t (porcupine.passes.fewer_products)
    )
    ROTATIONS = "rotations"  # rotations rearranged for hoisting (porcupine.passes.rotation_forms)
    SLOT_PACKING = (
        "slot_packing"  # products packed into spare slots (porcupine.layouts.spare_slots)
    )


@dataclass(frozen=True, kw_only=True)
class PassApplied:
    """A pass that changed the kernel: which, and the kernel's counts before and after."""

    name: Pass
    before: Counts
    after: Counts

    def to_json(self) -> dict[str, object]:
        """The record as ``--json`` prints it."""
        return {
            "name": self.name.value,
            "before": self.before.as_dict(),
            "after": self.after.as_dict(),
        }
