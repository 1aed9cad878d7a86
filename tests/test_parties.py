"""The two parties of an emitted module, for real: the server is a second process that gets
only the public bundle and the ciphertexts (``python KERNEL.py serve``), the client owns
the secret key; inputs of any size are tiled, reductions summed on the server, instances
batched; every result is checked against the spec's reference on the whole input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import openfhe
import pytest

from porcupine.app_plan import compile_for
from porcupine.backend import EmitOptions, emit_python, load_module
from porcupine.backend.app_run import ServerFailed, run_two_party
from porcupine.synthesize import Options, synthesize
from quill.slots import T
from quill.spec import Spec, load_spec
from quill.spec_array import reference_array
from quill.spec_shapes import shape_params

pytestmark = [
    pytest.mark.xdist_group("parties"),
    pytest.mark.openfhe,
    pytest.mark.subprocess,
    pytest.mark.search,
    pytest.mark.slow,
]

ROOT = Path(__file__).resolve().parent.parent


def _emit(spec: Spec, path: Path) -> Path:
    result = synthesize(spec, timeout=60)
    path.write_text(emit_python(result.program, spec))
    return path


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Emitted modules: box blur on 8x8 tiles, gx on 8x8, the dot product on 8 slots."""
    folder = tmp_path_factory.mktemp("kernels")
    sizes: dict[str, dict[str, int]] = {"box_blur": {"h": 8, "w": 8}, "gx": {"h": 8, "w": 8}}
    return {
        name: _emit(
            load_spec(ROOT / "kernels" / f"{name}.spec", sizes.get(name)), folder / f"{name}.py"
        )
        for name in ("box_blur", "gx", "dot_product")
    }


def _whole(name: str, inputs: dict[str, Any]) -> Any:
    """The spec's reference on the whole inputs (any size)."""
    spec = load_spec(ROOT / "kernels" / f"{name}.spec")
    shapes = {k: np.shape(v) for k, v in inputs.items()}
    return reference_array(spec.origin.source, shape_params(spec, shapes), inputs)


def test_an_image_of_any_size_is_tiled_and_stitched_exactly(kernels: dict[str, Path]) -> None:
    image = np.random.default_rng(1).integers(0, 256, size=(21, 30))
    run = run_two_party(kernels["box_blur"], {"x": image})
    want = _whole("box_blur", {"x": image})
    got = run.output
    # 7 new rows and columns a tile: 3 x 5 tiles, two to a ciphertext (one per BFV row)
    assert run.mode == "tiles" and run.ciphertexts == 8
    assert np.array_equal(~np.ma.getmaskarray(got), want.matters)
    assert np.array_equal(np.ma.getdata(got)[want.matters], want.values[want.matters])


def test_an_input_of_the_kernels_own_size_is_one_ciphertext(kernels: dict[str, Path]) -> None:
    image = np.random.default_rng(2).integers(-300, 300, size=(8, 8))
    run = run_two_party(kernels["gx"], {"x": image})
    want = _whole("gx", {"x": image})
    assert run.ciphertexts == 1
    assert np.array_equal(np.ma.getdata(run.output)[want.matters], want.values[want.matters])


def test_a_dot_product_in_chunks_is_summed_on_the_server(kernels: dict[str, Path]) -> None:
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 1000, size=21), rng.integers(0, 1000, size=21)
    run = run_two_party(kernels["dot_product"], {"a": a}, {"b": b})
    assert run.output == int(a @ b) % T
    assert run.ciphertexts == 2  # 3 chunks of 8 (the last zero padded), two to a ciphertext
    # One ciphertext comes back, whatever the length.
    assert run.download_bytes < 1.5 * run.upload_bytes / run.ciphertexts


def test_more_chunks_than_the_noise_margin_holds_are_refused(kernels: dict[str, Path]) -> None:
    """Each ciphertext's sum adds noise on the server: the 8-slot kernel's margin holds 4 (the
    compiler picks a larger kernel and ring for more, test_compiled_for_the_data_size)."""
    a = np.ones(1003, dtype=np.int64)
    with pytest.raises(ValueError, match="bits of noise"):
        run_two_party(kernels["dot_product"], {"a": a}, {"b": a})


