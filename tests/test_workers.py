"""The server on threads, worker processes and a Dask cluster, for real: the server program
(``python KERNEL.py serve``) evaluates requests of many tiles on threads of its own, on a
pool of worker processes or on a real ``distributed.LocalCluster``; the results are
decrypted and checked against the spec's reference on the whole input; a worker killed
mid-batch, Ctrl-C and a scheduler that does not answer end the run with a clear error and
no response file."""

from __future__ import annotations

import contextlib
import io
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from distributed import LocalCluster
from hypothesis import given, settings
from hypothesis import strategies as st

from porcupine.backend import emit_python, load_module
from porcupine.backend.app_run import run_two_party
from porcupine.synthesize import synthesize
from quill.spec import load_spec
from quill.spec_array import reference_array
from quill.spec_shapes import shape_params

pytestmark = [
    pytest.mark.xdist_group("workers"),
    pytest.mark.openfhe,
    pytest.mark.subprocess,
    pytest.mark.search,
    pytest.mark.slow,
]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Emitted modules: box blur on 8x8 tiles, the dot product on 8 slots."""
    folder = tmp_path_factory.mktemp("kernels")
    sizes = {"box_blur": {"h": 8, "w": 8}, "dot_product": {"n": 8}}
    out = {}
    for name, params in sizes.items():
        spec = load_spec(ROOT / "kernels" / f"{name}.spec", params)
        (folder / f"{name}.py").write_text(emit_python(synthesize(spec, timeout=60).program, spec))
        out[name] = folder / f"{name}.py"
    return out


def _whole(name: str, inputs: dict[str, Any]) -> Any:
    """The spec's reference on the whole inputs (any size)."""
    spec = load_spec(ROOT / "kernels" / f"{name}.spec")
    shapes = {k: np.shape(v) for k, v in inputs.items()}
    return reference_array(spec.origin.source, shape_params(spec, shapes), inputs)


def _assert_blur(image: Any, got: Any) -> None:
    want = _whole("box_blur", {"x": image})
    assert np.array_equal(~np.ma.getmaskarray(got), want.matters)
    assert np.array_equal(np.ma.getdata(got)[want.matters], want.values[want.matters])


def _files(module: Any, folder: Path, image: Any) -> tuple[Any, Path, Path]:
    """A client, and its bundle and request (``image``) written to ``folder``."""
    client = module.Client()
    (folder / "bundle.bin").write_bytes(client.public_bundle())
    with (folder / "request.bin").open("wb") as out:
        client.encrypt_into(out, x=image)
    return client, folder / "bundle.bin", folder / "request.bin"


def _serve(module: Path, bundle: Path, request: Path, response: Path, *options: str) -> Any:
    command = [sys.executable, str(module), "serve", str(bundle), str(request), str(response)]
    return subprocess.run([*command, *options], capture_output=True, text=True, timeout=120)


def test_two_workers_give_the_response_of_one(kernels: dict[str, Path], tmp_path: Path) -> None:
    module: Any = load_module(kernels["box_blur"])
    image = np.random.default_rng(1).integers(0, 256, size=(30, 37))
    client, bundle, request = _files(module, tmp_path, image)
    responses = []
    for workers in ("1", "2"):
        response = tmp_path / f"response{workers}.bin"
        options = ("--workers", workers, "--pool-min", "0")  # a pool however small
        served = _serve(kernels["box_blur"], bundle, request, response, *options)
        assert served.returncode == 0, served.stderr
        assert f'"workers": {workers}' in served.stdout
        responses.append(response.read_bytes())
    # Evaluation is deterministic: the same ciphertexts in, in the same order.
    assert responses[0] == responses[1]
    _assert_blur(image, client.decrypt(responses[1]))


def test_threads_give_the_response_of_one_thread(kernels: dict[str, Path], tmp_path: Path) -> None:
    """The server program's default engine: threads of its own process, no pool."""
    module: Any = load_module(kernels["box_blur"])
    image = np.random.default_rng(11).integers(0, 256, size=(45, 41))  # 36 ciphertexts
    client, bundle, request = _files(module, tmp_path, image)
    responses = []
    for workers in ("1", "2"):
        response = tmp_path / f"response{workers}.bin"
        served = _serve(kernels["box_blur"], bundle, request, response, "--workers", workers)
        assert served.returncode == 0, served.stderr
        engine = '"engine": "threads", "workers": 2' if workers == "2" else '"workers": 1'
        assert engine in served.stdout
        responses.append(response.read_bytes())
    assert responses[0] == responses[1]  # deterministic, in order
    _assert_blur(image, client.decrypt(responses[1]))


