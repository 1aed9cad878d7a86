"""The exit-status contract, class by class: options and files are refused before any work
with exit 2, claims are true, a kernel over the noise budget or with values that may wrap
is reported (exit 1), written files have normal permissions and nothing is half-written."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from helpers import (
    BLUR_KERNEL,
    BLUR_SPEC,
    KERNELS,
    NOISY_KERNEL,
    NOISY_SPEC,
    OVER_BUDGET_SPEC,
    ROOT,
    assert_clean,
    porcupine,
)

from porcupine.cli import main
from quill.cost import DEFAULT_TABLE_PATH

GX_SPEC = str(KERNELS / "gx.spec")

BAD_NUMBERS = ["", "abc", "-5", "+5", "0x10", "1e3", "inf", "nan", "١٢", " 7", "1_0", "9" * 40]


def _started(out: str) -> bool:
    """Whether a synth run got as far as the search (its progress lines)."""
    return "L=1: searching" in out


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("value", [*BAD_NUMBERS, "0", "65"])
def test_max_components_must_be_a_positive_whole_number(value: str) -> None:
    out = porcupine("synth", GX_SPEC, "--max-components", value)
    assert_clean(out, 2, "--max-components")
    assert not _started(out.stderr)


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("option", "value"),
    [
        *[("--timeout", v) for v in [*BAD_NUMBERS, "0", "0.0", "1000001"]],
        *[("--width", v) for v in [*BAD_NUMBERS, "0", "1", "32"]],
        *[("--max-memory", v) for v in ["", "abc", "-1G", "0", "1", "12", "4B", "nanG", "9" * 30]],
        ("--max-memory", "1000000T"),
        ("--param", "w=١"),
        ("--param", "w=1e3"),
        ("--param", "1w=4"),
        ("--param", "w=" + "9" * 30),
        ("--param", "w=99999999999"),
        ("--objective", "speed"),
    ],
)
def test_synth_options_are_checked_before_any_work(option: str, value: str) -> None:
    out = porcupine("synth", BLUR_SPEC, option, value)
    assert_clean(out, 2, option)
    assert not _started(out.stderr)


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize(
    "args",
    [
        ["run", BLUR_SPEC, "--program", BLUR_KERNEL, "--reps", "0"],
        ["run", BLUR_SPEC, "--program", BLUR_KERNEL, "--reps", "-3"],
        ["run", BLUR_SPEC, "--program", BLUR_KERNEL, "--seed", "-1"],
        ["run", BLUR_SPEC, "--program", BLUR_KERNEL, "--seed", "4294967296"],
        ["interpret", BLUR_KERNEL, "--spec", BLUR_SPEC, "--seed", "١"],
        ["calibrate", "--reps", "0"],
        ["check", BLUR_KERNEL, "--spec", BLUR_SPEC, "--timeout", "nan"],
        ["emit", BLUR_KERNEL, "--spec", BLUR_SPEC, "-o", "k.py", "--max-memory", "-2G"],
    ],
)
def test_every_command_checks_its_numbers(args: list[str], tmp_path: Path) -> None:
    out = porcupine(*args, cwd=tmp_path)
    assert_clean(out, 2, "error: argument")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.subprocess
def test_a_param_given_twice_is_refused() -> None:
    assert_clean(porcupine("synth", BLUR_SPEC, "--param", "w=4", "--param", "w=8"), 2, "twice")


@pytest.mark.parametrize(
    ("spec", "param", "fits"),
    [
        ("box_blur.spec", "w=4096", "--param w=2048"),
        ("dot_product.spec", "n=16384", "--param n=8192"),
    ],
)
def test_sizes_past_the_largest_ring_are_refused_saying_what_fits(
    spec: str, param: str, fits: str
) -> None:
    out = porcupine("synth", str(KERNELS / spec), "--param", param)
    assert_clean(out, 2, "more than the 8192 in a row of the largest ring")
    assert f"the largest that fits is {fits} (8192 slots)" in out.stderr
    assert "tiled by the application" in out.stderr
    assert not _started(out.stderr)


def _table(tmp_path: Path, edit: object) -> str:
    data = json.loads(DEFAULT_TABLE_PATH.read_text())
    path = tmp_path / "costs.json"
    path.write_text(edit(data) if callable(edit) else str(edit))
    return str(path)


def _set(ring: str, key: str, value: object) -> object:
    def edit(data: dict[str, dict[str, dict[str, object]]]) -> str:
        data["latency_ms"][ring][key] = value
        return json.dumps(data)

    return edit


def _drop(name: str) -> object:
    def edit(data: dict[str, dict[str, object]]) -> str:
        del data["latency_ms"][name]
        return json.dumps(data)

    return edit


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"latency_ms": {}}', "must map parameter set names"),
        ('{"latency_ms": {"n4096_q108_w0": {"add": 0.05}}}', "lacks add_pt"),
        ('{"latency_ms": {"n4096_q108_w0": [1]}}', "must be an object"),
        ('{"latency_ms": {"fast": {}}}', "'fast'] is not a parameter set"),
        (
            '{"latency_ms": {"8192": {}}}',
            "is not a parameter set of quill.params (a table keyed by ring dimension",
        ),
        (_set("n4096_q108_w0", "rotate", -1.7), "'rotate'] is -1.7: must be a positive"),
        (_set("n4096_q108_w0", "add", 0), "'add'] is 0: must be a positive"),
        (_set("n4096_q108_w0", "add", "fast"), "'add'] is 'fast'"),
        (_set("n4096_q108_w0", "add", None), "'add'] is None"),
        (_set("n4096_q108_w0", "add", True), "'add'] is True"),
        (_set("n8192_q120_w0", "relin", float("nan")), "'relin'] is nan"),
        (_set("n8192_q120_w0", "relin", float("inf")), "'relin'] is inf"),
        (_set("n4096_q108_w0", "rotate_fast", 1.0), "unknown rows 'rotate_fast'"),
        (_set("n4096_q108_w0", "rotate", 1e307), "'rotate'] is 1e+307 ms: a latency must lie"),
        (_set("n8192_q120_w0", "add", 1e-9), "'add'] is 1e-09 ms: a latency must lie"),
        (_drop("n8192_q162_w27"), "no row for parameter set n8192_q162_w27"),
        ('{"latency_ms": {"n4096_q108_w0": {"add": 1' + "0" * 5000 + "}}}", "is not JSON"),
    ],
)
def test_bad_cost_tables_are_refused_saying_what_is_wrong(
    tmp_path: Path, edit: object, message: str
) -> None:
    out = porcupine("synth", BLUR_SPEC, "--costs", _table(tmp_path, edit))
    assert_clean(out, 2, message)
    assert not _started(out.stderr)


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"print('hello')\n", "is not a kernel module emitted by Porcupine (it lacks SLOTS"),
        (b"\x00\xff\xfe garbage", "is not Python"),
        (b"def f(:\n", "is not Python (line 1"),
        (
            b"SLOTS = 16\nPLAINTEXT_MODULUS = 65537\nINPUTS = {}\nOUTPUT_SLOTS = ()\n",
            "lacks def kernel",
        ),
    ],
)
def test_run_refuses_a_file_that_is_not_an_emitted_module(
    tmp_path: Path, content: bytes, message: str
) -> None:
    module = tmp_path / "k.py"
    module.write_bytes(content)
    assert_clean(porcupine("run", BLUR_SPEC, "--kernel", str(module)), 2, message)


@pytest.mark.slow
@pytest.mark.subprocess
def test_run_refuses_a_module_emitted_for_another_spec(tmp_path: Path) -> None:
    module = tmp_path / "blur.py"
    assert main(["emit", BLUR_KERNEL, "--spec", BLUR_SPEC, "-o", str(module)]) == 0
    assert_clean(porcupine("run", GX_SPEC, "--kernel", str(module)), 2, "not emitted for spec gx")
    out = porcupine("run", BLUR_SPEC, "--param", "w=8", "--kernel", str(module))
    assert_clean(out, 2, "its SLOTS is 16, the spec's is 32")
    assert_clean(porcupine("run", BLUR_SPEC, "--kernel", BLUR_SPEC), 2, "is not Python")


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("output", "message"),
    [
        (".", "is a directory"),
        ("kernels/box_blur.spec/k.quill", "is not a folder"),
        ("/proc/k.quill", "cannot create a file in /proc"),
        ("/dev/null", "is not a regular file"),
        ("kernels/box_blur.spec", "is also an input"),
        ("kernels/baselines/box_blur.quill", "is also an input"),
        ("", "the output path is empty"),
    ],
)
def test_bad_outputs_are_refused_before_the_search(output: str, message: str) -> None:
    out = porcupine("synth", "kernels/box_blur.spec", "-o", output)
    assert_clean(out, 2, message)
    assert not _started(out.stderr)


@pytest.mark.subprocess
def test_emit_python_without_an_output_is_refused_before_the_search() -> None:
    out = porcupine("synth", BLUR_SPEC, "--emit", "python")
    assert_clean(out, 2, "give -o KERNEL.py")
    assert not _started(out.stderr)


@pytest.mark.subprocess
def test_emit_and_calibrate_check_their_outputs_too(tmp_path: Path) -> None:
    program = tmp_path / "k.quill"
    program.write_text(Path(BLUR_KERNEL).read_text())
    out = porcupine("emit", str(program), "--spec", BLUR_SPEC, "-o", str(program))
    assert_clean(out, 2, "is also an input")
    assert_clean(porcupine("calibrate", "-o", str(tmp_path)), 2, "is a directory")
    assert program.read_text() == Path(BLUR_KERNEL).read_text()


@pytest.mark.search
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_have_the_usual_permissions(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        target = tmp_path / "new" / "k.quill"
        assert main(["synth", BLUR_SPEC, "-o", str(target), "--quiet"]) == 0
        assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
        target.chmod(0o640)  # a file that is replaced keeps its own permissions
        assert main(["emit", BLUR_KERNEL, "--spec", BLUR_SPEC, "-o", str(target)]) == 0
        assert stat.S_IMODE(target.stat().st_mode) == 0o640
    finally:
        os.umask(old)
    assert sorted(p.name for p in target.parent.iterdir()) == ["k.quill"]


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_kernel_over_the_noise_budget_is_reported_with_the_kernel(tmp_path: Path) -> None:
    spec, kernel = tmp_path / "noisy.spec", tmp_path / "noisy.quill"
    spec.write_text(OVER_BUDGET_SPEC)
    kernel.write_text(NOISY_KERNEL)
    target = tmp_path / "noisy.py"
    for args in (
        ["check", str(kernel), "--spec", str(spec)],
        ["emit", str(kernel), "--spec", str(spec), "-o", str(target)],
        ["run", str(spec), "--program", str(kernel)],
        ["synth", str(spec), "--initial", str(kernel), "--max-components", "1"],
    ):
        out = porcupine(*args)
        assert_clean(out, 1, "is correct but exceeds the noise budget")
        assert "x128 = mul(x64, x64)" in out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noisy.quill", "noisy.spec"]


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_spec_deeper_than_the_noise_model_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "deep.spec"
    spec.write_text(NOISY_SPEC.replace("c[i] * c[i]", "x[i]^64 * x[i]^64 * x[i]^64"))
    assert_clean(porcupine("synth", str(spec)), 1, "needs ct*ct depth 8")
    bits = tmp_path / "bits.spec"  # x^256 = x for bits: nothing deep is needed
    bits.write_text(spec.read_text().replace("vector(n)\n", "vector(n) bits\n", 1))
    assert_clean(porcupine("synth", str(bits), "--quiet"), 0)


@pytest.mark.subprocess
def test_optimal_is_claimed_only_after_a_search() -> None:
    out = porcupine("synth", GX_SPEC, "--max-components", "0", "--json")
    assert_clean(out, 2, "--max-components")
    out = porcupine("synth", GX_SPEC, "--max-components", "1", "--json", "--timeout", "120")
    assert_clean(out, 0)
    result = json.loads(out.stdout)
    # A claim is only ever about the sizes searched, and says so.
    assert not result["optimal"] or "at most 1 components" in result["optimal_scope"]


RANGED = """spec dot
param n = 4
slots n
input a: ct vector(n) in 0..{hi}
input b: pt vector(n) in 0..{hi}
output s: scalar = sum(k in 0..n) a[k] * b[k]
"""

DOT_KERNEL = """kernel dot(a: ct, b: pt) {
    t0 = mul(a, b)
    t0_r1 = rot(t0, 1)
    t1 = add(t0, t0_r1)
    t1_r2 = rot(t1, 2)
    t2 = add(t1, t1_r2)
    return t2
}
"""


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize(("hi", "wraps"), [(90, False), (255, True)])
def test_values_that_may_wrap_are_named_and_refused_when_strict(
    tmp_path: Path, hi: int, wraps: bool
) -> None:
    spec, kernel = tmp_path / "dot.spec", tmp_path / "dot.quill"
    spec.write_text(RANGED.format(hi=hi))
    kernel.write_text(DOT_KERNEL)
    target = tmp_path / "dot.py"
    commands = [
        ["check", str(kernel), "--spec", str(spec)],
        ["emit", str(kernel), "--spec", str(spec), "-o", str(target)],
        ["synth", str(spec), "--quiet", "--timeout", "120"],
    ]
    for args in commands:
        out = porcupine(*args)
        assert_clean(out, 0)
        assert ("may wrap mod 65537" in out.stderr) is wraps
        if wraps:
            assert "output s of spec dot can reach 0..260100" in out.stderr
            # synth names the kernel it finds, whose tree may rotate in either order
            line = "in kernel dot" if args[0] == "synth" else "t2 = add(t1, t1_r2) in kernel dot"
            assert f"{line} can reach 0..260100" in out.stderr
        target.unlink(missing_ok=True)
        strict = porcupine(*args, "--strict-ranges")
        assert_clean(strict, 1 if wraps else 0, "--strict-ranges: values may wrap" if wraps else "")
        assert target.exists() is (args[0] == "emit" and not wraps)


@pytest.mark.subprocess
def test_strict_ranges_needs_declared_ranges() -> None:
    out = porcupine("check", BLUR_KERNEL, "--spec", BLUR_SPEC, "--strict-ranges")
    assert_clean(out, 1, "no input of spec box_blur declares a range")
    assert_clean(porcupine("check", BLUR_KERNEL, "--spec", BLUR_SPEC), 0)


@pytest.mark.slow
@pytest.mark.subprocess
def test_inputs_over_the_size_limit_are_refused_up_front(tmp_path: Path) -> None:
    big = tmp_path / "big.spec"
    big.write_text(Path(BLUR_SPEC).read_text() + "#" * (1 << 20))
    assert_clean(porcupine("synth", str(big)), 2, "over the limit of 1 MB")
    program = tmp_path / "big.quill"
    program.write_text(Path(BLUR_KERNEL).read_text() + "\n" * (1 << 20))
    assert_clean(porcupine("check", str(program), "--spec", BLUR_SPEC), 2, "over the limit")


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("path", ["/dev/zero", ".", "kernels"])
def test_inputs_that_are_not_regular_files_are_refused(path: str) -> None:
    out = porcupine("synth", path, cwd=ROOT)
    assert_clean(out, 2, "spec file")
