"""How ``./dev test`` (``pytest -n 2 --dist loadgroup``) hands tests to its two workers.

Two things, both on the xdist workers only (each worker collects, and the controller
schedules what they collected; without xdist, as in ``./dev quick``, nothing changes):

- **Groups that hold.** A module marks itself ``xdist_group`` so that its tests share one
  worker and its module-scoped fixtures (a synthesized kernel, an OpenFHE context, a whole
  evaluation run) are built once. xdist 3.8 does that by appending ``@group`` to each test's
  node id, through an attribute pytest 9.2 no longer reads (pytest-dev/pytest-xdist#1386):
  the groups were silently split over both workers and every such fixture built twice.
  :func:`_join_groups` appends the suffix through pytest's structured node id, and does
  nothing where the suffix is already there (an xdist that works).
- **Longest first.** ``loadgroup`` hands out the groups first (the largest first), then the
  other tests one at a time in collection order. A long test collected late (a Sobel
  synthesis for a photo crop, a slot-packing search on Harris) would start when the queue
  is nearly empty while the other worker idles. The tests marked ``slow`` go first, each
  part in its own order: the longest-first rule of scheduling on identical machines.

Only the order and the worker change: every test runs, and runs the same.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(trylast=True)  # after xdist's own attempt at the group suffix
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker: keep each ``xdist_group`` on one worker, slow tests first."""
    if not hasattr(config, "workerinput"):  # set by xdist on its workers only
        return
    if config.getvalue("loadgroup"):
        _join_groups(items)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _join_groups(items: list[pytest.Item]) -> None:
    """Append ``@NAME`` (the sorted group names joined by ``_``, as xdist does) to the node
    id of every test in an ``xdist_group``; xdist's scheduler reads the group from it."""
    for item in items:
        names = sorted(
            {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in
             item.iter_markers("xdist_group")}
        )  # fmt: skip
        nodeid = item.nodeid
        if names and "@" not in nodeid[nodeid.rfind("]") + 1 :]:
            from _pytest.nodeid import NodeId  # pytest >= 9.2: node ids are structured

            item._id = NodeId.parse(f"{nodeid}@{'_'.join(names)}")  # type: ignore[attr-defined]
