"""Client layouts ("packings"): how the client lays its inputs out in ciphertexts.

:mod:`~porcupine.layouts.packing` (a :class:`Packing` and the proof that its spec equals the
original), :mod:`~porcupine.layouts.choices` (what a spec's ``packing`` clauses ask for and
every option ``--layout search`` tries), :mod:`~porcupine.layouts.search` (trying them),
:mod:`~porcupine.layouts.spare_slots` (products packed into a zero-padded layout's spare
slots, ``--layout padded``).
"""

from porcupine.layouts.choices import options, requested
from porcupine.layouts.packing import Packing

__all__ = ["Packing", "options", "requested"]
