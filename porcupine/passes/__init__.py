"""Passes over verified kernels: rewrites outside the sketch, each kept only when the
objective says it pays and the rewrite is proven equal to the spec.

:mod:`~porcupine.passes.fewer_products` (ct*ct products refactored over Z_t, with
:mod:`~porcupine.passes.quadratic` for quadratic forms), :mod:`~.rotation_forms` (rotations
rearranged for hoisting, flat or separable); :mod:`~porcupine.passes.linear_forms` and
:mod:`~porcupine.passes.rewriting` are what they share.
"""

from porcupine.passes.fewer_products import fewer_products
from porcupine.passes.rotation_forms import rearranged_rotations

__all__ = ["fewer_products", "rearranged_rotations"]
