"""Quill: a small language for vectorized BFV kernels, with exact slot semantics, noise and
depth analysis, and a cost model. Knows nothing of Z3 or OpenFHE."""
