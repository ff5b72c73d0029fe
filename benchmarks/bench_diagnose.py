"""Diagnosis time per image on a failing 224x224 pixel stage, per family of mistake (target: at most 50 ms on the
2-core machine), and for a difference nothing explains (every model tried).

Each case's diagnosis (not the comparison that found the stage failing) is timed 7 times; the median wall-clock time
and the median CPU time of this process are shown, with the machine's load average: on a shared machine the
wall-clock time grows with the load, the CPU time much less.

Run: .venv/bin/python benchmarks/bench_diagnose.py
     .venv/bin/python benchmarks/bench_diagnose.py --markdown   (the table docs/diagnosis.md shows)
"""

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the trials live with the tests

from parity.compare.arrays import compare_arrays  # noqa: E402
from parity.diagnose.causes import ARRAYS  # noqa: E402
from parity.diagnose.stage import StageCase, StageDiagnoser  # noqa: E402
from tests.recovery import PIXELS, dali_stage, photo, reference_stage  # noqa: E402

CASES = {"translation": (0, 0), "zoom": 1.6, "blur": 1.5, "hue": 25.0, "gain": 1.5, "rotation": 90.0, "zoom out": 0.7,
         "translation + gain": ((0, 0), 1.5), "zoom + gain": (1.6, 1.3)}
RUNS = 7


def timings() -> list[tuple[str, float, float, str]]:
    """(case, median wall ms, median CPU ms, causes named) per case, on astronaut.png."""
    image = photo("astronaut.png")
    ref = reference_stage(image)
    blotch = ref.copy()
    blotch[:, 40:120, 60:160] = 255 - blotch[:, 40:120, 60:160]  # no model explains an inverted patch
    stages = {family: dali_stage(family, image, value) for family, value in CASES.items()} | {"unexplained": blotch}
    rows = []
    diagnoser = StageDiagnoser(sides=ARRAYS)
    for family, dali in stages.items():
        failed = compare_arrays(dali, ref, PIXELS, image="", stage="", dali_op="", reference="")
        case = StageCase(dali, ref, PIXELS)
        diagnosis = diagnoser.diagnose(failed, case).diagnosis  # warm up (imports)
        wall, cpu = [], []
        for _ in range(RUNS):
            start, start_cpu = time.perf_counter(), time.process_time()
            diagnoser.diagnose(failed, case)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        rows.append((family, 1000 * float(np.median(wall)), 1000 * float(np.median(cpu)),
                     ", ".join(diagnosis.kinds) or "(none)"))
    return rows


if __name__ == "__main__":
    load = os.getloadavg()[0]
    rows = timings()
    if "--markdown" in sys.argv[1:]:
        print("| mistake | causes named | wall-clock | CPU |\n| --- | --- | --- | --- |")
        for family, wall, cpu, kinds in rows:
            print(f"| {family} | {kinds} | {wall:.0f} ms | {cpu:.0f} ms |")
        print(f"\nLoad average {load:.1f} on {os.cpu_count()} cores when measured.")
    else:
        print(f"load average {load:.1f} on {os.cpu_count()} cores")
        for family, wall, cpu, kinds in rows:
            print(f"{family:<18} {wall:6.1f} ms wall {cpu:6.1f} ms CPU  {kinds}")
