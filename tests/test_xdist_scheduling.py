"""parity's pytest-xdist scheduler hands out the same work as pytest-xdist's own LoadScopeScheduling (whole
DALI batches, other tests by module), with lookups where LoadScopeScheduling scans the whole run per item,
and sends the degenerate-output check to the last worker left."""

import pytest
from xdist.scheduler import LoadScopeScheduling

from parity.pytest_plugin.xdist import BatchScheduling

from .xdist_workers import QUIET, TWO_WORKERS, drive

BATCH = 2
IMAGES = [f"img{i}" for i in range(7)]
STAGES = ("input", "resize", "model_input", "model")
COLLECTION = (["cfg.py::gpu_risk", "cfg.py::determinism"]
              + [f"cfg.py::{image}::{stage}" for image in IMAGES for stage in STAGES]
              + ["cfg.py::degenerate", "tests/test_unit.py::test_a", "tests/test_unit.py::test_b"])


def scope(nodeid: str) -> str | None:
    parts = nodeid.split("::")
    if parts[0] != "cfg.py":
        return None
    return f"cfg.py::batch-{IMAGES.index(parts[1]) // BATCH}" if len(parts) == 3 else nodeid


class ScopeOnly(LoadScopeScheduling):
    """pytest-xdist's scheduler with parity's work units and nothing else of parity's."""

    def _split_scope(self, nodeid):
        return scope(nodeid) or super()._split_scope(nodeid)


def test_every_item_runs_once_and_each_batch_of_images_on_one_worker():
    ran = drive(BatchScheduling(TWO_WORKERS, QUIET, scope), COLLECTION)
    assert sorted(ran[0] + ran[1]) == sorted(COLLECTION)
    for image in IMAGES:
        assert len({w for w, items in enumerate(ran) for item in items if f"::{image}::" in item}) == 1


def test_the_work_handed_out_is_pytest_xdists_own():
    assert drive(BatchScheduling(TWO_WORKERS, QUIET, scope), COLLECTION) == drive(ScopeOnly(TWO_WORKERS, QUIET),
                                                                                   COLLECTION)


def test_the_degenerate_check_runs_last_once_every_other_item_has_been_reported():
    order = []
    waits = lambda nodeid: nodeid == "cfg.py::degenerate"  # noqa: E731
    ran = drive(BatchScheduling(TWO_WORKERS, QUIET, scope, waits=waits), COLLECTION, order)
    assert order[-1] == "cfg.py::degenerate" and sorted(ran[0] + ran[1]) == sorted(COLLECTION)


@pytest.mark.parametrize("crash_at", COLLECTION)
def test_a_worker_that_crashes_on_any_item_is_replaced_and_the_run_ends_with_every_item_run_once(crash_at):
    """pytest-xdist puts a crashed worker's whole workload back in the queue, its finished batches too: a worker
    handed one was sent no item and never reported again, and the run hung (a worker OOM-killed in CI)."""
    ran = drive(BatchScheduling(TWO_WORKERS, QUIET, scope), COLLECTION, crash_at=crash_at)
    assert sorted(item for items in ran for item in items) == sorted(COLLECTION)  # the crashed item too, once