def test_a_long_lived_server_evaluates_on_several_threads(kernels: dict[str, Path]) -> None:
    """Every ciphertext but the engine's first goes to the threads, which run side by side;
    the engine is kept for the next request; a bad ciphertext fails only its request."""
    module: Any = load_module(kernels["box_blur"])
    client = module.Client()
    image = np.random.default_rng(12).integers(0, 256, size=(40, 40))
    request = client.encrypt(x=image)
    count = module.request_info(io.BytesIO(request))["ciphertexts"]
    with module.Server(client.public_bundle(), workers=2) as server:
        alone = module.Server(client.public_bundle(), workers=1).evaluate(request)
        threads: set[str] = set()
        fail = [False]
        evaluate_one = server._evaluate_one

        def noted(task: Any) -> Any:
            threads.add(threading.current_thread().name)
            if fail[0] and task[0] == 5:
                raise ValueError("ciphertext 5 failed")
            return evaluate_one(task)

        server._evaluate_one = noted
        for _ in range(2):
            assert server.evaluate(request) == alone
        engine = server.engine
        # the engine's first ciphertext ever ran in this thread; every other one on a thread
        assert engine.kind == "threads" and engine.submitted == 2 * count - 1
        assert len([t for t in threads if t.startswith("porcupine-server")]) == 2
        fail[0] = True  # a thread's error fails its request, and closes the engine
        with pytest.raises(ValueError, match="ciphertext 5 failed"):
            server.evaluate(request)
        assert engine.closed
        fail[0] = False
        assert server.evaluate(request) == alone  # a new engine serves the next request
        assert server.engine is not engine and server.engine.kind == "threads"
    _assert_blur(image, client.decrypt(alone))


def test_a_reduction_is_summed_over_two_workers(kernels: dict[str, Path]) -> None:
    rng = np.random.default_rng(2)
    a, b = rng.integers(-50, 50, size=61), rng.integers(-50, 50, size=61)
    run = run_two_party(kernels["dot_product"], {"a": a}, {"b": b}, workers=2, pool_min=0)
    assert run.engine == "pool" and run.workers == 2
    assert run.ciphertexts == 4  # 8 chunks of 8, two to a ciphertext, summed by the server
    assert run.output == _whole("dot_product", {"a": a, "b": b}).values


def test_a_dask_cluster_evaluates_a_request(kernels: dict[str, Path]) -> None:
    image = np.random.default_rng(3).integers(0, 256, size=(26, 19))
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        run = run_two_party(kernels["box_blur"], {"x": image}, dask=cluster.scheduler_address)
        assert run.engine == "dask" and run.workers == 2
        _assert_blur(image, run.output)
        # The Python API on an existing Client, the same cluster, twice (the bundle stays).
        module: Any = load_module(kernels["box_blur"])
        client = module.Client()
        with cluster.get_client() as dask, module.Server(client.public_bundle(), dask=dask) as s:
            for _ in range(2):
                _assert_blur(image, client.decrypt(s.evaluate(client.encrypt(x=image))))
            # A request of 41 ciphertexts: tasks of 5 ciphertexts each (batch_size), in order.
            big = np.random.default_rng(10).integers(0, 256, size=(60, 60))
            before = (s.engine.submitted, s.engine.calls)
            _assert_blur(big, client.decrypt(s.evaluate(client.encrypt(x=big))))
            assert s.engine.submitted - before[0] == 41 and s.engine.calls - before[1] == 9


def test_a_scheduler_that_does_not_answer_is_a_clear_error(
    kernels: dict[str, Path], tmp_path: Path
) -> None:
    module: Any = load_module(kernels["box_blur"])
    _, bundle, request = _files(module, tmp_path, np.zeros((20, 20), dtype=np.int64))
    response = tmp_path / "response.bin"
    served = _serve(kernels["box_blur"], bundle, request, response, "--dask", "tcp://127.0.0.1:9")
    assert served.returncode == 2 and "Traceback" not in served.stderr
    assert "no Dask scheduler answers at tcp://127.0.0.1:9" in served.stderr
    assert not response.exists() and not Path(f"{response}.part").exists()


