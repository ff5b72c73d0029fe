"""CPU stand-ins that the embedded Triton server loads, through its Python backend, in place of models
whose backends the pip-installed tritonserver lacks: a ``dali`` model runs its ``model.dali`` with DALI
on the CPU; a ``tensorrt_plan`` (or ``onnxruntime_onnx``) model runs the matching ONNX with ONNX Runtime.

This module is imported inside the Triton Python-backend stub (``triton_python_backend_utils`` exists
only there). The configs, the ensemble and its step mapping stay as the user wrote them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

try:  # only inside the Triton Python-backend stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported elsewhere for its helpers
    pb_utils = None


def _version_dir(args) -> Path:
    return Path(args["model_repository"]) / args["model_version"]


def _error_responses(requests, exc):
    return [pb_utils.InferenceResponse(error=pb_utils.TritonError(f"{type(exc).__name__}: {exc}"))
            for _ in requests]


class DaliModel:
    """Runs the model's ``model.dali`` on the CPU: input i feeds the external source of the same name,
    output j is the pipeline's output j (as Triton's DALI backend maps them)."""

    def initialize(self, args):
        from parity.dali.runner import DaliRunner

        config = json.loads(args["model_config"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]
        self.batched = config.get("max_batch_size", 0) > 0
        path = _version_dir(args) / "model.dali"
        self.runner = DaliRunner(path.read_bytes(), source=str(path), input_name=self.inputs[0], device="cpu",
                                 batch_size=max(1, config.get("max_batch_size", 1)), num_threads=1)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                data = pb_utils.get_input_tensor_by_name(request, self.inputs[0]).as_numpy()
                samples = list(data) if self.batched else [data]
                results = self.runner.run([np.ascontiguousarray(s) for s in samples])
                tensors = []
                for name, source in zip(self.outputs, self.runner.outputs):
                    stacked = np.stack([r[source] for r in results])
                    tensors.append(pb_utils.Tensor(name, stacked if self.batched else stacked[0]))
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as exc:  # Triton turns this into the request's error
                responses.extend(_error_responses([request], exc))
        return responses


class OnnxModel:
    """Runs the ONNX the TensorRT engine is built from (``model.onnx`` beside the plan, or the file the
    repository preparation recorded in ``parity_onnx.txt``) with ONNX Runtime on the CPU."""

    def initialize(self, args):
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        version = _version_dir(args)
        pointer = version / "parity_onnx.txt"
        path = Path(pointer.read_text().strip()) if pointer.is_file() else version / "model.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]
        ort_inputs = [i.name for i in self.session.get_inputs()]
        ort_outputs = [o.name for o in self.session.get_outputs()]
        # by name where the names agree, else by position (engines often rename tensors)
        self.feed = {t: (t if t in ort_inputs else ort_inputs[i]) for i, t in enumerate(self.inputs)}
        self.fetch = [(t if t in ort_outputs else ort_outputs[i]) for i, t in enumerate(self.outputs)]
        self.batched = config.get("max_batch_size", 0) > 0

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                feed = {}
                for name, ort_name in self.feed.items():
                    array = pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                    feed[ort_name] = array if self.batched else array[None]
                results = self.session.run(self.fetch, feed)
                tensors = [pb_utils.Tensor(name, r if self.batched else r[0]) for name, r in zip(self.outputs, results)]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as exc:
                responses.extend(_error_responses([request], exc))
        return responses
