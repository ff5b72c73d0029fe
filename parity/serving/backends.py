"""Model runners behind one small interface: the reference classifier (torch: MMPretrain's, timm's or
torchvision's network), ONNX Runtime (always available, CPU) and TensorRT (engine file, or built from the
ONNX; needs a GPU and pycuda).

Every runner takes a float32 NCHW batch and returns float32 logits [N, classes].
"""

from __future__ import annotations

import abc
import copy
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity.errors import ParityModelError
from parity.gpu.margins import TrtPrecision, trt_tolerance


class Runner(abc.ABC):
    name: str

    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Logits [N, classes] for a float32 [N, C, H, W] batch."""


class TorchClassifier(Runner):
    """The reference: the classifier built by MMPretrain from its config, weights from a checkpoint."""

    name = "reference (torch)"

    def __init__(self, model_cfg: dict, checkpoint: Path | None, source: str):
        from parity.extras import require

        torch = require("torch", "reference", "the reference network (model.config)")
        require("mmpretrain", "reference", "the reference network (model.config)")

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import mmpretrain.models  # noqa: F401
            from mmpretrain.registry import MODELS
        cfg = copy.deepcopy(model_cfg)
        cfg.pop("data_preprocessor", None)  # parity feeds already-preprocessed tensors
        try:
            self.model = MODELS.build(cfg)
        except Exception as exc:
            raise ParityModelError(f"{source}: model={cfg.get('type')!r} cannot be built: {type(exc).__name__}: "
                                   f"{exc}") from exc
        if checkpoint is not None:
            from mmengine.runner import load_checkpoint

            try:
                load_checkpoint(self.model, str(checkpoint), map_location="cpu", strict=True, logger="silent")
            except Exception as exc:
                raise _unloadable(checkpoint, exc) from None
        self.model.eval()
        self._torch = torch

    def infer(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            out = self.model(self._torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)), mode="tensor")
        if isinstance(out, (list, tuple)):
            out = out[-1]
        return out.detach().cpu().numpy().astype(np.float32)


def _unloadable(checkpoint: Path, exc: Exception) -> ParityModelError:
    """One sentence for a model.checkpoint that does not load: torch's reason, without its page of advice."""
    import pickle

    if isinstance(exc, (pickle.UnpicklingError, EOFError)):  # torch adds a page of weights_only advice
        reason = "not a torch checkpoint file (torch.load cannot read it)"
    else:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        if lines and lines[0].startswith("Error(s) in loading state_dict") and len(lines) > 1:
            lines = lines[1:]  # the header names only the class; the next line says which keys or shapes
        reason = f"{type(exc).__name__}: {lines[0][:300] if lines else ''}"
    return ParityModelError(f"{checkpoint}: model.checkpoint does not load into the model: {reason}")


