"""Harness overhead: wall time of a full parity check over the bare reference + DALI pipelines.

Run: .venv/bin/python benchmarks/bench_harness.py [config] [repeats]. Everything is measured in this
one run, on the same images, after one warm-up pass of each.
"""

import sys
import time
from pathlib import Path

from parity.config import load_config
from parity.engine import Harness
from parity.images import client_input

ROOT = Path(__file__).resolve().parents[1]


def main():
    config = load_config(sys.argv[1] if len(sys.argv) > 1 else ROOT / "fixtures/seed/parity_corrected.py")
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    harness = Harness(config)
    paths = config.images * repeats
    fmt = config.dali["input_format"]

    def bare():
        refs = [harness.reference.run(p) for p in paths]
        feeds = [client_input(r[0].array, r[0].channels, p, fmt) for r, p in zip(refs, paths)]
        harness.dali.run(feeds)

    def full():
        for _ in harness.run(paths):
            pass

    timings = {}
    for name, job in (("bare", bare), ("harness", full)):
        job()  # warm-up
        start = time.perf_counter()
        job()
        timings[name] = time.perf_counter() - start
    n = len(paths)
    print(f"images: {n} ({len(config.images)} x {repeats}), stages per image: {len(harness.pairs)}")
    print(f"bare reference + DALI: {timings['bare']:.2f} s ({n / timings['bare']:.1f} images/s)")
    print(f"parity harness:        {timings['harness']:.2f} s ({n / timings['harness']:.1f} images/s)")
    print(f"ratio harness / bare:  {timings['harness'] / timings['bare']:.2f}")


if __name__ == "__main__":
    main()
