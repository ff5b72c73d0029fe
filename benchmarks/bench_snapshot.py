"""Reference snapshots: how fast `parity snapshot` records, how many bytes an image costs, and how much
faster a check against the snapshot is than the same check against the live MMPretrain reference.

Run: .venv/bin/python benchmarks/bench_snapshot.py [images]. Everything is measured in this one run, on the
same images: distinct crops of the bundled photos (so content-addressed files are not shared), written
to a temporary folder that is removed at the end.

- in process: images/s of `write_snapshot`, and of `Harness.run` live and against the snapshot, each
  check after a warm-up pass (throughput once everything is loaded); and the reference side alone (each
  image's stages, one thread), which is all that differs between the two checks;
- the ceilings: `Harness.run` with every image's reference stages already in memory, a reference side that
  costs nothing (no snapshot format can make a check faster), and the same with each image file decoded (a
  snapshot that does not store the decoded pixels must decode: the client's input is those pixels);
- the command: wall time of `parity check CFG` and `parity check CFG --reference DIR` as a CI job runs
  them, start-up (imports, model loading) included, on each config file as shipped (its 8 images).
"""

import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from parity.config.load import load_config
from parity.reference.snapshot import write_snapshot
from parity.run.harness import Harness

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [("224x224 model input", ROOT / "benchmarks/configs/parity_224.py", False),
           ("512x384 (seed, corrected)", ROOT / "fixtures/seed/parity_corrected.py", False),
           ("512x384 + ResNet-18 logits", ROOT / "fixtures/seed/parity_corrected.py", True)]
PARITY = Path(sys.executable).parent / "parity"


def distinct_images(folder: Path, count: int) -> list[Path]:
    """``count`` different photos: random 3:4 (width:height) crops, 300x400 px or more, of the bundled ones
    (shapes on which the seed's corrected pipeline matches MMCV's geometry, so every check passes)."""
    rng = np.random.default_rng(0)
    photos = [np.asarray(Image.open(ROOT / "parity/samples" / f"{n}.png").convert("RGB"))
              for n in ("astronaut", "chelsea", "coffee", "rocket")]
    paths = []
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        k = rng.integers(100, min(h // 4, w // 3) + 1)
        ch, cw = 4 * k, 3 * k
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        paths.append(folder / f"img{i:04d}.png")
        Image.fromarray(np.ascontiguousarray(photo[y:y + ch, x:x + cw])).save(paths[-1])
    return paths


def timed_check(harness: Harness, images) -> float:
    for _ in harness.run(images[:8]):  # warm-up
        pass
    start = time.perf_counter()
    for _ in harness.run(images):
        pass
    return time.perf_counter() - start


class _Held:
    """A reference whose stages are already in memory (read once from ``reference``): the ceiling."""

    def __init__(self, reference, images):
        self._reference = reference
        self._stages = {path: reference.run(path) for path in images}

    def __getattr__(self, name):
        return getattr(self._reference, name)

    def run(self, path):
        return self._stages[path]


class _HeldDecoding(_Held):
    """The ceiling of a snapshot that leaves the decode to the serving side: only the decode is paid."""

    def run(self, path):
        from parity.reference.snapshot_file import decode

        stages = self._stages[path]
        return [dataclasses.replace(stages[0], array=decode(path, stages[0].channels)), *stages[1:]]


def reference_ms(harness: Harness, images) -> float:
    """Milliseconds per image of the reference side alone (every stage of each image), one thread."""
    from parity.reference.mmpretrain import one_torch_thread

    with one_torch_thread():
        harness.reference.run(images[0])
        start = time.perf_counter()
        for path in images:
            harness.reference.run(path)
    return (time.perf_counter() - start) / len(images) * 1000


def command_seconds(*argv) -> float:
    start = time.perf_counter()
    subprocess.run([str(PARITY), "check", *map(str, argv), "-q"], check=False, capture_output=True)
    return time.perf_counter() - start


def main():
    sys.stdout.reconfigure(line_buffering=True)  # each figure as it is measured
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    with tempfile.TemporaryDirectory(prefix="parity-bench-") as tmp:
        images = distinct_images(Path(tmp), count)
        print(f"{count} distinct images, {min(Image.open(p).size for p in images)} to "
              f"{max(Image.open(p).size for p in images)} px")
        for name, path, with_model in CONFIGS:
            config = load_config(path)
            config = dataclasses.replace(config, images=images, model=config.model if with_model else None)
            folder = Path(tmp) / f"ref-{len(name)}"
            write_snapshot(dataclasses.replace(config, images=images[:4]), folder)  # warm-up: imports, model
            written = write_snapshot(config, folder)
            harnesses = Harness(config), Harness(dataclasses.replace(config, snapshot=folder))
            live, snapshot = (timed_check(h, images) for h in harnesses)
            ceilings = []
            for kind in (_Held, _HeldDecoding):
                held = Harness(dataclasses.replace(config, snapshot=folder))
                held.reference = kind(held.reference, images)
                ceilings.append(timed_check(held, images))
            free, decoding = ceilings
            live_ms, snapshot_ms = (reference_ms(h, images) for h in harnesses)
            print(f"{name}: snapshot {count / written.seconds:.1f} images/s, "
                  f"{written.bytes / count / 1024:.0f} KiB per image (50,000 images: "
                  f"{written.bytes / count * 50000 / 2**30:.1f} GiB); check live {count / live:.1f} images/s, "
                  f"against the snapshot {count / snapshot:.1f} images/s, ratio live / snapshot {live / snapshot:.2f}; "
                  f"reference side free {count / free:.1f} images/s (ratio {live / free:.2f}), "
                  f"decode only {count / decoding:.1f} images/s (ratio {live / decoding:.2f}); "
                  f"reference side alone {live_ms:.1f} / {snapshot_ms:.1f} ms per image")
        for path in dict.fromkeys(path for _, path, _ in CONFIGS):
            folder = Path(tmp) / f"shipped-{path.stem}"
            write_snapshot(load_config(path), folder)
            live_s, snapshot_s = command_seconds(path), command_seconds(path, "--reference", folder)
            print(f"command on {path.relative_to(ROOT)} as shipped: parity check {live_s:.1f} s, with --reference "
                  f"{snapshot_s:.1f} s, ratio {live_s / snapshot_s:.2f}")


if __name__ == "__main__":
    main()
