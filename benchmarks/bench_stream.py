"""Stream many images through the harness and report throughput and peak resident memory.

Run: .venv/bin/python benchmarks/bench_stream.py [config] [n_images]. The bundled images are cycled
to make ``n_images`` inputs (50,000 by default, the size of ImageNet's validation set); every result goes
where ``parity check`` sends it: an image record into the run's summary and its spool file
(:class:`parity.results.recorder.RunRecorder`), from which the JSON and JUnit files are then written. The run
passes when private memory grows by at most 16 MiB from image 5,000 to the last.

Resident memory is reported whole (the kernel's peak RSS) and split as /proc/self/status does: private
memory (RssAnon: what the libraries and the harness allocate) and mapped library files (RssFile: shared,
clean pages of torch's CUDA libraries, DALI, OpenCV...). The file part depends on the page cache, not
on parity: the same install measured 384 MiB of it warm and 671 MiB right after `pip install`.
"""

import resource
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path

from parity.config.load import load_config
from parity.outputs.junit import cases, write_junit
from parity.results.recorder import RunRecorder
from parity.results.records import image_record, write_json
from parity.run.harness import Harness

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
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
    mark = min(5_000, n // 2)
    harness = Harness(config)
    paths = list(islice(cycle(config.images), n))
    before, loaded = rss_mib(), status_mib()
    start = time.perf_counter()
    at_mark = None
    with RunRecorder() as recorder:
        for i, result in enumerate(harness.run(paths), 1):
            recorder.add(image_record(result))
            if i == mark:
                at_mark = status_mib()
            if i % 5000 == 0:
                print(f"{i} images, {i / (time.perf_counter() - start):.1f} images/s, private {status_mib()['RssAnon']:.0f}"
                      f" MiB", flush=True)
        seconds = time.perf_counter() - start
        end = status_mib()
        with tempfile.TemporaryDirectory() as folder:
            write_json(Path(folder, "r.json"), config=str(config.path), reference=None, records=recorder.records(),
                       degenerate=None, seconds=seconds, exit_code=0)
            write_junit(Path(folder, "j.xml"), cases("bench", recorder.records()), seconds=seconds)
            written = status_mib()
        summary = recorder.summary
    print(f"streamed {n} images in {seconds:.1f} s ({n / seconds:.1f} images/s), {summary.failed_images} failing")
    print(f"peak resident memory: {rss_mib():.0f} MiB (after loading: {before:.0f} MiB)")
    print(f"after loading: {split(loaded)}; at image {mark}: {split(at_mark)}; at image {n}: {split(end)}")
    growth = end["RssAnon"] - at_mark["RssAnon"]
    print(f"private memory from image {mark} to {n}: {growth:+.1f} MiB (limit +16 MiB): "
          f"{'FLAT' if growth <= 16 else 'GROWS'}; after writing the JSON and JUnit files: {written['RssAnon']:.0f} MiB")


if __name__ == "__main__":
    main()
