"""What every step of the pipeline (:mod:`porcupine.pipeline`) works from: one spec, its
reference, the options, the budget, and the kernel the user gave to start from."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import cached_property

from porcupine.budget import Budget
from porcupine.options import Options
from porcupine.results import InstanceKernel
from quill.ir import Program
from quill.spec import Spec
from quill.verify import Reference, reference, verify


@dataclass(frozen=True, kw_only=True)
class Context:
    """One synthesis's inputs, carried through the steps.

    ``reference`` (the spec evaluated on symbolic inputs, the dearer half of every proof)
    is evaluated once, when a step first needs it, and shared by every proof after.
    """

    spec: Spec
    options: Options
    budget: Budget
    initial: Program | None = None  # a verified kernel the result must be no worse than
    start: float = field(default_factory=time.monotonic)  # when the synthesis began
    instance: InstanceKernel | None = None  # a smallest instance's kernel, already found
    # A reference already evaluated elsewhere for this spec's polynomials (not compared:
    # it is a cache, not an input).
    given_reference: Reference | None = field(default=None, compare=False, repr=False)

    @cached_property
    def reference(self) -> Reference:
        """The spec's reference, evaluated on first use unless given (a frozen dataclass
        still lets ``cached_property`` store it: it writes the instance's dict directly)."""
        return self.given_reference or reference(self.spec)

    def _evaluated(self) -> Reference | None:
        """The reference if it was given or evaluated already, without evaluating it."""
        return self.__dict__.get("reference", self.given_reference)

    def proves(self, program: Program) -> bool:
        """Whether ``program`` is proven equal to the spec."""
        return verify(program, self.reference).ok

    def for_spec(self, spec: Spec, budget: Budget | None = None) -> Context:
        """A context for another spec (a packing, an instance, a step), started now, with
        no initial kernel (one for this spec says nothing of another) and ``budget`` if
        given."""
        budget = budget or self.budget
        return replace(
            self,
            spec=spec,
            initial=None,
            budget=budget,
            start=time.monotonic(),
            given_reference=None,
        )

    def for_staged(self, staged: Spec) -> Context:
        """A context for ``staged``, this spec with stages of its own whose polynomials are
        this spec's (:func:`porcupine.staging.decompose.decompose` checks them equal): its
        whole kernel is proven against this spec's reference, which is then evaluated once
        (Harris at its 4x8 instance: one evaluation and one proof fewer, 0.4 s)."""
        return replace(self.for_spec(staged), given_reference=self.reference)

    def with_budget(self, budget: Budget) -> Context:
        """This context under ``budget``, started now (its reference, once evaluated, is
        kept)."""
        return replace(
            self, budget=budget, start=time.monotonic(), given_reference=self._evaluated()
        )