class LibraryClassifier(Runner):
    """The reference network of a timm checkpoint or a torchvision weights preset, built by the library
    itself and nothing downloaded: weights from ``checkpoint`` (a state_dict saved with ``torch.save``), else
    seeded random ones, so that the deployed export of the same network still answers alike."""

    name = "reference (torch)"

    def __init__(self, library: str, network: str, checkpoint: Path | None, source: str, seed: int = 0):
        from parity.extras import require

        torch = require("torch", "timm" if library == "timm" else "reference", "the reference network (model)")
        with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's generator
            torch.manual_seed(seed)
            try:
                self.model = self._build(library, network)
            except ParityModelError:
                raise
            except Exception as exc:
                raise ParityModelError(f"{source}: the reference network cannot be built: {type(exc).__name__}: "
                                       f"{exc}") from exc
        if checkpoint is not None:
            try:
                state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
                if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
                    state = state["state_dict"]
                if not isinstance(state, dict):
                    raise TypeError(f"it holds a {type(state).__name__}, not a state_dict")
                keys = self.model.load_state_dict(state, strict=False)
            except Exception as exc:
                raise _unloadable(checkpoint, exc) from None
            if keys.missing_keys or keys.unexpected_keys:
                raise ParityModelError(
                    f"{checkpoint}: model.checkpoint does not load into the model: it lacks "
                    f"{len(keys.missing_keys)} of the {source} network's {len(self.model.state_dict())} tensors "
                    f"{_first(keys.missing_keys)}and holds {len(keys.unexpected_keys)} it does not have "
                    f"{_first(keys.unexpected_keys)}(is it a state_dict of this network?)")
        self.model.eval()
        self._torch = torch

    @staticmethod
    def _build(library: str, network: str):
        """timm's ``create_model(name, pretrained=False)``; torchvision's builder of the weights, ``weights=None``."""
        if library == "timm":
            from parity.extras import require

            return require("timm", "timm", "the timm reference network").create_model(network, pretrained=False)
        from parity.reference.torchvision import _import_torchvision, _weights

        models = _import_torchvision()
        member = _weights(models, network)
        builder = next(m for m in models.list_models() if models.get_model_weights(m) is type(member))
        return models.get_model(builder, weights=None, **_preset_arguments(builder, member))

    def infer(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            out = self.model(self._torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
        return out.detach().cpu().numpy().astype(np.float32)


def _first(keys: list) -> str:
    return f"(first {keys[0]!r}) " if keys else ""


def _preset_arguments(builder: str, member) -> dict:
    """What a torchvision builder sets from its weights when it loads them, which ``weights=None`` skips: the
    network the preset's state_dict fits (torchvision/models: vision_transformer, maxvit, inception, googlenet)."""
    arguments: dict = dict(num_classes=len(member.meta["categories"]))
    if builder.startswith("vit_"):
        arguments["image_size"] = member.meta["min_size"][0]
    elif builder == "maxvit_t":
        arguments["input_size"] = member.meta["min_size"]
    elif builder in ("inception_v3", "googlenet"):
        arguments.update(transform_input=True, init_weights=False)
    return arguments


def reference_network(model_cfg: dict, checkpoint: Path | None, source: str) -> Runner:
    """The reference network's runner, chosen by the reference's library (``model_cfg['library']`` for timm and
    torchvision, else an MMPretrain ``model`` definition)."""
    if model_cfg.get("library") in ("timm", "torchvision"):
        return LibraryClassifier(model_cfg["library"], model_cfg["name"], checkpoint, source)
    return TorchClassifier(model_cfg, checkpoint, source)


class OnnxRuntimeRunner(Runner):
    """The exported model (what MMDeploy/torch.onnx writes and TensorRT engines are built from), on the CPU."""

    name = "onnxruntime"

    def __init__(self, path: Path, threads: int = 2):
        from parity.extras import require

        ort = require("onnxruntime", "onnx", "model.onnx on ONNX Runtime")

        if not path.is_file():
            raise ParityModelError(f"model.onnx: file not found: {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ParityModelError(f"{path}: ONNX Runtime cannot load it: {exc}") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ParityModelError(f"{path}: expected one image input, found {[i.name for i in inputs]}")
        self.input_name = inputs[0].name
        self.input_shape = tuple(inputs[0].shape)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: batch.astype(np.float32)})[0], dtype=np.float32)


def export_onnx(model, example: np.ndarray, path: Path) -> None:
    """Export an MMPretrain classifier's logits (``mode='tensor'``) to ONNX with a dynamic batch, as
    MMDeploy/torch.onnx do: the file ONNX Runtime runs here and TensorRT builds engines from."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, classifier):
            super().__init__()
            self.classifier = classifier

        def forward(self, x):
            return self.classifier(x, mode="tensor")

    torch.onnx.export(Logits(model), (torch.from_numpy(np.ascontiguousarray(example, dtype=np.float32)),), str(path),
                      input_names=["input"], output_names=["logits"], opset_version=17, dynamo=False,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


# ---- TensorRT --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorSpec:
    name: str
    is_input: bool
    shape: tuple  # may hold -1 for dynamic dimensions
    dtype: np.dtype


def resolve_shape(shape: tuple, batch: np.ndarray | tuple) -> tuple:
    """Concrete shape for a binding: dynamic (-1) dimensions take the batch's (inputs) sizes."""
    actual = batch.shape if hasattr(batch, "shape") else tuple(batch)
    if len(shape) != len(actual):
        raise ParityModelError(f"the engine's input has rank {len(shape)} {tuple(shape)}, the batch "
                               f"{len(actual)} {tuple(actual)}")
    out = []
    for i, (want, got) in enumerate(zip(shape, actual)):
        if want not in (-1, got):
            raise ParityModelError(f"the engine's input expects {tuple(shape)}, the batch is {tuple(actual)} "
                                   f"(dimension {i})")
        out.append(got)
    return tuple(out)


def split_io(specs: list[TensorSpec]) -> tuple[TensorSpec, TensorSpec]:
    """The one image input and the logits output (the first output) of an engine."""
    inputs = [s for s in specs if s.is_input]
    outputs = [s for s in specs if not s.is_input]
    if len(inputs) != 1 or not outputs:
        raise ParityModelError(f"expected one input and at least one output, found inputs "
                               f"{[s.name for s in inputs]}, outputs {[s.name for s in outputs]}")
    return inputs[0], outputs[0]


