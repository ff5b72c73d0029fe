"""Print the bug-zoo figures: broken pipelines detected, causes named correctly, false alarms.

Run: .venv/bin/python benchmarks/zoo_figures.py
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the zoo runner lives with the tests

from tests.zoo import figures, run_zoo  # noqa: E402

if __name__ == "__main__":
    start = time.perf_counter()
    print(figures(run_zoo()))
    print(f"({time.perf_counter() - start:.1f} s)")
