"""The emitted module as an application sees it: the runtime it is made of, loading it, and
its own clear errors for bad inputs, keys and contexts. On the cleartext backend, so each
check takes milliseconds; test_backend.py repeats the key and security checks under real
OpenFHE."""

from __future__ import annotations

import ast
import dataclasses
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before openfhe loads (see test_backend.py)

import numpy as np
import openfhe
import pytest
from helpers import DEAD, DOT_SUM, Kernel, emitted_imports, imports_of, make_kernels

from porcupine.backend import (
    EmitOptions,
    EmittedKernel,
    ProgramSpec,
    emit_python,
    emitted_module,
    load_module,
    run_cleartext,
    run_encrypted,
    write_atomically,
)
from porcupine.backend import runtime as runtime_module
from porcupine.backend.kernel_module import MEMBERS
from porcupine.backend.planning import context_settings
from porcupine.backend.sections import (
    CODE_BEGIN,
    CONSTANTS_BEGIN,
    CONSTANTS_END,
    RuntimeText,
    application_sections,
    assemble,
)
from quill.cost import DEFAULT_TABLE
from quill.params import by_name
from quill.parser import parse_program
from quill.slots import T
from quill.spec import parse_spec

# Its module-scoped fixtures are built once: its tests share one xdist worker.
pytestmark = pytest.mark.xdist_group("test_backend_module")

RUNTIME = Path(runtime_module.__file__)

RANGED_SPEC = parse_spec(
    "spec ranged\nslots 8\ninput x: ct vector(8) in -3..200\ninput p: pt vector(8)\n"
    "output y[i]: vector(8) = x[i] * p[i] + x[i]\n"
)
RANGED = parse_program(
    "kernel ranged(x: ct, p: pt) {\n  m = mul(x, p)\n  y = add(m, x)\n  return y\n}\n"
)


@pytest.fixture(scope="module")
def clear() -> dict[str, Kernel]:
    """test_backend's kernels, on the cleartext backend."""
    return make_kernels(cleartext_backend=True)


@pytest.fixture(scope="module", params=["cleartext", "openfhe"])
def both(request: pytest.FixtureRequest, clear: dict[str, Kernel]) -> dict[str, Kernel]:
    """test_backend's kernels on the cleartext backend, then encrypted: the checks an
    application relies on hold for real OpenFHE objects too."""
    return clear if request.param == "cleartext" else make_kernels()


@pytest.fixture(scope="module")
def ranged() -> tuple[EmittedKernel, Any, Any]:
    """A kernel with a declared input range, on the cleartext backend: (module, cc, keys)."""
    module = emitted_module(RANGED, RANGED_SPEC, cleartext_backend=True)
    cc = module.new_context()
    return module, cc, module.generate_keys(cc)


# --- the runtime and what is generated ----------------------------------------------------


def _constants(text: str) -> list[str]:
    """The kernel constants a module's text assigns between the markers, in order (without
    the literals a long constant or slot grid gets to itself)."""
    block = text[text.index(CONSTANTS_BEGIN) : text.index(CONSTANTS_END)]
    names = []
    for node in ast.parse(block).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else node.target  # type: ignore[attr-defined]
        assert isinstance(target, ast.Name)
        names.append(target.id)
    return [n for n in names if not n.startswith("_") or n == "_CONSTANT_VALUES"]


def _section_constants(filename: str, begin: str, end: str) -> list[str]:
    """The placeholder constants an application section declares between its markers."""
    text = (RUNTIME.parent / filename).read_text()
    return _constants(CONSTANTS_BEGIN + text[text.index(begin) : text.index(end)] + CONSTANTS_END)


def test_the_generated_constants_are_the_runtimes_placeholders(clear: dict[str, Kernel]) -> None:
    placeholders = _constants(RUNTIME.read_text())
    assert "SLOTS" in placeholders and "_CONSTANT_VALUES" in placeholders
    assert "KERNEL_ID" in placeholders
    placeholders += _section_constants("tiles.py", "# --- tiling constants", "# --- tiles:")
    placeholders += _section_constants(
        "instances.py", "# --- instance constants", "# --- instances:"
    )
    assert "TILE_KIND" in placeholders and "INSTANCES_PER_CIPHERTEXT" in placeholders
    for k in clear.values():
        assert _constants(emit_python(k.program, k.spec)) == placeholders