def output_shape(spec: TensorSpec, batch_size: int) -> tuple:
    """The logits shape for a batch: a dynamic leading dimension is the batch size."""
    if any(d == -1 for d in spec.shape[1:]):
        raise ParityModelError(f"output {spec.name!r} has dynamic non-batch dimensions {spec.shape}")
    return (batch_size, *spec.shape[1:]) if spec.shape and spec.shape[0] == -1 else tuple(spec.shape)


class TensorRTRunner(Runner):
    """A TensorRT engine (a .plan/.engine file, or built from the ONNX) run with pycuda buffers.

    ``precision`` ('fp32' with TF32 off, 'tf32', 'fp16'; model.trt_precision) says how an engine file was
    built, and how parity builds one from the ONNX (TensorRT's default, 'tf32', when not given). Where it is
    known, ``tolerance`` is the logit tolerance of that precision (docs/tolerances.md).
    """

    name = "tensorrt"

    def __init__(self, engine_path: Path | None = None, onnx_path: Path | None = None, max_batch: int = 32,
                 precision: str | None = None):
        try:
            import pycuda.autoinit  # noqa: F401  (creates the CUDA context)
            import pycuda.driver as cuda
            import tensorrt as trt
        except Exception as exc:  # ImportError without the packages, RuntimeError/LogicError without a GPU
            raise ParityModelError(f"TensorRT backend unavailable: {type(exc).__name__}: {exc}. It needs the "
                                   "tensorrt and pycuda packages and an NVIDIA GPU; ONNX Runtime runs the same "
                                   "ONNX on the CPU.") from exc
        self.cuda, self.trt = cuda, trt
        logger = trt.Logger(trt.Logger.WARNING)
        if engine_path is not None:
            data = Path(engine_path).read_bytes()
        elif onnx_path is not None:
            precision = precision or TrtPrecision.TF32.value
            data = self._build(trt, logger, Path(onnx_path), max_batch, TrtPrecision(precision))
        else:
            raise ParityModelError("TensorRT backend needs model.tensorrt (engine file) or model.onnx")
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(data)
        if self.engine is None:
            raise ParityModelError(f"{engine_path or onnx_path}: TensorRT could not deserialize the engine")
        self.context = self.engine.create_execution_context()
        self.precision = TrtPrecision(precision) if precision else None
        self.tolerance = trt_tolerance(self.precision) if self.precision else None
        specs = [TensorSpec(name, self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                            tuple(self.engine.get_tensor_shape(name)),
                            np.dtype(trt.nptype(self.engine.get_tensor_dtype(name))))
                 for name in (self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors))]
        self.input, self.output = split_io(specs)
        self.input_shape = self.input.shape
        self.stream = cuda.Stream()

    @staticmethod
    def _build(trt, logger, onnx_path: Path, max_batch: int, precision: TrtPrecision) -> bytes:
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ParityModelError(f"{onnx_path}: TensorRT cannot parse the ONNX: {errors}")
        config = builder.create_builder_config()
        if precision is TrtPrecision.FP32:  # TF32 is on by default: FP32 proper needs it cleared
            config.clear_flag(trt.BuilderFlag.TF32)
        elif precision is TrtPrecision.FP16:
            config.set_flag(trt.BuilderFlag.FP16)
        tensor = network.get_input(0)
        shape = tuple(tensor.shape)
        if shape[0] == -1:
            profile = builder.create_optimization_profile()
            rest = shape[1:]
            profile.set_shape(tensor.name, (1, *rest), (max(1, max_batch // 2), *rest), (max_batch, *rest))
            config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ParityModelError(f"{onnx_path}: TensorRT failed to build an engine")
        return bytes(serialized)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        cuda = self.cuda
        host_in = np.ascontiguousarray(batch, dtype=self.input.dtype)
        self.context.set_input_shape(self.input.name, resolve_shape(self.input.shape, host_in))
        host_out = np.empty(output_shape(self.output, len(host_in)), dtype=self.output.dtype)
        dev_in, dev_out = cuda.mem_alloc(host_in.nbytes), cuda.mem_alloc(host_out.nbytes)
        try:
            cuda.memcpy_htod_async(dev_in, host_in, self.stream)
            self.context.set_tensor_address(self.input.name, int(dev_in))
            self.context.set_tensor_address(self.output.name, int(dev_out))
            if not self.context.execute_async_v3(self.stream.handle):
                raise ParityModelError("TensorRT execution failed")
            cuda.memcpy_dtoh_async(host_out, dev_out, self.stream)
            self.stream.synchronize()
        finally:
            dev_in.free()
            dev_out.free()
        return host_out.astype(np.float32)
