"""Porcupine's evaluation: synthesized kernels against hand-written baselines and the
paper's published kernels, in counts and in encrypted latency (``python -m eval.run``)."""