def test_compiled_for_the_data_size(tmp_path: Path) -> None:
    spec = load_spec(ROOT / "kernels" / "dot_product.spec")
    compiled = compile_for(spec, (100_000,), options=Options())
    chosen = compiled.plan.chosen
    assert compiled.spec.n == chosen.shape[0] > 8 and compiled.result.verified
    path = tmp_path / "dot.py"
    path.write_text(
        emit_python(
            compiled.result.program, compiled.spec, EmitOptions(param_set=compiled.param_set)
        )
    )
    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 256, size=100_000), rng.integers(0, 256, size=100_000)
    run = run_two_party(path, {"a": a}, {"b": b})
    assert run.output == int(a @ b) % T
    assert chosen.tiles == -(-100_000 // chosen.shape[0])
    assert run.ciphertexts == chosen.ciphertexts == -(-chosen.tiles // 2)
    assert run.parameter_set == chosen.param_set


def test_many_small_instances_share_ciphertexts(kernels: dict[str, Path]) -> None:
    module = load_module(kernels["dot_product"])
    rng = np.random.default_rng(4)
    a, b = rng.integers(0, 500, size=(1000, 8)), rng.integers(0, 500, size=(1000, 8))
    run = run_two_party(kernels["dot_product"], {"a": a}, {"b": b}, instances=True)
    per = int(module.INSTANCES_PER_CIPHERTEXT)  # type: ignore[attr-defined]
    assert per >= 8 and run.ciphertexts == -(-1000 // per)
    assert np.array_equal(np.ma.getdata(run.output), (a * b).sum(axis=1) % T)


# --- what the server gets and refuses ----------------------------------------------------


def _serve(
    module: Path, folder: Path, bundle: bytes, request: bytes
) -> subprocess.CompletedProcess[str]:
    """``python MODULE serve`` on ``bundle`` and ``request``, in its own process."""
    (folder / "bundle.bin").write_bytes(bundle)
    (folder / "request.bin").write_bytes(request)
    files = [str(folder / f) for f in ("bundle.bin", "request.bin", "response.bin")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(module), "serve", *files], capture_output=True, text=True, env=env
    )


def test_the_bundle_holds_no_secret_key_and_exactly_the_kernels_keys(
    kernels: dict[str, Path], tmp_path: Path
) -> None:
    module: Any = load_module(kernels["gx"])
    client = module.Client()
    bundle, request = client.public_bundle(), client.encrypt(x=np.ones((8, 8), dtype=np.int64))
    secret = openfhe.Serialize(client.keys.secretKey, openfhe.BINARY)
    middle = secret[len(secret) // 2 : len(secret) // 2 + 64]  # polynomial coefficients
    assert len(secret) > 10_000 and middle not in bundle and middle not in request
    # The server process, given only the bundle, holds exactly the kernel's rotation keys.
    probe = (
        "import sys, importlib.util as u\n"
        f"s = u.spec_from_file_location('k', {str(kernels['gx'])!r}); m = u.module_from_spec(s)\n"
        "sys.modules['k'] = m; s.loader.exec_module(m)\n"
        f"server = m.Server(open({str(tmp_path / 'b.bin')!r}, 'rb').read())\n"
        "have = set(server.cc.GetExistingEvalAutomorphismKeyIndices(server.key_tag))\n"
        "want = {server.cc.FindAutomorphismIndex(k) for k in m.ROTATION_INDICES}\n"
        "print(have == want, len(want), server.key_tag in server.cc.GetAllEvalMultKeys())\n"
    )
    (tmp_path / "b.bin").write_bytes(bundle)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", str(len(module.ROTATION_INDICES)), "False"]


def test_the_server_refuses_another_kernels_bundle(
    kernels: dict[str, Path], tmp_path: Path
) -> None:
    blur: Any = load_module(kernels["box_blur"])
    client = blur.Client()
    request = client.encrypt(x=np.zeros((8, 8), dtype=np.int64))
    served = _serve(kernels["gx"], tmp_path, client.public_bundle(), request)
    assert served.returncode == 2 and "Traceback" not in served.stderr
    assert "made for kernel box_blur" in served.stderr and not (tmp_path / "response.bin").exists()


def test_the_server_refuses_a_bundle_without_a_rotation_key(
    kernels: dict[str, Path], tmp_path: Path
) -> None:
    module: Any = load_module(kernels["gx"])
    client = module.Client()
    client.keys = module.generate_keys(client.cc, module.ROTATION_INDICES[:-1])
    request = client.encrypt(x=np.zeros((8, 8), dtype=np.int64))
    served = _serve(kernels["gx"], tmp_path, client.public_bundle(), request)
    assert served.returncode == 2
    assert f"no rotation key for index {module.ROTATION_INDICES[-1]}" in served.stderr


def test_the_server_refuses_a_context_of_another_parameter_set(
    kernels: dict[str, Path], tmp_path: Path
) -> None:
    """A bundle that names this kernel but carries another ring: the context is checked,
    not assumed from the header."""
    module: Any = load_module(kernels["gx"])
    client = module.Client()
    client.cc = module.new_context(ring_dim=2 * module.RING_DIM)
    client.keys = module.generate_keys(client.cc)
    served = _serve(kernels["gx"], tmp_path, client.public_bundle(), b"")
    assert served.returncode == 2
    assert f"ring dimension is {2 * module.RING_DIM}" in served.stderr


def test_the_server_refuses_ciphertexts_of_another_key(
    kernels: dict[str, Path], tmp_path: Path
) -> None:
    module: Any = load_module(kernels["gx"])
    alice, mallory = module.Client(), module.Client()
    request = mallory.encrypt(x=np.zeros((8, 8), dtype=np.int64))
    served = _serve(kernels["gx"], tmp_path, alice.public_bundle(), request)
    assert served.returncode == 2 and "not under the bundle's key" in served.stderr


@pytest.mark.parametrize("cut", [0, 40, -100])
def test_the_server_refuses_damaged_data(
    kernels: dict[str, Path], tmp_path: Path, cut: int
) -> None:
    module: Any = load_module(kernels["gx"])
    client = module.Client()
    bundle, request = client.public_bundle(), client.encrypt(x=np.zeros((8, 8), dtype=np.int64))
    damaged = b"not a request" if cut == 0 else request[:cut]
    served = _serve(kernels["gx"], tmp_path, bundle, damaged)
    assert served.returncode == 2 and "Traceback" not in served.stderr
    assert "request" in served.stderr


def test_a_request_follows_its_bundle_on_one_stream(kernels: dict[str, Path]) -> None:
    # As a streaming client sends them (serve - -): the server reads the bundle up to its
    # end only, and the request from there.
    module: Any = load_module(kernels["gx"])
    client = module.Client()
    image = np.random.default_rng(11).integers(0, 256, size=(13, 9))
    stream = io.BytesIO(client.public_bundle() + client.encrypt(x=image))
    response = io.BytesIO()
    module.Server(stream, workers=1).evaluate_stream(stream, response)
    got, want = client.decrypt(response.getvalue()), _whole("gx", {"x": image})
    assert np.array_equal(np.ma.getdata(got)[want.matters], want.values[want.matters])


def test_run_two_party_says_why_the_server_refused(kernels: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="too few"):
        run_two_party(kernels["gx"], {"x": np.zeros((2, 2), dtype=np.int64)})
    with pytest.raises(ServerFailed, match="plaintext"):
        run_two_party(kernels["dot_product"], {"a": np.ones(8, dtype=np.int64)})


@pytest.mark.parametrize("setting", [None, "2"])
def test_the_module_runs_openfhe_single_threaded_unless_told(
    kernels: dict[str, Path], setting: str | None
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if setting:
        env["OMP_NUM_THREADS"] = setting
    probe = (
        "import ctypes, sys, importlib.util as u\n"
        f"s = u.spec_from_file_location('k', {str(kernels['gx'])!r}); m = u.module_from_spec(s)\n"
        "sys.modules['k'] = m; s.loader.exec_module(m)\n"
        "print(ctypes.CDLL('libgomp.so.1').omp_get_max_threads())\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (setting or "1")


_FOREIGN = """
import sys, openfhe
p = openfhe.CCParamsBFVRNS()
p.SetPlaintextModulus(65537)
p.SetMultiplicativeDepth(2)
cc = openfhe.GenCryptoContext(p)
for feature in (openfhe.PKE, openfhe.KEYSWITCH, openfhe.LEVELEDSHE):
    cc.Enable(feature)
keys = cc.KeyGen()
cc.EvalMultKeyGen(keys.secretKey)
folder = sys.argv[1]
openfhe.SerializeToFile(folder + "/cc", cc, openfhe.BINARY)
openfhe.SerializeToFile(folder + "/sk", keys.secretKey, openfhe.BINARY)
cc.SerializeEvalMultKey(folder + "/mult", openfhe.BINARY)
ct = cc.Encrypt(keys.publicKey, cc.MakePackedPlaintext([3, -5, 7]))
openfhe.SerializeToFile(folder + "/ct", ct, openfhe.BINARY)
"""


def test_only_ciphertexts_of_a_context_read_before_skip_its_tables(
    kernels: dict[str, Path], tmp_path: Path
) -> None:
    """A ciphertext's context is read without rebuilding OpenFHE's CRT tables only when its
    serialized context is one this process has read in full before (wire._KNOWN_CONTEXTS).
    A ciphertext of a context never read here is refused and leaves no context without
    tables behind: this process then computes on that very context correctly (were its
    tables skipped, OpenFHE would register a context without them, and multiply with it)."""
    module: Any = load_module(kernels["gx"])
    client = module.Client()
    server = module.Server(client.public_bundle(), workers=1)
    image = np.random.default_rng(7).integers(-300, 300, size=(8, 8))
    for _ in range(2):  # the second request's ciphertext takes the fast path
        got = client.decrypt(server.evaluate(client.encrypt(x=image)))
        want = _whole("gx", {"x": image})
        assert np.array_equal(np.ma.getdata(got)[want.matters], want.values[want.matters])
    assert len(module._KNOWN_CONTEXTS) == 1

    made = subprocess.run([sys.executable, "-c", _FOREIGN, str(tmp_path)], capture_output=True)
    assert made.returncode == 0, made.stderr
    foreign = (tmp_path / "ct").read_bytes()
    with pytest.raises(module.KernelContextError, match="not under the bundle's key"):
        module._ciphertext(foreign, server.key_tag, "ciphertext 0 (x)")
    assert len(module._KNOWN_CONTEXTS) == 1

    cc, ok = openfhe.DeserializeCryptoContext(str(tmp_path / "cc"), openfhe.BINARY)
    secret, ok2 = openfhe.DeserializePrivateKey(str(tmp_path / "sk"), openfhe.BINARY)
    assert ok and ok2 and cc.DeserializeEvalMultKey(str(tmp_path / "mult"), openfhe.BINARY)
    ct, ok3 = openfhe.DeserializeCiphertext(str(tmp_path / "ct"), openfhe.BINARY)
    assert ok3
    square = cc.Decrypt(secret, cc.EvalMult(ct, ct))
    square.SetLength(3)
    assert square.GetPackedValue() == [9, 25, 49]


def _elements(ciphertext: Any) -> list[Any]:
    """A ciphertext's polynomials, tower by tower: (coefficients, modulus, format)."""
    from porcupine.backend.rawnoise import _towers

    tree = json.loads(openfhe.Serialize(ciphertext, openfhe.JSON))
    return [_towers(e) for e in tree["value0"]["ptr_wrapper"]["data"]["v"]]


def test_a_ciphertext_read_for_evaluation_keeps_its_polynomials(kernels: dict[str, Path]) -> None:
    """The server reads a ciphertext into its own context's parameters (wire._local) by adding
    an exact zero, a throwaway key's encryption of 0 minus itself: the polynomials, and so
    the value and the noise, are the very ones the client sent, under the client's key tag;
    the zero is 0 in every tower, whatever key decrypts it."""
    module: Any = load_module(kernels["gx"])
    client = module.Client()
    server = module.Server(client.public_bundle(), workers=1)
    image = np.random.default_rng(11).integers(-300, 300, size=(8, 8))
    sent = module.encrypt(client.cc, client.keys, "x", image)
    data = openfhe.Serialize(sent, openfhe.BINARY)
    read = module._ciphertext(data, server.key_tag, "ciphertext 0 (x)", server.cc)
    assert read.GetKeyTag() == sent.GetKeyTag() == server.key_tag
    assert _elements(read) == _elements(sent)
    _, zero = module._ZEROS[(id(server.cc), server.key_tag)]
    assert all(not any(values) for element in _elements(zero) for values, _, _ in element)
    got = client.decrypt(server.evaluate(client.encrypt(x=image)))
    want = _whole("gx", {"x": image})
    assert np.array_equal(np.ma.getdata(got)[want.matters], want.values[want.matters])
