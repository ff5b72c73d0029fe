"""The bug-zoo figures: broken pipelines detected, named correctly, given a cause their ground truth rules out,
unexplained; false alarms on correct pipelines. Every bundled image (or a case's own), plus the determinism check.

Run: .venv/bin/python benchmarks/zoo_figures.py              (the table)
     .venv/bin/python benchmarks/zoo_figures.py --markdown   (docs/zoo.md, regenerated: redirect it there)
"""

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the zoo runner lives with the tests

from tests.zoo import cases_table, figures, results_markdown, run_zoo  # noqa: E402

if __name__ == "__main__":
    start = time.perf_counter()
    outcomes = run_zoo()
    seconds = time.perf_counter() - start
    if "--markdown" not in sys.argv[1:]:
        print(figures(outcomes))
        print(f"({seconds:.1f} s)")
    else:
        intro = (ROOT / "docs" / "zoo.md").read_text().split("\n## Figures\n")[0]
        print(f"{intro}\n## Figures\n\n{results_markdown(outcomes, seconds)}\n\n## Cases\n\n{cases_table()}")
