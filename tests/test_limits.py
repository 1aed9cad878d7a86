"""Honest limits: sizes past the largest ring and absurd or incomplete cost tables are
located exit-2 errors before any work, on every command that reads them, and sizes that fit
give kernels in every layout (``--layout search`` offers no packing that no set can run).

The limit is a row of the largest ring of quill.params (LARGEST_ROW slots): the spec check
and the packings both use it. Spec sizes past it are tested in tests/test_cli_contract.py
(synth) and tests/test_spec_errors.py; cost tables given to synth, there too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import KERNELS, assert_clean, porcupine

from porcupine.layouts.choices import options
from quill.cost import DEFAULT_TABLE_PATH
from quill.params import LARGEST_ROW
from quill.spec import load_spec

COMPLEX_NORM = str(KERNELS / "corpus" / "complex_norm.spec")
BLUR_SPEC = str(KERNELS / "box_blur.spec")
BLUR_KERNEL = str(KERNELS / "published" / "box_blur.quill")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spec", "size"),
    [("corpus/complex_norm.spec", {"n": LARGEST_ROW}), ("dot_product.spec", {"n": LARGEST_ROW})],
)
def test_every_packing_offered_at_the_largest_size_fits_a_row(
    spec: str, size: dict[str, int]
) -> None:
    loaded = load_spec(KERNELS / spec, size)
    offered = options(loaded)
    assert offered and offered[0].name == "natural"
    assert all(p.slots <= LARGEST_ROW for p in offered), [(p.name, p.slots) for p in offered]


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.search
def test_complex_norm_at_the_largest_size_gives_a_kernel_with_layout_search() -> None:
    # It ended in an internal NoiseBudgetExceeded (a packing of two inputs in 16384 slots).
    out = porcupine(
        "synth", COMPLEX_NORM, "--param", f"n={LARGEST_ROW}", "--layout", "search", "--json"
    )
    assert_clean(out, 0)
    found = json.loads(out.stdout)
    assert found["verified"] and found["ring_dim"] == 2 * LARGEST_ROW


def _table(tmp_path: Path, name: str, key: str | None, value: float | None) -> str:
    """The package's table with one entry set to ``value`` (``key`` None: the whole set
    ``name`` dropped), as ``porcupine calibrate -o`` writes it."""
    data = json.loads(DEFAULT_TABLE_PATH.read_text())
    if key is None:
        del data["latency_ms"][name]
    else:
        data["latency_ms"][name][key] = value
    path = tmp_path / "costs.json"
    path.write_text(json.dumps(data, indent=2))
    return str(path)


COMMANDS = {
    "synth": ("synth", BLUR_SPEC),
    "check": ("check", BLUR_KERNEL, "--spec", BLUR_SPEC),
    "emit": ("emit", BLUR_KERNEL, "--spec", BLUR_SPEC, "-o", "k.py"),
}


@pytest.mark.subprocess
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    ("name", "key", "value", "message"),
    [
        (
            "n8192_q180_w0",
            "rotate",
            1e307,
            "latency_ms['n8192_q180_w0']['rotate'] is 1e+307 ms: a latency must lie between",
        ),
        ("n4096_q108_w0", None, None, "'latency_ms' has no row for parameter set n4096_q108_w0"),
    ],
)
def test_an_absurd_or_incomplete_table_is_refused_naming_file_row_and_value(
    tmp_path: Path, command: str, name: str, key: str | None, value: float | None, message: str
) -> None:
    table = _table(tmp_path, name, key, value)
    out = porcupine(*COMMANDS[command], "--costs", table, cwd=tmp_path)
    assert_clean(out, 2, f"cost table {table}: {message}")
    assert not (tmp_path / "k.py").exists()  # nothing is written
