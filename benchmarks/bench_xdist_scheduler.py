"""The pytest-xdist controller's scheduling cost over a validation set: parity's BatchScheduling against
pytest-xdist's LoadScopeScheduling with the same work units, two simulated workers (tests/xdist_workers.py),
no tests run.

Run: .venv/bin/python benchmarks/bench_xdist_scheduler.py [n_images ...] (default 2,500 10,000 50,000).
LoadScopeScheduling is skipped above 10,000 images: it grows with the square of the run's size.
"""

import sys
import time
from pathlib import Path

from xdist.scheduler import LoadScopeScheduling

from parity.pytest_plugin.xdist import BatchScheduling

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the simulated workers live with the tests
from tests.xdist_workers import QUIET, TWO_WORKERS, drive  # noqa: E402

STAGES = ("input", "resize", "model_input", "model")
BATCH = 8


def scope(nodeid: str) -> str:
    parts = nodeid.split("::")
    return f"cfg.py::batch-{int(parts[1][3:]) // BATCH}" if len(parts) == 3 else nodeid


class ScopeOnly(LoadScopeScheduling):
    def _split_scope(self, nodeid):
        return scope(nodeid)


def seconds(scheduler, n: int) -> float:
    collection = [f"cfg.py::img{i}::{stage}" for i in range(n) for stage in STAGES]
    start = time.perf_counter()
    drive(scheduler, collection)
    return time.perf_counter() - start


def main():
    for n in [int(a) for a in sys.argv[1:]] or [2_500, 10_000, 50_000]:
        ours = seconds(BatchScheduling(TWO_WORKERS, QUIET, scope), n)
        line = f"{n:>7,} images ({n * len(STAGES):,} items): BatchScheduling {ours:6.2f} s"
        if n <= 10_000:
            theirs = seconds(ScopeOnly(TWO_WORKERS, QUIET), n)
            line += f", LoadScopeScheduling {theirs:7.2f} s ({theirs / ours:.0f}x)"
        print(line)


if __name__ == "__main__":
    main()
