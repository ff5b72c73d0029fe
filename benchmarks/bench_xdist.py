"""pytest-xdist over parity items: wall time of ``pytest --parity-config`` with ``-n 0`` and ``-n N``.

Run: .venv/bin/python benchmarks/bench_xdist.py [n_images] [workers] [repeats]. Writes ``n_images`` distinct
224-class images (crops of the bundled ones, 1,000 by default) and a config for the 224x224 benchmark pipeline
into a temporary folder, then times both runs in this one process, alternating ``-n 0`` and ``-n N``
``repeats`` times (3 by default) on the same machine, and prints every pair and the median of their ratios:
a shared machine's speed drifts by tens of percent between runs, so one pair decides nothing.
Each worker loads the reference and DALI once, then computes only its own DALI batches.
"""

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def make_images(folder: Path, n: int) -> None:
    sources = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((ROOT / "fixtures/images").glob("*.png"))]
    rng = np.random.default_rng(0)
    for i in range(n):
        src = sources[i % len(sources)]
        h, w = src.shape[:2]
        y, x = rng.integers(0, h // 4), rng.integers(0, w // 4)
        Image.fromarray(src[y:y + 3 * h // 4, x:x + 3 * w // 4]).save(folder / f"img{i:04d}.png")


def run(config: Path, workers: int, *extra: str) -> tuple[float, str, float]:
    """Wall seconds, pytest's last line, and the CPU seconds of the run (every process of it)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "--parity-config", str(config), "-n", str(workers),
                           "-p", "no:cacheprovider", *extra], cwd=config.parent, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (now.ru_utime - used.ru_utime) + (now.ru_stime - used.ru_stime)
    last = done.stdout.strip().splitlines()[-1].strip("= ")
    if done.returncode != 0:
        raise SystemExit(f"pytest -n {workers} exited {done.returncode}: {last}")
    return seconds, last, cpu


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    folder = Path(tempfile.mkdtemp(prefix="parity-bench-xdist-"))
    try:
        (folder / "images").mkdir()
        make_images(folder / "images", n)
        shutil.copy(ROOT / "benchmarks/configs/pipeline_224.py", folder)
        config = folder / "parity_bench.py"
        config.write_text((ROOT / "benchmarks/configs/parity_224.py").read_text()
                          .replace("../../fixtures/images/*.png", "images/*.png"))
        load, _, load_cpu = run(config, 0, "--collect-only", "-q")  # pytest, the reference and DALI loaded
        print(f"{n} images at 224x224 on {os.cpu_count()} cores; start-up (collect only): {load:.1f} s wall, "
              f"{load_cpu:.1f} s CPU")
        ratios = []
        for _ in range(repeats):
            serial, line0, serial_cpu = run(config, 0)
            parallel, line_n, parallel_cpu = run(config, workers)
            ratios.append(serial / parallel)
            print(f"  -n 0: {serial:5.1f} s wall, {serial_cpu:5.1f} s CPU ({serial_cpu / serial:.2f} cores busy) | "
                  f"-n {workers}: {parallel:5.1f} s wall, {parallel_cpu:5.1f} s CPU ({parallel_cpu / parallel:.2f} cores "
                  f"busy) | ratio {serial / parallel:.2f}x   [{line0}] [{line_n}]")
        print(f"  -n 0 / -n {workers}, median of {repeats}: {statistics.median(ratios):.2f}x "
              f"(range {min(ratios):.2f}x to {max(ratios):.2f}x)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
