"""Reference snapshots at validation-set scale: `parity snapshot --shard K/N` and `parity check --reference
--shard K/N` as N CI jobs run them (one after the other here), then `parity merge`.

Run: .venv/bin/python benchmarks/bench_snapshot_scale.py [images] [shards] (5,000 and 2 by default). The images
are distinct crops of the bundled photos, 192 to 288 px a side, written to a temporary folder that is removed
at the end; the config is benchmarks/configs/parity_224.py over them. Each command's wall time includes its
start-up; its peak RSS is the kernel's (``wait4``), so a shard's memory is what one runner needs.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PARITY = Path(sys.executable).parent / "parity"


def small_images(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    photos = [np.asarray(Image.open(ROOT / "parity/samples" / f"{n}.png").convert("RGB"))
              for n in ("astronaut", "chelsea", "coffee", "rocket")]
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = rng.integers(192, 289, size=2)
        y, x = rng.integers(0, photo.shape[0] - h + 1), rng.integers(0, photo.shape[1] - w + 1)
        Image.fromarray(np.ascontiguousarray(photo[y:y + h, x:x + w])).save(folder / f"img{i:05d}.png")


def timed(*argv: str) -> tuple[int, float, float]:
    """(exit code, wall seconds, peak RSS in MiB) of one parity command."""
    start = time.perf_counter()
    process = subprocess.Popen([str(PARITY), *argv], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, time.perf_counter() - start, usage.ru_maxrss / 1024


def main():
    sys.stdout.reconfigure(line_buffering=True)  # each figure as it is measured
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    shards = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    with tempfile.TemporaryDirectory(prefix="parity-bench-") as tmp:
        folder = Path(tmp)
        (folder / "images").mkdir()
        small_images(folder / "images", count)
        text = (ROOT / "benchmarks/configs/parity_224.py").read_text()
        config = folder / "parity_cfg.py"
        config.write_text(text.replace("'pipeline_224.py:", repr(str(ROOT / "benchmarks/configs/pipeline_224.py"))[:-1]
                                       + ":").replace("['../../fixtures/images/*.png']", "['images/*.png']"))
        print(f"{count} images of 192 to 288 px a side, {shards} shards, benchmarks/configs/parity_224.py")
        results = []
        for k in range(1, shards + 1):
            ref = folder / f"ref-{k}"
            code, seconds, rss = timed("snapshot", str(config), "--out", str(ref), "--shard", f"{k}/{shards}", "-q")
            images = sum(1 for _ in (ref / "images").iterdir())
            size = sum(f.stat().st_size for f in ref.rglob("*") if f.is_file())
            print(f"snapshot --shard {k}/{shards}: exit {code}, {images} images in {seconds:.1f} s "
                  f"({images / seconds:.1f} images/s), peak RSS {rss:.0f} MiB, {size / images / 1024:.1f} KiB per image "
                  f"(50,000 images: {size / images * 50000 / 2**30:.2f} GiB)")
            code, seconds, rss = timed("check", str(config), "--reference", str(ref), "--shard", f"{k}/{shards}",
                                       "--json", str(folder / f"shard-{k}.json"), "-q")
            print(f"check --reference --shard {k}/{shards}: exit {code}, {images} images in {seconds:.1f} s "
                  f"({images / seconds:.1f} images/s), peak RSS {rss:.0f} MiB")
            results.append(str(folder / f"shard-{k}.json"))
        code, seconds, rss = timed("merge", *results, "--json", str(folder / "all.json"))
        print(f"merge: exit {code} in {seconds:.1f} s, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