def _workers_of(server: subprocess.Popen[str]) -> list[psutil.Process]:
    """The pool's worker processes (spawned; not multiprocessing's resource tracker)."""
    children = psutil.Process(server.pid).children()
    return [c for c in children if "resource_tracker" not in " ".join(c.cmdline())]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _mid_batch(
    kernel: Path, folder: Path, *where: str
) -> tuple[subprocess.Popen[str], list[psutil.Process]]:
    """A server on two workers (``where``: its options instead, a cluster's), once it has
    written part of a long response; its pool's workers."""
    module: Any = load_module(kernel)
    # Enough tiles (about 1,800) that the batch is still running when the test acts, even
    # when the test process gets the CPU late on a loaded machine.
    image = np.random.default_rng(4).integers(0, 256, size=(300, 300))
    _, bundle, request = _files(module, folder, image)
    command = [str(kernel), "serve", str(bundle), str(request), str(folder / "response.bin")]
    server = subprocess.Popen(
        [sys.executable, *command, *(where or ("--workers", "2", "--pool-min", "0")), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As a shell starts it: Ctrl-C at its default. A child inherits an ignored SIGINT,
        # and Python then installs no KeyboardInterrupt for it; the suite's own process may
        # have been left ignoring it (CI's full run: the server finished, exit 0).
        preexec_fn=_default_sigint,
    )
    partial = folder / "response.bin.part"
    deadline = time.monotonic() + 60
    while not (partial.exists() and partial.stat().st_size > 200_000):
        assert server.poll() is None and time.monotonic() < deadline, server.communicate()
        time.sleep(0.02)
    workers = _workers_of(server)
    assert len(workers) == (0 if where else 2)
    return server, workers


def test_a_worker_killed_mid_batch_fails_the_run(kernels: dict[str, Path], tmp_path: Path) -> None:
    server, workers = _mid_batch(kernels["box_blur"], tmp_path)
    try:
        workers[0].kill()
        _, err = server.communicate(timeout=60)
    finally:
        _end(server, workers)
    assert server.returncode == 1, err
    assert "a worker died while evaluating ciphertext" in err and "Traceback" not in err
    assert not (tmp_path / "response.bin").exists()
    assert not (tmp_path / "response.bin.part").exists()
    assert not workers[1].is_running() or workers[1].status() == psutil.STATUS_ZOMBIE


def test_ctrl_c_stops_the_workers(kernels: dict[str, Path], tmp_path: Path) -> None:
    server, workers = _mid_batch(kernels["box_blur"], tmp_path)
    try:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)
        gone = [not w.is_running() or w.status() == psutil.STATUS_ZOMBIE for w in workers]
    finally:
        _end(server, workers)
    assert server.returncode == 130
    assert not (tmp_path / "response.bin").exists()
    assert all(gone)


def test_ctrl_c_stops_a_server_on_threads(kernels: dict[str, Path], tmp_path: Path) -> None:
    # The default engine: the server's own threads, no worker process. A thread finishes
    # the ciphertext it is on; the rest of the batch is dropped and nothing is written.
    server, workers = _mid_batch(kernels["box_blur"], tmp_path, "--workers", "2")
    try:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    finally:
        _end(server, workers)
    assert server.returncode == 130, err
    assert "Traceback" not in err
    assert not (tmp_path / "response.bin").exists()
    assert not (tmp_path / "response.bin.part").exists()


def test_ctrl_c_stops_a_run_on_a_dask_cluster(kernels: dict[str, Path], tmp_path: Path) -> None:
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        server, _ = _mid_batch(kernels["box_blur"], tmp_path, "--dask", address)
        try:
            server.send_signal(signal.SIGINT)
            _, err = server.communicate(timeout=30)
        finally:
            _end(server, [])
        assert server.returncode == 130, err
        assert not (tmp_path / "response.bin").exists()
        assert not (tmp_path / "response.bin.part").exists()
        # The cluster is left as it was: it serves the next request.
        image = np.random.default_rng(8).integers(0, 256, size=(20, 20))
        _assert_blur(image, run_two_party(kernels["box_blur"], {"x": image}, dask=address).output)


def _end(server: subprocess.Popen[str], workers: list[psutil.Process]) -> None:
    """Whatever the test found, leave no process of it behind."""
    if server.poll() is None:
        server.kill()
    server.wait()
    for worker in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.kill()


def test_a_long_lived_server_keeps_its_pool(kernels: dict[str, Path]) -> None:
    module: Any = load_module(kernels["box_blur"])
    client = module.Client()
    image = np.random.default_rng(5).integers(0, 256, size=(40, 40))
    with module.Server(client.public_bundle(), workers=2, pool_min=0) as server:
        pids = []
        for _ in range(2):
            _assert_blur(image, client.decrypt(server.evaluate(client.encrypt(x=image))))
            assert server.engine is not None and server.engine.kind == "pool"
            pids.append(sorted(p.pid for p in _pool_processes(server.engine)))
        assert pids[0] == pids[1] and len(pids[0]) == 2  # the same two workers, reused
        processes = _pool_processes(server.engine)
    assert server.engine is None  # closed by the with block
    assert all(not p.is_alive() for p in processes)


