"""The paper's counts of its synthesized kernels, to set beside ours.

Preferred source: the ``published`` block of ``kernels/results/NAME.json`` (written by
``eval/synthesize_suite.py``), whose ``from_paper`` list names the counts taken from the
paper. Fallback, when that file is missing: :data:`PAPER_COUNTS`, transcribed from
``shared/reference/porcupine-kernels.md`` (Porcupine, Cowan et al., PLDI 2021).
"""

from __future__ import annotations

import json
from pathlib import Path

COUNT_KEYS = ("instructions", "rotations", "additions", "ct_pt_mults", "ct_ct_mults", "mult_depth")
"""The counts the paper gives per kernel (``additions`` counts add, sub and negate)."""

PAPER_GEOMEAN_SPEEDUP = 1.25
"""The paper's geometric-mean speedup over hand-optimized kernels (PLDI version)."""


def _row(rot: int, add: int, ct_pt: int, ct_ct: int, depth: int) -> dict[str, int]:
    values = (rot + add + ct_pt + ct_ct, rot, add, ct_pt, ct_ct, depth)
    return dict(zip(COUNT_KEYS, values, strict=True))


PAPER_COUNTS: dict[str, dict[str, int]] = {
    "box_blur": _row(2, 2, 0, 0, 0),
    "dot_product": _row(3, 3, 1, 0, 0),
    "hamming_distance": _row(2, 5, 0, 1, 1),
    "l2_distance": _row(2, 3, 0, 1, 1),
    "linear_regression": _row(0, 2, 0, 1, 1),
    "polynomial_regression": _row(0, 3, 0, 2, 2),
    "gx": _row(4, 3, 0, 0, 0),
    "gy": _row(4, 3, 0, 0, 0),
    "roberts_cross": _row(3, 3, 0, 2, 1),
}
"""Counts of porcupine-kernels.md's table; sobel and harris have none there."""


def paper_counts(name: str, results_dir: Path) -> dict[str, int]:
    """The paper's counts for kernel ``name`` (only those the paper gives; may be empty)."""
    path = results_dir / f"{name}.json"
    if path.is_file():
        block = json.loads(path.read_text()).get("published") or {}
        from_paper = block.get("from_paper", [])
        counts = {k: int(block[k]) for k in COUNT_KEYS if k in from_paper and k in block}
        if counts:
            return counts
    return dict(PAPER_COUNTS.get(name, {}))
