"""Stream many images through the harness and report throughput and peak resident memory.

Run: .venv/bin/python benchmarks/bench_stream.py [config] [n_images]. The bundled images are cycled
to make ``n_images`` inputs (10,000 by default); results are kept as the CLI keeps them (numbers only).

Resident memory is reported whole (the kernel's peak RSS) and split as /proc/self/status does: private
memory (RssAnon: what the libraries and the harness allocate) and mapped library files (RssFile: shared,
clean pages of torch's CUDA libraries, DALI, OpenCV...). The file part depends on the page cache, not
on parity: the same install measured 384 MiB of it warm and 671 MiB right after `pip install`.
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


def status_mib() -> dict:
    """VmRSS, RssAnon and RssFile of this process now, in MiB."""
    with open("/proc/self/status") as status:
        return {line.split(":")[0]: int(line.split()[1]) / 1024 for line in status
                if line.startswith(("VmRSS", "RssAnon", "RssFile"))}


def split(mem: dict) -> str:
    return f"{mem['VmRSS']:.0f} MiB = private {mem['RssAnon']:.0f} + library files {mem['RssFile']:.0f}"


def main():
    config = load_config(sys.argv[1] if len(sys.argv) > 1 else ROOT / "benchmarks/configs/parity_224.py")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    harness = Harness(config)
    paths = list(islice(cycle(config.images), n))
    before, loaded = rss_mib(), status_mib()
    start = time.perf_counter()
    results = []
    peak_private = loaded
    for i, result in enumerate(harness.run(paths), 1):
        results.append(result)
        now = status_mib()
        if now["RssAnon"] > peak_private["RssAnon"]:
            peak_private = now
        if i % 2000 == 0:
            print(f"{i} images, {i / (time.perf_counter() - start):.1f} images/s, peak RSS {rss_mib():.0f} MiB",
                  flush=True)
    seconds = time.perf_counter() - start
    failed = sum(not r.passed for r in results)
    print(f"streamed {n} images in {seconds:.1f} s ({n / seconds:.1f} images/s), {failed} failing")
    print(f"peak resident memory: {rss_mib():.0f} MiB (after loading: {before:.0f} MiB); limit 1024 MiB")
    print(f"after loading: {split(loaded)}; at the private peak: {split(peak_private)}")
    print(f"the run added {peak_private['RssAnon'] - loaded['RssAnon']:.0f} MiB of private memory")


if __name__ == "__main__":
    main()