def test_a_pool_started_before_the_bundle_serves_it(kernels: dict[str, Path]) -> None:
    module: Any = load_module(kernels["box_blur"])
    client = module.Client()
    pool = module.Engine.pool(2)  # no bundle yet: its workers import OpenFHE and wait for one
    image = np.random.default_rng(9).integers(0, 256, size=(40, 40))
    with module.Server(client.public_bundle(), workers=2, pool_min=0) as server:
        server.adopt(pool)
        _assert_blur(image, client.decrypt(server.evaluate(client.encrypt(x=image))))
        assert server.engine is pool and pool.submitted > 0 and pool.alive()
        processes = _pool_processes(pool)
    assert pool.closed and len(processes) == 2 and all(not p.is_alive() for p in processes)


def _pool_processes(engine: Any) -> list[Any]:
    return list(engine.executor._processes.values())


def test_a_request_too_small_for_a_pool_stays_in_the_process(kernels: dict[str, Path]) -> None:
    module: Any = load_module(kernels["box_blur"])
    client = module.Client()
    image = np.random.default_rng(6).integers(0, 256, size=(12, 12))  # 3 ciphertexts
    with module.Server(client.public_bundle(), workers=2, processes=True) as server:
        request = client.encrypt(x=image)
        assert module.request_info(io.BytesIO(request))["ciphertexts"] <= module.PROBES
        _assert_blur(image, client.decrypt(server.evaluate(request)))
        assert server.engine is None  # no pool was started for it


@settings(max_examples=200, deadline=None)
@given(
    remaining=st.integers(0, 10**6),
    seconds=st.floats(0, 10, allow_nan=False),
    workers=st.integers(1, 64),
    more=st.integers(1, 10**6),
    left=st.floats(0, 1, allow_nan=False),
)
def test_a_pool_pays_for_more_and_slower_ciphertexts(
    kernels: dict[str, Path], remaining: int, seconds: float, workers: int, more: int, left: float
) -> None:
    module: Any = load_module(kernels["box_blur"])
    pays = module.pool_pays
    if pays(remaining, seconds, workers):
        assert workers > 1 and seconds > module.DISPATCH_S / (workers - 1)
        assert pays(remaining + more, seconds, workers)  # more of the same pays too
        assert pays(remaining, seconds * 2, workers)  # and slower ones
    if pays(remaining, seconds, workers, left):  # a pool partly started pays sooner
        assert pays(remaining, seconds, workers, left / 2)
    # a start-up as long as the work alone is never repaid
    assert not pays(remaining, seconds, workers, remaining * seconds)
    if remaining * seconds <= module.POOL_START_S:
        assert not pays(remaining, seconds, workers)  # not even its start-up is saved


def test_the_request_streams_into_the_server_as_it_is_encrypted(
    kernels: dict[str, Path],
) -> None:
    image = np.random.default_rng(7).integers(0, 256, size=(50, 50))
    run = run_two_party(kernels["box_blur"], {"x": image}, workers=2, pool_min=0)
    assert run.overlapped and run.engine == "pool" and run.workers == 2
    _assert_blur(image, run.output)
    assert run.upload_bytes > run.ciphertexts * 10_000  # every ciphertext went through
    run = run_two_party(kernels["box_blur"], {"x": image}, workers=2, overlap=False)
    assert not run.overlapped
    _assert_blur(image, run.output)


def test_a_request_cut_short_fails_on_threads_with_a_clear_error(
    kernels: dict[str, Path], tmp_path: Path
) -> None:
    # A fresh server process on its threads: the error of a record read mid-batch names
    # what is wrong (Python's concurrent.futures.process, which the error handling names,
    # is not imported by the package until a pool is made).
    module: Any = load_module(kernels["box_blur"])
    image = np.random.default_rng(9).integers(0, 256, size=(60, 60))
    _, bundle, request = _files(module, tmp_path, image)
    data = request.read_bytes()
    request.write_bytes(data[: len(data) * 2 // 3])
    response = tmp_path / "response.bin"
    served = _serve(kernels["box_blur"], bundle, request, response, "--workers", "2")
    assert served.returncode == 2, served.stderr
    assert "ends early" in served.stderr and "Traceback" not in served.stderr
    assert not response.exists() and not Path(f"{response}.part").exists()


def test_inputs_that_do_not_fit_fail_on_the_client_and_stop_the_server(
    kernels: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(TypeError, match="ciphertext inputs"):
        run_two_party(kernels["box_blur"], {"y": np.zeros((20, 20))}, workers=2, workdir=tmp_path)
    # The server saw the request end before its header, said so, and wrote no response.
    assert (
        "ends early" in (tmp_path / "server.err").read_text()
        or "not a Porcupine" in (tmp_path / "server.err").read_text()
    )
    assert not (tmp_path / "response.bin").exists()
    assert not (tmp_path / "response.bin.part").exists()