def test_emitted_modules_hold_the_runtime_and_sections_verbatim(
    clear: dict[str, Kernel],
) -> None:
    runtime = RuntimeText.load()
    sections = application_sections()
    imports = emitted_imports()
    # The standard library, numpy and openfhe only: applications import nothing else.
    assert {name.split(".")[0] for name in imports} <= {
        "__future__", "argparse", "collections", "concurrent", "contextlib", "ctypes",
        "dataclasses", "functools", "hashlib", "importlib", "io", "itertools", "json",
        "linecache", "math", "multiprocessing", "os", "pickle", "signal", "struct", "sys",
        "tempfile", "threading", "time", "typing", "numpy", "openfhe",
    }  # fmt: skip
    middle = runtime.middle.rsplit("\n", 1)[0].rstrip()  # before the kernel-code marker
    for k in clear.values():
        text = emit_python(k.program, k.spec)
        assert runtime.head in text and middle in text
        assert all(s.code in text for s in sections)
        assert imports_of(text) == imports


def test_the_runtime_alone_is_a_working_kernel(tmp_path: Path) -> None:
    # Its placeholder constants and code, assembled as an emitted module is (the runtime
    # and the sections it reads, copied in), so that the cleartext backend binds them all.
    lines = RUNTIME.read_text().splitlines()

    def at(marker: str) -> int:
        (index,) = (i for i, line in enumerate(lines) if line.startswith(marker))
        return index

    constants = "\n".join(lines[at(CONSTANTS_BEGIN) + 1 : at(CONSTANTS_END)])
    code = "\n".join(lines[at(CODE_BEGIN) + 1 :])
    path = tmp_path / "runtime_kernel.py"
    path.write_text(assemble('"""y = x + x"""', constants, RuntimeText.load().middle, code))
    module = load_module(path, cleartext_backend=True)
    cc = module.new_context()
    keys = module.generate_keys(cc)
    x = np.arange(8) * 9000
    out = module.kernel(cc, x=module.encrypt(cc, keys, "x", x))
    assert np.array_equal(module.decode_slots(cc, keys, out), 2 * x % T)


def test_only_kernel_modules_load(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no emitted kernel module"):
        load_module(tmp_path / "missing.py")
    other = write_atomically(tmp_path / "other.py", "SLOTS = 8\n")
    with pytest.raises(ValueError, match="is not a kernel module emitted by Porcupine") as info:
        load_module(other)
    assert all(member in str(info.value) for member in MEMBERS if member != "SLOTS")
    broken = write_atomically(tmp_path / "broken.py", "SLOTS = \n")
    with pytest.raises(ImportError, match=r"cannot import .*broken.py: SyntaxError"):
        load_module(broken)


def test_a_module_for_another_spec_is_not_run(clear: dict[str, Kernel], tmp_path: Path) -> None:
    blur = clear["box_blur"]
    path = write_atomically(tmp_path / "blur.py", emit_python(blur.program, blur.spec))
    with pytest.raises(ValueError, match="is a kernel on 16 slots, the spec has 8"):
        run_cleartext(clear["dot_product"].spec, module_path=path)
    same_size = ProgramSpec(parse_program("kernel k(y: ct) {\n  return y\n}\n"), 16)
    with pytest.raises(ValueError, match=r"takes inputs \{'x': 'ct'\}, the spec's are"):
        run_cleartext(same_size, module_path=path)
    assert run_cleartext(blur.spec, module_path=path).ok
    with pytest.raises(ValueError, match="exactly one of program= and module_path="):
        run_encrypted(blur.spec)


# --- encode --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.full(8, 1.5), "input 'x' must hold integers, got float64 values: convert them"),
        ([1.0] * 8, "got float64 values"),
        (np.full(8, 2, dtype=np.float32), "got float32 values"),
        (["1"] * 8, "got <U1 values"),
        ([1, 2, 3, 4, 5, 6, 7, 0.5], "got float64 values"),
        (np.arange(8) + 1j, "got complex128 values"),
        ([None] * 8, "got object values"),
        (np.arange(4), r"input 'x' has shape \(4,\), expected \(8,\)"),
        (
            [0, 1, 2, 201, 0, 0, 0, 0],
            r"input 'x' must hold values in -3..200, its declared range \(the kernel relies on "
            r"it\), but element \(3,\) is 201",
        ),
        ([0, -4, 0, 0, 0, 0, 0, 0], r"element \(1,\) is -4"),
        ([2**70] * 8, r"values in -3..200, .* element \(0,\) is 1180591620717411303424"),
    ],
)
def test_encode_refuses_what_the_kernel_is_not_proven_for(
    ranged: tuple[EmittedKernel, Any, Any], values: object, message: str
) -> None:
    module, cc, _ = ranged
    with pytest.raises(ValueError, match=message):
        module.encode(cc, "x", values)


