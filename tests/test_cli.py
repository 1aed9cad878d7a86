"""The command line: commands, exit codes, clear errors, nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from porcupine.backend import calibrate
from porcupine.cli import main
from quill.cost import KEYS, load_table, save_table

ROOT = Path(__file__).parent.parent
KERNELS = ROOT / "kernels"


def porcupine(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "porcupine.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


def test_help_lists_the_commands() -> None:
    out = porcupine("--help")
    assert out.returncode == 0
    for command in ("synth", "check", "emit", "run", "interpret", "calibrate"):
        assert command in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["synth", "kernels/nope.spec"], "no spec file kernels/nope.spec"),
        (["synth", "kernels/box_blur.spec", "--param", "w"], "--param expects NAME=INTEGER"),
        (["synth", "kernels/box_blur.spec", "--param", "q=3"], "q"),
        (["synth", "kernels/box_blur.spec", "--param", "w=3"], "power of two"),
        (["check", "kernels/nope.quill", "--spec", "kernels/box_blur.spec"], "no Quill program"),
        (["synth", "kernels/box_blur.spec", "--costs", "missing.json"], "porcupine calibrate"),
    ],
)
def test_bad_input_exits_2_with_one_clear_message(args: list[str], message: str) -> None:
    out = porcupine(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_syntax_error_in_a_spec_points_at_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.spec"
    bad.write_text("spec k\nparam n = 4\nslots n\ninput x: ct vector(n\noutput y: scalar = x[0]\n")
    out = porcupine("synth", str(bad))
    assert out.returncode == 2
    # The unclosed parenthesis is noticed at the next token, the start of line 5.
    assert f"{bad}:5:1: syntax error" in out.stderr and "expected ')'" in out.stderr
    assert "\n    ^^^^^^\n" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_wrong_kernel_is_neither_emitted_nor_run(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.quill"
    wrong.write_text("kernel k(x: ct) {\n a = rot(x, 1)\n b = add(x, a)\n return b\n}\n")
    target = tmp_path / "k.py"
    out = porcupine("emit", str(wrong), "--spec", "kernels/box_blur.spec", "-o", str(target))
    assert out.returncode == 2 and "only verified kernels are emitted" in out.stderr
    assert not target.exists() and list(tmp_path.iterdir()) == [wrong]


def test_synth_emits_python_and_run_checks_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "blur.py"
    spec = str(KERNELS / "box_blur.spec")
    assert main(["synth", spec, "--emit", "python", "-o", str(target), "--quiet"]) == 0
    assert "def kernel(" in target.read_text()
    assert main(["run", spec, "--kernel", str(target), "--reps", "2"]) == 0
    assert "correct on all 9 output slots" in capsys.readouterr().out


def test_interpret_runs_a_kernel_in_plaintext(capsys: pytest.CaptureFixture[str]) -> None:
    program = str(KERNELS / "published" / "box_blur.quill")
    assert main(["interpret", program, "--spec", str(KERNELS / "box_blur.spec")]) == 0
    assert "at the 9 slots that matter: equal" in capsys.readouterr().out


def test_calibration_measures_every_row_and_round_trips(tmp_path: Path) -> None:
    table = calibrate(ring_dims=(8192,), reps=3)
    row = table.latency_ms[8192]
    assert set(row) == set(KEYS) and all(v > 0 for v in row.values())
    # The measured table reproduces the orders of magnitude in openfhe-bfv.md.
    assert row["add"] < row["rotate"] < row["mul_cc"]
    path = tmp_path / "costs.json"
    save_table(table, path, machine="test")
    assert load_table(path).latency_ms == table.latency_ms
    assert json.loads(path.read_text())["machine"] == "test"
