"""The sections of a parity config as frozen dataclasses: each key's type, default and accepted values are
declared once, on its field, and checked when the file is loaded, so the rest of parity reads typed
attributes it can trust. The tolerances are resolved here too, into one table per run."""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from parity.errors import ParityConfigError, ParityUsageError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

INPUT_FORMATS = ("BGR", "RGB", "encoded")
DEVICES = ("auto", "cpu", "gpu")
LAYOUTS = ("CHW", "HWC")
NO_LIMIT = "no limit"


def fail(path, msg: str) -> NoReturn:
    raise ParityConfigError(f"{path}: {msg}")


@dataclass(frozen=True)
class Number:
    """The range of a numeric key. NaN is always refused: every comparison with it is false, so a NaN
    tolerance or threshold passes anything. ``inf`` is accepted only where ``inf`` says what it means."""

    low: float = 0.0
    high: float | None = None
    above: bool = False  # the low end itself is excluded
    whole: bool = False
    inf: str | None = None

    def expected(self) -> str:
        if self.whole:
            return "a positive integer" if self.low >= 1 else "a non-negative integer"
        if self.high is not None:
            return f"a number in {'(' if self.above else '['}{self.low:g}, {self.high:g}]"
        sign = "positive" if self.above else "non-negative"
        return f"a {sign} number (inf: {self.inf})" if self.inf else f"a finite {sign} number"

    def accepts(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return False
        if math.isinf(value):
            return value > 0 and self.inf is not None
        if self.whole and value != int(value):
            return False
        return (value > self.low if self.above else value >= self.low) and (self.high is None or value <= self.high)


Accepts = type | tuple | Number  # a type, the allowed values, or a numeric range
Entries = Mapping[str, Mapping[str, Any]]  # tolerance entries as written: stage label -> key -> number


def key(default: Any, accepts: Accepts, help: str) -> Any:
    """A config key: its default (``dataclasses.MISSING``: required), what it accepts, and what it means."""
    return field(default=default, metadata={"accepts": accepts, "help": help})


def check_value(path, name: str, value: object, accepts: Accepts) -> None:
    if isinstance(accepts, Number):
        if not accepts.accepts(value):
            fail(path, f"{name}={value!r}: expected {accepts.expected()}")
    elif isinstance(accepts, tuple):
        if value not in accepts:
            fail(path, f"{name}={value!r}: expected one of {list(accepts)}")
    elif accepts is bool:
        if not isinstance(value, bool):
            fail(path, f"{name}={value!r}: expected True or False")
    elif not isinstance(value, accepts) or isinstance(value, bool):
        fail(path, f"{name}={value!r} (type={type(value).__name__}): expected {accepts.__name__}")


def check_keys(path, section: str, given: Mapping, allowed) -> None:
    for name in given:
        if name not in allowed:
            close = difflib.get_close_matches(name, list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            fail(path, f"unknown key {section}{name!r}{hint}; expected one of {sorted(allowed)}")


S = TypeVar("S", bound="DataclassInstance")


def build_section(path, name: str, given: object, cls: type[S]) -> S:
    """The section ``name`` of the file as ``cls``: unknown keys and ill-typed values refused by name (None
    stands for the default only where the default is None)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if not isinstance(given, dict):
        fail(path, f"{name}={given!r}: expected dict(...) with keys {sorted(fields)}")
    check_keys(path, f"{name}.", given, fields)
    return cls(**{k: _checked(path, f"{name}.{k}", v, fields[k]) for k, v in given.items()})


def _checked(path, name: str, value: object, spec: dataclasses.Field) -> Any:
    if value is None and spec.default is None:
        return None
    accepts = spec.metadata["accepts"]
    check_value(path, name, value, accepts)
    if isinstance(accepts, Number) and accepts.whole and isinstance(value, float):
        return int(value)
    return value


@dataclass(frozen=True)
class ReferenceSection:
    config: str | None = key(None, str, "MMPretrain config file, or 'mmpretrain::path/in/package.py'")
    test_pipeline: list | None = key(None, list, "overrides the config's test_pipeline")
    data_preprocessor: dict | None = key(None, dict, "overrides the config's (model.)data_preprocessor")
    snapshot: str | None = key(None, str, "folder written by `parity snapshot`: the recorded reference, used "
                                          "instead of MMPretrain")
    timm: str | None = key(None, str, "a timm pretrained checkpoint ('resnet50.a1_in1k'): its eval transform is the "
                                      "reference (nothing is downloaded)")
    torchvision: str | None = key(None, str, "a torchvision weights preset ('ResNet50_Weights.IMAGENET1K_V2'): its "
                                             "transforms() are the reference")
    use_test_size: bool = key(False, bool, "timm: the checkpoint's test_input_size/test_crop_pct (as timm's own "
                                           "resolve_model_data_config(use_test_size=True))")
    input_size: int | list | tuple | None = key(None, object, "timm: serve at another input size (an int, (H, W) or "
                                                               "(3, H, W))")
    crop_pct: float | None = key(None, Number(0.0, 1.0, above=True), "timm: the share of the resized image cropped")
    interpolation: str | None = key(None, str, "timm/torchvision: the resize filter ('bilinear', 'bicubic', ...)")
    crop_mode: str | None = key(None, str, "timm: 'center', 'squash' or 'border'")
    resize_size: int | None = key(None, Number(1, whole=True), "torchvision: the preset's resize_size")
    crop_size: int | None = key(None, Number(1, whole=True), "torchvision: the preset's crop_size")
    mean: list | None = key(None, list, "timm/torchvision: per-channel mean in 0..1 units")
    std: list | None = key(None, list, "timm/torchvision: per-channel std in 0..1 units")

    @property
    def library(self) -> str:
        """Which library computes the reference: 'timm', 'torchvision' or 'mmpretrain'."""
        return "timm" if self.timm else "torchvision" if self.torchvision else "mmpretrain"

    def eval_transform_args(self) -> dict:
        """The overrides given, as the timm/torchvision reference takes them."""
        keys = (("use_test_size", "input_size", "crop_pct", "interpolation", "crop_mode", "mean", "std")
                if self.timm else ("resize_size", "crop_size", "interpolation", "mean", "std"))
        return {k: getattr(self, k) for k in keys if getattr(self, k) not in (None, False)}


@dataclass(frozen=True)
class DaliSection:
    pipeline: str | None = key(None, str, "'file.py:function' decorated with @pipeline_def")
    serialized: str | None = key(None, str, "path to a serialized pipeline such as a Triton model.dali")
    input_name: str | None = key(None, str, "name of the external_source the client feeds")
    input_format: str = key("BGR", INPUT_FORMATS, "what the client feeds: decoded HWC uint8 BGR or RGB, or "
                                                  "encoded bytes")
    output_layout: str = key("CHW", LAYOUTS, "layout the deployed model expects from the pipeline")
    device: str = key("auto", DEVICES, "where DALI runs: the GPU when one is present, else the CPU")
    batch_size: int = key(8, Number(1, whole=True), "images per DALI batch")
    num_threads: int = key(2, Number(1, whole=True), "DALI CPU threads")


@dataclass(frozen=True)
class ModelSection:
    config: str | None = key(None, str, "MMPretrain config whose `model` is the network; defaults to "
                                        "reference.config")
    checkpoint: str | None = key(None, str, "weights for the reference network (an mmengine checkpoint; for "
                                            "timm/torchvision a state_dict saved with torch.save)")
    onnx: str | None = key(None, str, "the exported model: run by ONNX Runtime, and what TensorRT engines are "
                                      "built from")
    tensorrt: str | None = key(None, str, "a serialized TensorRT engine (.plan/.engine), used where a GPU is present")
    backend: str = key("auto", ("auto", "onnxruntime", "tensorrt"), "deployed backend: TensorRT on a GPU, else "
                                                                    "ONNX Runtime")
    trt_precision: str | None = key(None, ("fp32", "tf32", "fp16"), "how the TensorRT engine computes (FP32 with "
                                    "TF32 off, TF32, FP16): its logit tolerance (docs/tolerances.md) and how "
                                    "parity builds one from the ONNX")
    reference_model: bool = key(True, bool, "run the reference network (False: degenerate-output check only)")
    topk: int = key(5, Number(1, whole=True), "k for the top-k overlap")
    kl: float = key(0.01, Number(inf=NO_LIMIT), "largest KL(reference || deployed) of the probabilities per image")
    topk_overlap: float = key(0.6, Number(high=1), "smallest share of the reference's top-k found in the deployed "
                                                   "top-k")
    conversion_atol: float = key(1e-3, Number(inf=NO_LIMIT), "largest logit difference on the same input, times "
                                                             "max |logit|")
    degenerate_share: float = key(0.9, Number(high=1, above=True), "share of images with one class / saturated p "
                                                                   "that counts as collapse")


@dataclass(frozen=True)
class TritonSection:
    repository: str | None = key(None, str, "embedded mode: the model repository to serve with a local tritonserver")
    url: str | None = key(None, str, "remote mode: a running server's gRPC address, host:port")
    model: str = key("ensemble", str, "the model (ensemble) the client calls")
    input: str = key("INPUT", str, "its image input")
    output: str = key("OUTPUT", str, "its logits or probabilities output")
    output_kind: str = key("logits", ("logits", "probabilities"), "what the output holds")
    timeout_s: float = key(60.0, Number(above=True), "server start-up and per-call timeout")
    onnx: dict | None = key(None, dict, "ONNX per tensorrt_plan model when not beside the engine: "
                                        "{'classifier': 'x.onnx'}")
    kl: float = key(0.01, Number(inf=NO_LIMIT), "largest KL(reference || Triton) per image")


@dataclass(frozen=True)
class Tolerance:
    """When a stage passes: at most ``max_mismatch`` of elements beyond ``atol + rtol*|ref|`` and a
    mean absolute difference of at most ``mean_atol``, in the stage's own units."""

    atol: float = key(dataclasses.MISSING, Number(inf=NO_LIMIT), "absolute difference above which an element counts as mismatched")
    rtol: float = key(0.0, Number(), "relative part of the element threshold: atol + rtol * |reference|")
    max_mismatch: float = key(0.0, Number(high=1), "largest allowed fraction of mismatched elements")
    mean_atol: float | None = key(None, Number(inf=NO_LIMIT), "largest allowed mean absolute difference")
    border: int = key(0, Number(whole=True), "pixels at each image edge left out of the verdict (still reported)")
    unit: str = "uint8 levels"

    def __post_init__(self) -> None:
        """Held to the config keys' ranges wherever one is made (``assert_stage_close(atol=...)`` too): a NaN
        threshold would pass everything."""
        for spec in dataclasses.fields(self):
            value, accepts = getattr(self, spec.name), spec.metadata.get("accepts")
            if isinstance(accepts, Number) and value is not None and not accepts.accepts(value):
                raise ParityUsageError(f"{spec.name}={value!r}: expected {accepts.expected()}")

    def scaled(self, factor: float, unit: str) -> Tolerance:
        """The same tolerance in other units, e.g. levels divided by std for normalized tensors."""
        mean = None if self.mean_atol is None else self.mean_atol * factor
        return Tolerance(self.atol * factor, self.rtol, self.max_mismatch, mean, self.border, unit)


TOLERANCE_KEYS = {f.name: f.metadata["accepts"] for f in dataclasses.fields(Tolerance) if f.metadata}

# Measured on DALI 2.4 vs Pillow/MMCV with identical geometry (docs/tolerances.md): a linear resize
# differs by up to 5 levels on noise and at the border columns of upscaled tiny images, 3 on
# photographs, with a mean under 0.25 level. A missing normalization or channel swap is orders beyond.
# Resamplers extend image borders differently (PIL vs DALI differ by 6+ levels in the last column of an
# upscaled tiny image), so the outermost pixel ring is reported but left out of the verdict.
DEFAULT_PIXEL_TOLERANCE = Tolerance(atol=5.0, rtol=0.0, max_mismatch=0.005, mean_atol=0.5, border=1)


def check_tolerance_entries(path, given: object) -> Entries:
    """The ``tolerances`` section as written: stage label -> dict of tolerance keys, every value in range."""
    if not isinstance(given, dict):
        fail(path, f"tolerances={given!r}: expected a dict of stage name -> dict(atol=..., ...)")
    for stage, entry in given.items():
        if not isinstance(entry, dict):
            fail(path, f"tolerances.{stage}={entry!r}: expected dict(atol=..., rtol=..., max_mismatch=..., "
                       "mean_atol=...)")
        check_keys(path, f"tolerances.{stage}.", entry, TOLERANCE_KEYS)
    fields = {f.name: f for f in dataclasses.fields(Tolerance)}
    return {stage: {k: _checked(path, f"tolerances.{stage}.{k}", v, fields[k]) for k, v in entry.items()}
            for stage, entry in given.items()}


def unknown_stage(stage: str, labels: list[str]) -> str | None:
    """Why a tolerance entry for ``stage`` cannot apply to a pipeline whose stages are ``labels`` (None: it can)."""
    allowed = list(dict.fromkeys(["pixels", "model_input", *labels]))
    if stage in allowed:
        return None
    close = difflib.get_close_matches(stage, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"no stage of this pipeline is called {stage!r}{hint}; expected one of {allowed}"


@dataclass(frozen=True)
class Tolerances:
    """The tolerance of every stage, resolved once: a stage's own entry over the ``pixels`` entry over the
    defaults. ``entries`` are the values as given (file, then command line), which a snapshot records."""

    entries: Entries = field(default_factory=dict)
    pixels: Tolerance = DEFAULT_PIXEL_TOLERANCE
    stages: Mapping[str, Tolerance] = field(default_factory=dict)  # the stages with an entry of their own

    @classmethod
    def resolve(cls, entries: Entries) -> Tolerances:
        pixels = dataclasses.replace(DEFAULT_PIXEL_TOLERANCE, **entries.get("pixels", {}))
        stages = {stage: dataclasses.replace(pixels, **entry, unit="normalized units" if stage == "model_input"
                                             else pixels.unit)
                  for stage, entry in entries.items() if stage != "pixels"}
        return cls({stage: dict(entry) for stage, entry in entries.items()}, pixels, stages)

    def with_entries(self, more: Entries) -> Tolerances:
        """This table with ``more`` entries laid over it, key by key (the command line over the file)."""
        merged = {stage: dict(entry) for stage, entry in self.entries.items()}
        for stage, entry in more.items():
            merged.setdefault(stage, {}).update(entry)
        return Tolerances.resolve(merged)

    def of(self, stage: str, *, normalized_by: float | None = None) -> Tolerance:
        """Tolerance of a stage label. The model input is in normalized units: without a 'model_input' entry,
        the pixel tolerance divided by ``normalized_by`` (the smallest std of the data preprocessor)."""
        if stage in self.stages:
            return self.stages[stage]
        if stage == "model_input" and normalized_by:
            return self.pixels.scaled(1.0 / normalized_by, "normalized units")
        return self.pixels
