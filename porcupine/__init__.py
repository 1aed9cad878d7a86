"""Porcupine: a synthesizing compiler from kernel specs to verified, cheapest Quill programs,
and from those to OpenFHE code."""
