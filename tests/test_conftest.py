"""tests/conftest.py under ``pytest -n 2 --dist loadgroup``, as ``./dev test`` runs it: a
module marked ``xdist_group`` runs on one worker and builds its module-scoped fixture once
(pytest 9.2 with xdist 3.8 split it over both workers: pytest-dev/pytest-xdist#1386)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

GROUPED = """
import os

import pytest

pytestmark = pytest.mark.xdist_group("together")


@pytest.fixture(scope="module")
def built():
    with open("built.log", "a") as log:
        log.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")


@pytest.mark.parametrize("i", range(6))
def test_grouped(built, i):
    pass
"""

LOOSE = """
import time

import pytest


@pytest.mark.parametrize("i", range(6))
def test_loose(i):
    time.sleep(0.05)
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_an_xdist_group_shares_one_worker_and_one_fixture(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text((Path(__file__).parent / "conftest.py").read_text())
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the project's configuration
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    (tmp_path / "test_loose.py").write_text(LOOSE)
    command = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v",
               "-p", "no:cacheprovider", "-p", "no:randomly"]  # fmt: skip
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    ran = re.findall(r"\[(gw\d)\] .*PASSED (test_\w+\.py)::", out.stdout)
    assert len(ran) == 12, out.stdout
    assert len({worker for worker, module in ran if module == "test_grouped.py"}) == 1
    assert len({worker for worker, _ in ran}) == 2  # the loose tests still spread
    assert len((tmp_path / "built.log").read_text().split()) == 1
