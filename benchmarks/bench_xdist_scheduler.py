"""The pytest-xdist controller's scheduling cost over a validation set: parity's BatchScheduling against
pytest-xdist's LoadScopeScheduling with the same work units, two simulated workers, no tests run.

Run: .venv/bin/python benchmarks/bench_xdist_scheduler.py [n_images ...] (default 2,500 10,000 50,000).
LoadScopeScheduling is skipped above 10,000 images: it grows with the square of the run's size.
"""

import sys
import time
from types import SimpleNamespace

from xdist.scheduler import LoadScopeScheduling

from parity.xdist_scheduling import BatchScheduling

QUIET = SimpleNamespace(loadscopesched=lambda *args: None)  # the schedulers' log
STAGES = ("input", "resize", "model_input", "model")
BATCH = 8


class Worker:
    def __init__(self, name):
        self.gateway = SimpleNamespace(id=name)
        self.shutting_down = False
        self.queue: list[int] = []

    def send_runtest_some(self, indices):
        self.queue.extend(indices)

    def shutdown(self):
        self.shutting_down = True


def scope(nodeid: str) -> str:
    parts = nodeid.split("::")
    return f"cfg.py::batch-{int(parts[1][3:]) // BATCH}" if len(parts) == 3 else nodeid


class ScopeOnly(LoadScopeScheduling):
    def _split_scope(self, nodeid):
        return scope(nodeid)


def seconds(scheduler, n: int) -> float:
    collection = [f"cfg.py::img{i}::{stage}" for i in range(n) for stage in STAGES]
    start = time.perf_counter()
    workers = [Worker("gw0"), Worker("gw1")]
    for worker in workers:
        scheduler.add_node(worker)
    for worker in workers:
        scheduler.add_node_collection(worker, collection)
    scheduler.schedule()
    while not scheduler.tests_finished or any(w.queue for w in workers):
        for worker in workers:
            if worker.queue:
                scheduler.mark_test_complete(worker, worker.queue.pop(0))
    return time.perf_counter() - start


def main():
    config = SimpleNamespace(getvalue=lambda name: ["2*popen"], option=SimpleNamespace(loadscopereorder=True))
    for n in [int(a) for a in sys.argv[1:]] or [2_500, 10_000, 50_000]:
        ours = seconds(BatchScheduling(config, QUIET, scope), n)
        line = f"{n:>7,} images ({n * len(STAGES):,} items): BatchScheduling {ours:6.2f} s"
        if n <= 10_000:
            theirs = seconds(ScopeOnly(config, QUIET), n)
            line += f", LoadScopeScheduling {theirs:7.2f} s ({theirs / ours:.0f}x)"
        print(line)


if __name__ == "__main__":
    main()
