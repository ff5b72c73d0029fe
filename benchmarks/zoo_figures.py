"""Print the bug-zoo figures: broken pipelines detected, causes named correctly, false alarms.

Run: .venv/bin/python benchmarks/zoo_figures.py
"""

import time

from parity.zoo import figures, run_zoo

if __name__ == "__main__":
    start = time.perf_counter()
    print(figures(run_zoo()))
    print(f"({time.perf_counter() - start:.1f} s)")
