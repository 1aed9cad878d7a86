"""``porcupine synth --layout search``: try the client packings, keep the cheapest.

Each packing of :func:`porcupine.layouts.choices.options` (natural first) gets a share of the time
budget and is synthesized like any spec (by the pipeline, :mod:`porcupine.pipeline`, which
hands this module the function that does it); the kernel whose objective (at the parameters it
needs) is lowest wins, and every packing tried is reported with its cost, or why it gave
none. The packings are proven equal to the spec before any is tried
(:func:`porcupine.layouts.packing.check`), and each kernel is proven equal to its packing's spec.
The zero-padded packings are not searched from scratch: the natural kernel's products are
packed into their spare slots (:mod:`porcupine.layouts.spare_slots`), and tried when that pays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from porcupine.budget import Budget
from porcupine.errors import SynthesisError
from porcupine.layouts.choices import options as packing_options
from porcupine.layouts.packing import Packing
from porcupine.options import Options
from porcupine.results import SynthesisResult
from quill.cost import rank
from quill.spec import Spec

log = logging.getLogger("porcupine.layouts.packing")


@dataclass(frozen=True, kw_only=True)
class Tried:
    """One packing tried: the kernel found for it (a :class:`SynthesisResult`), or why not."""

    packing: Packing
    result: SynthesisResult | None
    error: str
    seconds: float

    def summary(self) -> dict[str, Any]:
        """The facts ``--json`` reports for this packing."""
        out: dict[str, Any] = {
            "packing": self.packing.name,
            "slots": self.packing.slots,
            "ciphertexts": len(self.packing.ciphertexts),
            "seconds": round(self.seconds, 2),
        }
        if self.result is not None:
            out["cost"] = round(self.result.cost, 4)
            out["instructions"] = len(self.result.program.body)
        else:
            out["error"] = self.error
        return out


def search_layouts(
    spec: Spec,
    budget: Budget,
    options: Options,
    kernel_for: Callable[[Packing, Budget], SynthesisResult],
    padded: Callable[[SynthesisResult], SynthesisResult],
) -> tuple[Tried, tuple[Tried, ...]]:
    """The cheapest packing's :class:`Tried`, and every packing tried (in order).
    ``kernel_for(packing, budget)`` synthesizes the packing's spec within ``budget``;
    ``padded(natural)`` is the natural kernel with its products in spare slots, or itself."""
    candidates = packing_options(spec)
    tried: list[Tried] = []
    for k, packing in enumerate(candidates):
        if budget.over:
            break
        log.info(
            "packing %s: %d slots, %d ciphertexts",
            packing.name,
            packing.slots,
            len(packing.ciphertexts),
        )
        start = time.monotonic()
        sub = budget.share(1 / (len(candidates) - k))  # an even share of the time left
        try:
            result = kernel_for(packing, sub)
            tried.append(_tried(packing, result, "", start))
            log.info("packing %s: %.3f ms", packing.name, result.cost)
        except SynthesisError as e:  # this packing gave no kernel in its time
            tried.append(_tried(packing, None, str(e), start))
            log.info("packing %s: %s", packing.name, e)
    if tried and tried[0].packing.name == "natural" and tried[0].result is not None:
        # Derived from the natural kernel (:mod:`porcupine.layouts.spare_slots`), not searched
        # from scratch; tried when that pays.
        start = time.monotonic()
        result = padded(tried[0].result)
        if result.packing is not None:
            tried.append(_tried(result.packing, result, "", start))
    found = [t for t in tried if t.result is not None]
    if not found:
        none = Tried(packing=candidates[0], result=None, error="out of time", seconds=0.0)
        return (tried[0] if tried else none), tuple(tried)
    best = min(found, key=lambda t: rank(t.result.measures, options.goal) if t.result else ())
    return best, tuple(tried)


def _tried(packing: Packing, result: SynthesisResult | None, error: str, start: float) -> Tried:
    return Tried(packing=packing, result=result, error=error, seconds=time.monotonic() - start)
