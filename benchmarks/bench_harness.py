"""Harness overhead: wall time of a full parity check over the bare pipelines doing the same work.

Run: .venv/bin/python benchmarks/bench_harness.py [config] [repeats]. Everything is measured in this
one run, on the same images, after one warm-up pass of each job.

- preprocessing: the parity check of the preprocessing stages alone (the config's model section set
  aside) over the bare reference pipeline + the bare DALI pipeline.
- with the model (when the config has one): the whole check over the bare pipelines plus the two
  inferences a deployment comparison cannot do without (reference network on the reference input,
  deployed model on DALI's output). The harness also runs the deployed model on the reference input,
  to separate conversion error from preprocessing error: that third inference is its overhead.
"""

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from parity.config.load import load_config
from parity.images import client_input
from parity.run.harness import Harness

ROOT = Path(__file__).resolve().parents[1]


def timed(job) -> float:
    job()  # warm-up
    start = time.perf_counter()
    job()
    return time.perf_counter() - start


def main():
    config = load_config(sys.argv[1] if len(sys.argv) > 1 else ROOT / "benchmarks/configs/parity_224.py")
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    paths = config.images * repeats
    n = len(paths)
    fmt = config.dali.input_format
    harness = Harness(config)
    preprocessing = Harness(dataclasses.replace(config, model=None))

    def bare(with_model: bool):
        refs = [harness.reference.run(p) for p in paths]
        outputs = harness.dali.run([client_input(r[0].array, r[0].channels, p, fmt) for r, p in zip(refs, paths)])
        if with_model:
            assert harness.model is not None
            final = next(p.dali.name for p in harness.pairs if p.final)
            for image, (ref, out) in enumerate(zip(refs, outputs)):
                harness.model.reference_logits(str(image), ref[-1])
                dali = out[final] if harness.dali.layouts[final] == "CHW" else out[final].transpose(2, 0, 1)
                harness.model.deployed.infer(dali[None].astype(np.float32))

    def check(h: Harness):
        for _ in h.run(paths):
            pass

    print(f"images: {n} ({len(config.images)} x {repeats}), stages per image: {len(preprocessing.pairs)}")
    rows = [("preprocessing", timed(lambda: bare(False)), timed(lambda: check(preprocessing)))]
    if harness.model is not None:
        rows.append(("with the model", timed(lambda: bare(True)), timed(lambda: check(harness))))
    for name, bare_s, harness_s in rows:
        print(f"{name}: bare {bare_s:.2f} s ({n / bare_s:.1f} images/s), parity {harness_s:.2f} s "
              f"({n / harness_s:.1f} images/s), ratio parity / bare {harness_s / bare_s:.2f}")


if __name__ == "__main__":
    main()
