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


def run(scheduler, order: list | None = None) -> list[list[str]]:
    """Two workers as pytest-xdist runs them: each holds back its last queued item until it is sent more or
    told to stop (it needs the next item to run it), and a worker told to stop leaves once its queue is
    empty; the controller stops every worker once the scheduler says all tests are finished. ``order``
    receives every item in the order they completed."""
    order = [] if order is None else order
    workers = [Worker("gw0"), Worker("gw1")]
    for worker in workers:
        scheduler.add_node(worker)
    for worker in workers:
        scheduler.add_node_collection(worker, COLLECTION)
    scheduler.schedule()
    active = list(workers)
    while active:
        worker = next((w for w in active if len(w.queue) > 1 or w.shutting_down), None)
        assert worker is not None, "every worker waits for work the scheduler holds back: a deadlock"
        if worker.queue:
            index = worker.queue.pop(0)
            worker.ran.append(COLLECTION[index])
            order.append(COLLECTION[index])
            scheduler.mark_test_complete(worker, index)
        else:
            active.remove(worker)
            scheduler.remove_node(worker)
        if scheduler.tests_finished:
            for other in active:
                other.shutdown()
    assert not scheduler.workqueue
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


def test_the_degenerate_check_is_sent_once_every_other_item_has_been_reported():
    order = []
    ran = run(BatchScheduling(config(), QUIET, scope, waits=lambda nodeid: nodeid == "cfg.py::degenerate"), order)
    assert order[-1] == "cfg.py::degenerate" and sorted(ran[0] + ran[1]) == sorted(COLLECTION)
