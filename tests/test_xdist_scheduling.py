"""parity's pytest-xdist scheduler hands out the same work as pytest-xdist's own LoadScopeScheduling (whole
DALI batches, other tests by module), with lookups where LoadScopeScheduling scans the whole run per item."""

from types import SimpleNamespace

from xdist.scheduler import LoadScopeScheduling

from parity.xdist_scheduling import BatchScheduling

BATCH = 2
IMAGES = [f"img{i}" for i in range(7)]
QUIET = SimpleNamespace(loadscopesched=lambda *args: None)  # the schedulers' log
STAGES = ("input", "resize", "model_input", "model")
COLLECTION = (["cfg.py::gpu_risk", "cfg.py::determinism"]
              + [f"cfg.py::{image}::{stage}" for image in IMAGES for stage in STAGES]
              + ["cfg.py::degenerate", "tests/test_unit.py::test_a", "tests/test_unit.py::test_b"])


def scope(nodeid: str) -> str | None:
    parts = nodeid.split("::")
    if parts[0] != "cfg.py":
        return None
    return f"cfg.py::batch-{IMAGES.index(parts[1]) // BATCH}" if len(parts) == 3 else nodeid


class Worker:
    def __init__(self, name):
        self.gateway = SimpleNamespace(id=name)
        self.shutting_down = False
        self.queue: list[int] = []
        self.ran: list[str] = []

    def send_runtest_some(self, indices):
        self.queue.extend(indices)

    def shutdown(self):
        self.shutting_down = True


class ScopeOnly(LoadScopeScheduling):
    """pytest-xdist's scheduler with parity's work units and nothing else of parity's."""

    def _split_scope(self, nodeid):
        return scope(nodeid) or super()._split_scope(nodeid)


def run(scheduler) -> list[list[str]]:
    """Two workers that each run one of their queued items in turn, until the scheduler says all ran."""
    workers = [Worker("gw0"), Worker("gw1")]
    for worker in workers:
        scheduler.add_node(worker)
    for worker in workers:
        scheduler.add_node_collection(worker, COLLECTION)
    scheduler.schedule()
    while not scheduler.tests_finished or any(w.queue for w in workers):
        for worker in workers:
            if worker.queue:
                index = worker.queue.pop(0)
                worker.ran.append(COLLECTION[index])
                scheduler.mark_test_complete(worker, index)
    assert not scheduler.has_pending
    return [worker.ran for worker in workers]


def config():
    return SimpleNamespace(getvalue=lambda name: ["2*popen"], option=SimpleNamespace(loadscopereorder=True))


def test_every_item_runs_once_and_each_batch_of_images_on_one_worker():
    ran = run(BatchScheduling(config(), QUIET, scope))
    assert sorted(ran[0] + ran[1]) == sorted(COLLECTION)
    for image in IMAGES:
        assert len({w for w, items in enumerate(ran) for item in items if f"::{image}::" in item}) == 1


def test_the_work_handed_out_is_pytest_xdists_own():
    assert run(BatchScheduling(config(), QUIET, scope)) == run(ScopeOnly(config(), QUIET))