def test_encode_takes_integers_of_any_width(ranged: tuple[EmittedKernel, Any, Any]) -> None:
    module, cc, keys = ranged
    x = np.array([-3, 200, 0, 1, 2, 3, 4, 5])
    p = [2**70 + 1, True, np.uint64(2**63 + 5), 7, 0, -1, 2, T]  # taken mod t
    out = module.kernel(
        cc, x=module.encrypt(cc, keys, "x", x.astype(np.int16)), p=module.encode(cc, "p", p)
    )
    want = (x * (np.array([int(v) for v in p], dtype=object) % T) + x) % T
    assert np.array_equal(module.decode_slots(cc, keys, out), want.astype(np.int64))


def test_encode_names_bits_and_unknown_inputs(clear: dict[str, Kernel]) -> None:
    ham = clear["hamming_distance"]
    m, cc, keys = ham.module, ham.session.cc, ham.session.keys
    with pytest.raises(ValueError, match=r"input 'a' must hold bits \(0 or 1\), its declared"):
        m.encode(cc, "a", [0, 1, 2, 0])
    with pytest.raises(KeyError, match=r"no input 'c'; the inputs are \['a', 'b'\]"):
        m.encode(cc, "c", [0, 1, 1, 0])
    dot = clear["dot_product"]
    with pytest.raises(ValueError, match=r"input 'b' is a plaintext: pass encode\(cc, 'b'"):
        dot.module.encrypt(dot.session.cc, dot.session.keys, "b", np.zeros(8, dtype=int))
    a, b = [True, False, 1, 1], np.array([0, 0, 0, 1], dtype=np.uint8)  # bools, narrow ints
    out = m.kernel(cc, a=m.encrypt(cc, keys, "a", a), b=m.encrypt(cc, keys, "b", b))
    assert m.decode(cc, keys, out) == 2


# --- kernel and decode ------------------------------------------------------------------------


@pytest.mark.openfhe
def test_kernel_names_inputs_of_the_wrong_kind(both: dict[str, Kernel]) -> None:
    dot = both["dot_product"]
    m, cc, keys = dot.module, dot.session.cc, dot.session.keys
    a, b = np.arange(8), np.ones(8, dtype=int)
    with pytest.raises(TypeError, match=r"input 'a' must be a ciphertext, got \w*Plaintext: pass"):
        m.kernel(cc, a=m.encode(cc, "a", a), b=m.encode(cc, "b", b))
    with pytest.raises(TypeError, match=r"input 'a' must be a ciphertext, got ndarray"):
        m.kernel(cc, a=a, b=m.encode(cc, "b", b))
    with pytest.raises(TypeError, match=r"input 'b' must be a plaintext, got list: pass encode"):
        m.kernel(cc, a=m.encrypt(cc, keys, "a", a), b=list(b))
    b_ct = cc.Encrypt(keys.publicKey, m.encode(cc, "b", b))
    with pytest.raises(TypeError, match=r"input 'b' must be a plaintext, got \w*Ciphertext"):
        m.kernel(cc, a=m.encrypt(cc, keys, "a", a), b=b_ct)


def _context_error(message: str) -> Any:
    """Expect the emitted module's KernelContextError (a ValueError) with ``message``."""
    return pytest.raises(ValueError, match=message)


@pytest.mark.openfhe
def test_keys_must_belong_together(both: dict[str, Kernel]) -> None:
    ham = both["hamming_distance"]
    m, cc, keys = ham.module, ham.session.cc, ham.session.keys
    other = m.generate_keys(cc)
    a = m.encrypt(cc, keys, "a", [0, 1, 1, 0])
    with _context_error(
        r"ciphertext inputs are encrypted under different key pairs \(a under \w{8}, b under "
        r"\w{8}\): encrypt every input with the same keys"
    ):
        m.kernel(cc, a=a, b=m.encrypt(cc, other, "b", [1, 1, 0, 0]))
    out = m.kernel(cc, a=a, b=m.encrypt(cc, keys, "b", [1, 1, 0, 0]))
    assert m.decode(cc, keys, out) == 2
    with _context_error(
        r"the ciphertext is encrypted under key \w{8}, not under this key pair's \w{8}: "
        "decrypt with the keys that encrypted the kernel's inputs"
    ):
        m.decode(cc, other, out)
    with pytest.raises(TypeError, match=r"decode takes a ciphertext, got \w*Plaintext"):
        m.decode(cc, keys, m.encode(cc, "a", [0, 1, 1, 0]))


