"""pytest-xdist workers simulated for a scheduler alone (no process, no test run), as pytest-xdist drives
them: each worker holds back its last queued item until it is sent more or told to stop (it needs the next
item to run one), a worker told to stop leaves once its queue is empty, and the controller stops every
worker once the scheduler says all tests are finished. Used by tests/test_xdist_scheduling.py and
benchmarks/bench_xdist_scheduler.py."""

from types import SimpleNamespace

QUIET = SimpleNamespace(loadscopesched=lambda *args: None)  # a scheduler's log
TWO_WORKERS = SimpleNamespace(getvalue=lambda name: ["2*popen"], option=SimpleNamespace(loadscopereorder=True))


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


def drive(scheduler, collection: list[str], order: list | None = None, crash_at: str | None = None) -> list[list[str]]:
    """Two workers through ``collection``; what each ran, and in ``order`` every item as it completed. The
    worker about to run ``crash_at`` dies there once, and a new worker replaces it, as pytest-xdist does."""
    order = [] if order is None else order
    workers = [Worker("gw0"), Worker("gw1")]
    for worker in workers:
        scheduler.add_node(worker)
    for worker in workers:
        scheduler.add_node_collection(worker, collection)
    scheduler.schedule()
    active = list(workers)
    while active:
        worker = next((w for w in active if len(w.queue) > 1 or w.shutting_down), None)
        assert worker is not None, "every worker waits for work the scheduler holds back: a deadlock"
        if worker.queue and collection[worker.queue[0]] == crash_at:
            crash_at = None
            active.remove(worker)
            assert scheduler.remove_node(worker) == collection[worker.queue[0]]  # the item it crashed on
            workers.append(Worker(f"gw{len(workers)}"))
            active.append(workers[-1])
            scheduler.add_node(workers[-1])
            scheduler.schedule()  # as when another replacement's collection ends first: this one's is not in
            scheduler.add_node_collection(workers[-1], collection)
            scheduler.schedule()
        elif worker.queue:
            index = worker.queue.pop(0)
            worker.ran.append(collection[index])
            order.append(collection[index])
            scheduler.mark_test_complete(worker, index)
        else:
            active.remove(worker)
            scheduler.remove_node(worker)
        if scheduler.tests_finished:
            for other in active:
                other.shutdown()
    assert not scheduler.workqueue
    return [worker.ran for worker in workers]
