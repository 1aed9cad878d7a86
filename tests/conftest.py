"""Test-run ordering for ``./dev test`` (two xdist workers).

pytest-xdist's ``loadgroup`` hands out every ``xdist_group`` first (largest group first),
then the other tests one at a time in collection order. A long test collected late (a
synthesis of Sobel for a photo crop, a slot-packing search on Harris) then starts when the
queue is nearly empty, and the other worker idles until it ends. Handing out the tests
marked ``slow`` first (in their own order) leaves the short ones to fill in at the end:
the longest-first rule of scheduling on identical machines. Only the order changes: every
test runs, and runs the same.

Without xdist (``./dev quick``, ``-p no:xdist``) the order is left alone, so each module's
tests stay together and its module-scoped fixtures are built once.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker (each collects, and their collections must agree; the controller
    schedules in that order), move the ``slow`` tests ahead of the others, keeping each
    part's order."""
    if not hasattr(config, "workerinput"):  # set by xdist on its workers only
        return
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
