"""Embedded Triton: server start-up time, and per-image round trip through the ensemble against running
the same stand-in models directly (DALI on the CPU + ONNX Runtime) in this process, measured in one run.

Run: .venv/bin/python benchmarks/bench_triton.py [repository] [n_requests]
"""

import sys
import time
from pathlib import Path

import cv2
import numpy as np

from parity.dali.runner import DaliRunner
from parity.serving.backends import OnnxRuntimeRunner
from parity.serving.triton import EmbeddedServer, TritonClient

ROOT = Path(__file__).resolve().parents[1]


def main():
    repo = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "fixtures/triton/build/corrected_repository"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    images = [cv2.imread(str(p)) for p in sorted((ROOT / "fixtures/images").glob("*.png"))]
    requests = [images[i % len(images)] for i in range(n)]

    start = time.perf_counter()
    server = EmbeddedServer(repo, timeout_s=120).start()
    startup = time.perf_counter() - start
    try:
        client = TritonClient(server.url, "ensemble", "INPUT", "OUTPUT", timeout_s=60)
        client.infer(requests[0])  # warm-up
        start = time.perf_counter()
        served = [client.infer(img) for img in requests]
        triton_s = (time.perf_counter() - start) / n
        client.close()
    finally:
        server.stop()

    dali = DaliRunner((repo / "preprocess/1/model.dali").read_bytes(), source="model.dali", input_name=None,
                      device="cpu", batch_size=1, num_threads=1)
    onnx = OnnxRuntimeRunner((repo / "classifier/1/model.onnx").resolve(), threads=1)
    dali.run([requests[0]])
    start = time.perf_counter()
    direct = [onnx.infer(dali.run([img])[0][dali.outputs[0]][None])[0] for img in requests]
    direct_s = (time.perf_counter() - start) / n

    agree = np.mean([a.argmax() == b.argmax() for a, b in zip(served, direct)])
    print(f"tritonserver start-up (repository copy, stand-ins, ready): {startup:.2f} s")
    print(f"per image through Triton (gRPC, ensemble): {1000 * triton_s:.1f} ms")
    print(f"per image, same models in-process:          {1000 * direct_s:.1f} ms")
    print(f"ratio Triton / direct: {triton_s / direct_s:.2f}; top-1 agreement {100 * agree:.0f}% over {n} requests")


if __name__ == "__main__":
    main()
