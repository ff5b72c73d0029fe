"""Diagnosis time per image on a failing 224x224 pixel stage, per family of mistake (target: at most 50 ms on the
2-core machine), and for a difference nothing explains (every model tried).

Run: .venv/bin/python benchmarks/bench_diagnose.py
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the trials live with the tests

from parity.diagnose.stage import diagnose_arrays  # noqa: E402
from tests.recovery import PIXELS, dali_stage, photo, reference_stage  # noqa: E402

CASES = {"translation": (0, 0), "zoom": 1.6, "blur": 1.5, "hue": 25.0, "gain": 1.5, "rotation": 90.0}

if __name__ == "__main__":
    image = photo("astronaut.png")
    ref = reference_stage(image)
    blotch = ref.copy()
    blotch[:, 40:120, 60:160] = 255 - blotch[:, 40:120, 60:160]  # no model explains an inverted patch
    stages = {family: dali_stage(family, image, value) for family, value in CASES.items()} | {"unexplained": blotch}
    for family, dali in stages.items():
        diagnose_arrays(dali, ref, PIXELS)  # warm up (imports)
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            diagnosis = diagnose_arrays(dali, ref, PIXELS)
            runs.append(time.perf_counter() - start)
        print(f"{family:<12} {1000 * float(np.median(runs)):6.1f} ms  {', '.join(diagnosis.kinds) or '(none)'}")
