"""Where a run's image records go: a fixed-size :class:`~parity.results.summary.RunSummary` and a spool file on
disk, from which the JSON and JUnit files are written at the end. A run of 50,000 images holds no more
than a run of 50 (benchmarks/bench_stream.py measures it)."""

from __future__ import annotations

import json
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path

from parity.results.summary import RunSummary


class RunRecorder:
    def __init__(self, within: Path | None = None):
        """``within``: the folder to spool in (a pytest-xdist worker's is its controller's, which removes it
        even where the worker was killed); the system's temporary folder by default."""
        self.summary = RunSummary()
        self._folder = Path(tempfile.mkdtemp(prefix="parity-records-", dir=within))
        self._spool = open(self._folder / "records.jsonl", "w", encoding="utf-8")
        # removed by close(), or when the recorder is dropped or the interpreter exits unclosed
        self._remove = weakref.finalize(self, _remove, self._spool, self._folder)

    def add(self, record: dict) -> None:
        self.summary.add(record)
        self._spool.write(json.dumps(record) + "\n")

    def records(self) -> Iterator[dict]:
        """Every record added so far, in order, read back from disk."""
        self._spool.flush()
        with open(self._spool.name, encoding="utf-8") as spool:
            for line in spool:
                yield json.loads(line)

    def close(self) -> None:
        self._remove()

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _remove(spool, folder: Path) -> None:
    spool.close()
    shutil.rmtree(folder, ignore_errors=True)
