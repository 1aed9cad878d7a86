"""Staging: making a spec small enough to search, and its kernel whole again.

:mod:`~porcupine.staging.instances` (the smallest instance with the same formula),
:mod:`~porcupine.staging.scale` (lifting its kernel to the full size),
:mod:`~porcupine.staging.decompose` (automatic stages at a flat formula's products), and
:mod:`~porcupine.staging.spec_build` (writing the derived specs as ordinary spec syntax).
"""

from porcupine.staging.decompose import decompose
from porcupine.staging.instances import smallest_instance
from porcupine.staging.scale import lift

__all__ = ["decompose", "lift", "smallest_instance"]
