"""Stream many images through the harness and report throughput and peak resident memory.

Run: .venv/bin/python benchmarks/bench_stream.py [config] [n_images]. The bundled images are cycled
to make ``n_images`` inputs (10,000 by default); results are kept as the CLI keeps them (numbers only).
"""

import resource
import sys
import time
from itertools import cycle, islice
from pathlib import Path

from parity.config import load_config
from parity.engine import Harness

ROOT = Path(__file__).resolve().parents[1]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    config = load_config(sys.argv[1] if len(sys.argv) > 1 else ROOT / "benchmarks/configs/parity_224.py")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    harness = Harness(config)
    paths = list(islice(cycle(config.images), n))
    before = rss_mib()
    start = time.perf_counter()
    results = []
    for i, result in enumerate(harness.run(paths), 1):
        results.append(result)
        if i % 2000 == 0:
            print(f"{i} images, {i / (time.perf_counter() - start):.1f} images/s, peak RSS {rss_mib():.0f} MiB",
                  flush=True)
    seconds = time.perf_counter() - start
    failed = sum(not r.passed for r in results)
    print(f"streamed {n} images in {seconds:.1f} s ({n / seconds:.1f} images/s), {failed} failing")
    print(f"peak resident memory: {rss_mib():.0f} MiB (after loading: {before:.0f} MiB); limit 1024 MiB")


if __name__ == "__main__":
    main()