def test_contexts_below_the_kernels_security_level_are_refused(clear: dict[str, Kernel]) -> None:
    m = clear["box_blur"].module
    with _context_error(r"security level is HEStd_NotSet, below the HEStd_128_classic"):
        m.check_context(m.new_context(openfhe.HEStd_NotSet))
    # The fake checks the HE standard's bound at 128-bit classic only (OpenFHE would refuse
    # this small ring at the stronger levels).
    for stronger in (
        openfhe.HEStd_128_classic,
        openfhe.HEStd_192_classic,
        openfhe.HEStd_128_quantum,
    ):
        m.check_context(m.new_context(stronger))
    spec = ProgramSpec(DEAD, 8)
    strict = emitted_module(
        DEAD, spec, EmitOptions(security="HEStd_192_classic"), cleartext_backend=True
    )
    with _context_error("security level is HEStd_128_classic, below the HEStd_192_classic"):
        strict.check_context(strict.new_context(openfhe.HEStd_128_classic))
    strict.check_context(strict.new_context())  # its own level by default
    lax = emitted_module(DEAD, spec, EmitOptions(security="HEStd_NotSet"), cleartext_backend=True)
    lax.check_context(lax.new_context(openfhe.HEStd_NotSet))


def test_unfit_parameters_are_named(clear: dict[str, Kernel]) -> None:
    m = clear["square_shift"].module
    other = "n4096_q108_w18" if m.PARAMETER_SET != "n4096_q108_w18" else "n4096_q108_w27"
    settings = context_settings(by_name(other))
    with _context_error(f"the context's digit size is .*this kernel needs {m.DIGIT_SIZE}"):
        m.check_context(m.new_context(**settings))
    with _context_error(r"no relinearization key for the inputs' secret key"):
        cc = m.new_context()
        keys = m.generate_keys(cc, ct_ct_mult=False)
        m.kernel(cc, x=m.encrypt(cc, keys, "x", np.ones(8, dtype=int)))


def test_a_kernel_with_evalsum_needs_advanced_she(clear: dict[str, Kernel]) -> None:
    # On the cleartext backend: OpenFHE shares one context between equal parameters, so in a
    # process where any context enabled ADVANCEDSHE, every context of its set has it.
    module = emitted_module(DOT_SUM, clear["dot_product"].spec, cleartext_backend=True)
    cc = module.new_context(advanced_she=False)
    with _context_error(r"this kernel calls EvalSum, which needs cc.Enable\(openfhe.ADVANCEDSHE\)"):
        module.check_context(cc)
    cc.Enable(openfhe.ADVANCEDSHE)
    module.check_context(cc)
    assert module.ADVANCED_SHE and not clear["dot_product"].module.ADVANCED_SHE


def test_long_literals_get_names_of_their_own() -> None:
    """Two long constants whose literal names differ only in case from each other and the
    runtime's ``_CONSTANT_VALUES`` keep their own values."""
    values = [", ".join(str(v) for v in range(start, start + 64)) for start in (1000, 2000)]
    program = parse_program(
        f"kernel k(x: ct) {{\n  constant = const([{values[0]}])\n"
        f"  Constant = const([{values[1]}])\n  a = mul(x, constant)\n  b = mul(x, Constant)\n"
        "  y = sub(a, b)\n  return y\n}\n"
    )
    spec = ProgramSpec(program, 64)
    text = emit_python(program, spec)
    assert "_CONSTANT_VALUES_ = (" in text and "_CONSTANT_VALUES__ = (" in text
    run = run_cleartext(spec, program=program, seed=2)
    assert run.ok, run.summary()


def test_the_default_options_are_the_compilers_choices(clear: dict[str, Kernel]) -> None:
    """``emit_python(program, spec)`` is the record's defaults, and spelling a default out
    changes nothing: the record is the choices, byte for byte. It is frozen and takes
    its fields by name only."""
    k = clear["box_blur"]
    text = emit_python(k.program, k.spec)
    spelled = EmitOptions(table=DEFAULT_TABLE, hoist=None, security="HEStd_128_classic")
    assert emit_python(k.program, k.spec, EmitOptions()) == text
    assert emit_python(k.program, k.spec, spelled) == text
    assert emit_python(k.program, k.spec, EmitOptions(security="HEStd_NotSet")) != text
    with pytest.raises(dataclasses.FrozenInstanceError):
        EmitOptions().hoist = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        EmitOptions(DEFAULT_TABLE)  # type: ignore[misc]
