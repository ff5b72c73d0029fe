"""The parity config file: an mmengine-style Python file naming the reference, the DALI pipeline,
the images and the tolerances. Every key is validated here, so the rest of parity can trust it."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import glob
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from parity.errors import ParityConfigError

SAMPLE_IMAGES = Path(__file__).resolve().parent / "samples"  # photos and synthetic images shipped with parity
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
INPUT_FORMATS = ("BGR", "RGB", "encoded")
DEVICES = ("auto", "cpu", "gpu")
LAYOUTS = ("CHW", "HWC")



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
        return f"a non-negative number (inf: {self.inf})" if self.inf else f"a finite {sign} number"

    def accepts(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return False
        if math.isinf(value):
            return value > 0 and self.inf is not None
        if self.whole and value != int(value):
            return False
        return (value > self.low if self.above else value >= self.low) and (self.high is None or value <= self.high)


NO_LIMIT = "no limit"
# key: (default, what it accepts: a type, a tuple of values or a Number range, help)
_DALI_KEYS = {
    "pipeline": (None, str, "'file.py:function' decorated with @pipeline_def"),
    "serialized": (None, str, "path to a serialized pipeline such as a Triton model.dali"),
    "input_name": (None, str, "name of the external_source the client feeds"),
    "input_format": ("BGR", INPUT_FORMATS, "what the client feeds: decoded HWC uint8 BGR or RGB, or encoded bytes"),
    "output_layout": ("CHW", LAYOUTS, "layout the deployed model expects from the pipeline"),
    "device": ("auto", DEVICES, "where DALI runs: the GPU when one is present, else the CPU"),
    "batch_size": (8, Number(1, whole=True), "images per DALI batch"),
    "num_threads": (2, Number(1, whole=True), "DALI CPU threads"),
}
_REFERENCE_KEYS = {
    "config": (None, str, "MMPretrain config file, or 'mmpretrain::path/in/package.py'"),
    "test_pipeline": (None, list, "overrides the config's test_pipeline"),
    "data_preprocessor": (None, dict, "overrides the config's (model.)data_preprocessor"),
    "snapshot": (None, str, "folder written by `parity snapshot`: the recorded reference, used instead of MMPretrain"),
}
_TOLERANCE_KEYS = {
    "atol": (Number(inf=NO_LIMIT), "absolute difference above which an element counts as mismatched"),
    "rtol": (Number(), "relative part of the element threshold: atol + rtol * |reference|"),
    "max_mismatch": (Number(high=1), "largest allowed fraction of mismatched elements"),
    "mean_atol": (Number(inf=NO_LIMIT), "largest allowed mean absolute difference"),
    "border": (Number(whole=True), "pixels at each image edge left out of the verdict (still reported)"),
}
_MODEL_KEYS = {
    "config": (None, str, "MMPretrain config whose `model` is the network; defaults to reference.config"),
    "checkpoint": (None, str, "weights for the reference network (mmengine checkpoint)"),
    "onnx": (None, str, "the exported model: run by ONNX Runtime, and what TensorRT engines are built from"),
    "tensorrt": (None, str, "a serialized TensorRT engine (.plan/.engine), used where a GPU is present"),
    "backend": ("auto", ("auto", "onnxruntime", "tensorrt"), "deployed backend: TensorRT on a GPU, else ONNX Runtime"),
    "trt_precision": (None, ("fp32", "tf32", "fp16"), "how the TensorRT engine computes (FP32 with TF32 off, TF32, "
                      "FP16): its logit tolerance (docs/tolerances.md) and how parity builds one from the ONNX"),
    "reference_model": (True, bool, "run the reference network (False: degenerate-output check only)"),
    "topk": (5, Number(1, whole=True), "k for the top-k overlap"),
    "kl": (0.01, Number(inf=NO_LIMIT), "largest KL(reference || deployed) of the probabilities per image"),
    "topk_overlap": (0.6, Number(high=1), "smallest share of the reference's top-k found in the deployed top-k"),
    "conversion_atol": (1e-3, Number(inf=NO_LIMIT), "largest logit difference on the same input, times max |logit|"),
    "degenerate_share": (0.9, Number(high=1, above=True),
                         "share of images with one class / saturated p that counts as collapse"),
}
_TRITON_KEYS = {
    "repository": (None, str, "embedded mode: the model repository to serve with a local tritonserver"),
    "url": (None, str, "remote mode: a running server's gRPC address, host:port"),
    "model": ("ensemble", str, "the model (ensemble) the client calls"),
    "input": ("INPUT", str, "its image input"),
    "output": ("OUTPUT", str, "its logits or probabilities output"),
    "output_kind": ("logits", ("logits", "probabilities"), "what the output holds"),
    "timeout_s": (60.0, Number(above=True), "server start-up and per-call timeout"),
    "onnx": (None, dict, "ONNX per tensorrt_plan model when not beside the engine: {'classifier': 'x.onnx'}"),
    "kl": (0.01, Number(inf=NO_LIMIT), "largest KL(reference || Triton) per image"),
}
_TOP_KEYS = ("reference", "dali", "images", "tolerances", "model", "triton")

# Measured on DALI 2.4 vs Pillow/MMCV with identical geometry (docs/tolerances.md): a linear resize
# differs by up to 5 levels on noise and at the border columns of upscaled tiny images, 3 on
# photographs, with a mean under 0.25 level. A missing normalization or channel swap is orders beyond.
# Resamplers extend image borders differently (PIL vs DALI differ by 6+ levels in the last column of an
# upscaled tiny image), so the outermost pixel ring is reported but left out of the verdict.
DEFAULT_PIXEL_TOLERANCE = dict(atol=5.0, rtol=0.0, max_mismatch=0.005, mean_atol=0.5, border=1)


@dataclass(frozen=True)
class Tolerance:
    """When a stage passes: at most ``max_mismatch`` of elements beyond ``atol + rtol*|ref|`` and a
    mean absolute difference of at most ``mean_atol``, in the stage's own units."""

    atol: float
    rtol: float = 0.0
    max_mismatch: float = 0.0
    mean_atol: float | None = None
    border: int = 0
    unit: str = "uint8 levels"

    def scaled(self, factor: float, unit: str) -> Tolerance:
        """The same tolerance in other units, e.g. levels divided by std for normalized tensors."""
        mean = None if self.mean_atol is None else self.mean_atol * factor
        return Tolerance(self.atol * factor, self.rtol, self.max_mismatch, mean, self.border, unit)


@dataclass
class ParityConfig:
    path: Path
    reference_source: str
    test_pipeline: list
    data_preprocessor: dict | None
    dali: dict
    images: list[Path]
    tolerances: dict = field(default_factory=dict)
    model: dict | None = None  # the `model` section, validated; None when absent
    triton: dict | None = None  # the `triton` section, validated; None when absent
    model_cfg: dict | None = None  # the MMPretrain network definition (config's `model`)
    reference: dict = field(default_factory=dict)  # the `reference` section as written (validated)
    snapshot: Path | None = None  # the recorded reference to compare against, instead of running MMPretrain
    reference_read: bool = True  # False: the MMPretrain config was left unread (load_config(reference=False))

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def check_tolerance_labels(self, labels: list[str]) -> None:
        """Refuse a tolerance entry that names no stage of the pipeline (a typo would silently not apply)."""
        allowed = list(dict.fromkeys(["pixels", "model_input", *labels]))
        for stage in self.tolerances:
            if stage not in allowed:
                close = difflib.get_close_matches(stage, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                _fail(self.path, f"tolerances.{stage}: no stage of this pipeline is called {stage!r}{hint}; "
                                 f"expected one of {allowed}")

    def tolerance_for(self, stage: str, *, normalized_by: float | None = None) -> Tolerance:
        """Tolerance of a stage label: its own entry, else 'model_input'/'pixels', else defaults.

        The model input is in normalized units; unless the user gave a 'model_input' entry, the pixel
        tolerance is divided by the smallest std of the data preprocessor.
        """
        pixels = {**DEFAULT_PIXEL_TOLERANCE, **self.tolerances.get("pixels", {})}
        pixels["border"] = int(pixels["border"])
        if stage == "model_input":
            if "model_input" in self.tolerances:
                own = {**pixels, **self.tolerances["model_input"]}
                own["border"] = int(own["border"])
                return Tolerance(**own, unit="normalized units")
            if normalized_by:
                return Tolerance(**pixels).scaled(1.0 / normalized_by, "normalized units")
            return Tolerance(**pixels)
        own = {**pixels, **self.tolerances.get(stage, {})}
        own["border"] = int(own["border"])
        return Tolerance(**own)


def with_tolerance_overrides(config: ParityConfig, labels: list[str], **overrides: list[str]) -> ParityConfig:
    """``config`` with command-line tolerances (``--atol resize=2``, ``--rtol 0.01``): ``[stage=]value`` per
    tolerance key; a bare value sets the pixel default. ``labels`` are the pipeline's stages."""
    from parity.errors import ParityUsageError

    allowed = list(dict.fromkeys(["pixels", "model_input", *labels]))
    tolerances = {stage: dict(tol) for stage, tol in config.tolerances.items()}
    for key, values in overrides.items():
        flag = "--" + key.replace("_", "-")
        for text in values:
            stage, _, value = text.rpartition("=")
            try:
                number = float(value)
            except ValueError:
                raise ParityUsageError(f"{flag} {text!r}: expected [STAGE=]NUMBER, e.g. {flag} resize=2") from None
            rule = _TOLERANCE_KEYS[key][0]
            if not rule.accepts(number):
                raise ParityUsageError(f"{flag} {text!r}: expected {rule.expected()}")
            stage = stage.strip() or "pixels"
            if stage not in allowed:
                close = difflib.get_close_matches(stage, allowed, n=1)
                raise ParityUsageError(f"{flag} {text!r}: no stage of this pipeline is called {stage!r}"
                                       + (f" (did you mean {close[0]!r}?)" if close else "") + f"; expected one of {allowed}")
            tolerances.setdefault(stage, {})[key] = number
    return dataclasses.replace(config, tolerances=tolerances)


def _fail(path, msg) -> NoReturn:
    raise ParityConfigError(f"{path}: {msg}")


def _check_keys(path, section: str, given: dict, allowed) -> None:
    for key in given:
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _fail(path, f"unknown key {section}{key!r}{hint}; expected one of {sorted(allowed)}")


def _check_value(path, name, value, expected):
    if isinstance(expected, Number):
        if not expected.accepts(value):
            _fail(path, f"{name}={value!r}: expected {expected.expected()}")
    elif isinstance(expected, tuple):
        if value not in expected:
            _fail(path, f"{name}={value!r}: expected one of {list(expected)}")
    elif expected is bool:
        if not isinstance(value, bool):
            _fail(path, f"{name}={value!r}: expected True or False")
    elif not isinstance(value, expected) or isinstance(value, bool):
        _fail(path, f"{name}={value!r} (type={type(value).__name__}): expected {expected.__name__}")


def load_config(path, *, snapshot=None, live: bool = False, reference: bool = True) -> ParityConfig:
    """Read and validate a parity config file (mmengine-style Python, ``_base_`` files merged).

    ``snapshot`` (a folder written by ``parity snapshot``) replaces the live MMPretrain reference, as
    ``reference.snapshot`` in the file does; no training package is imported then. ``live`` runs the
    MMPretrain reference even where the file names a snapshot (what ``parity snapshot`` records).
    ``reference=False`` leaves the MMPretrain config unread (no mmengine import, 0.5 s): what a
    pytest-xdist controller needs, which schedules the images while its workers load and run the reference.
    """
    from parity.config.file import read_config_file

    path = Path(path).resolve()
    return config_from_dict(read_config_file(path), path, snapshot=snapshot, live=live, read_reference=reference)


def config_from_dict(raw: dict, path, *, snapshot=None, live: bool = False, read_reference: bool = True) -> ParityConfig:
    """Validate a config given as a dict; relative paths resolve against ``path``'s folder."""
    path = Path(path).resolve()
    raw = {k: v for k, v in raw.items() if not k.startswith("_")}
    if snapshot is not None and isinstance(raw.get("reference"), dict):
        raw["reference"] = {**raw["reference"], "snapshot": str(Path(snapshot).resolve())}
    _check_keys(path, "", raw, _TOP_KEYS)
    for key in ("reference", "dali", "images"):
        if key not in raw:
            _fail(path, f"missing key {key!r} (see docs/config.md)")

    dali = _section(path, raw, "dali", _DALI_KEYS)
    if bool(dali["pipeline"]) == bool(dali["serialized"]):
        _fail(path, "dali: give exactly one of pipeline='file.py:function' or serialized='path/model.dali'")

    reference = _section(path, raw, "reference", _REFERENCE_KEYS)
    model = _section(path, raw, "model", _MODEL_KEYS) if "model" in raw else None
    snapshot = (path.parent / reference["snapshot"]).resolve() if reference["snapshot"] and not live else None
    if snapshot is not None:
        from parity.reference.snapshot import recorded_reference

        source, test_pipeline, data_preprocessor, recorded_logits = recorded_reference(snapshot, path, reference, model)
        model_cfg = None
    else:
        if not reference["config"] and not reference["test_pipeline"]:
            _fail(path, "reference: give config='model_config.py' (or 'mmpretrain::path.py'), an inline "
                        "test_pipeline, or snapshot='folder/' written by `parity snapshot`")
        source, test_pipeline, data_preprocessor, model_cfg = (
            _reference(path, reference) if read_reference else (reference["config"] or str(path), [], None, None))
    if model is not None:
        if model["config"] and snapshot is None and read_reference:
            model_cfg = _load_model_config(path, model["config"]).get("model")
        if not model["onnx"] and not model["tensorrt"]:
            _fail(path, "model: give onnx='model.onnx' (and/or tensorrt='model.plan') for the deployed model")
        if snapshot is not None:
            if model["reference_model"] and not recorded_logits:
                _fail(path, f"reference.snapshot={str(snapshot)!r} holds no reference logits (it was written from a "
                            "config without a `model` section): run `parity snapshot` again with the model section, "
                            "or set model.reference_model=False for the degenerate-output check alone")
        elif model["reference_model"] and not model_cfg and read_reference:
            _fail(path, "model: no `model` in the reference config to build the reference network; set "
                        "model.config, or model.reference_model=False for the degenerate-output check alone")

    tolerances = raw.get("tolerances") or {}
    if not isinstance(tolerances, dict):
        _fail(path, f"tolerances={tolerances!r}: expected a dict of stage name -> dict(atol=..., ...)")
    for stage, tol in tolerances.items():
        if not isinstance(tol, dict):
            _fail(path, f"tolerances.{stage}={tol!r}: expected dict(atol=..., rtol=..., max_mismatch=..., "
                        "mean_atol=...)")
        _check_keys(path, f"tolerances.{stage}.", tol, _TOLERANCE_KEYS)
        for key, value in tol.items():
            _check_value(path, f"tolerances.{stage}.{key}", value, _TOLERANCE_KEYS[key][0])

    triton = None
    if "triton" in raw:
        triton = _section(path, raw, "triton", _TRITON_KEYS)
        if bool(triton["repository"]) == bool(triton["url"]):
            _fail(path, "triton: give exactly one of repository='model_repository' (embedded server) or "
                        "url='host:8001' (a running server)")
        if triton["repository"] and not (path.parent / triton["repository"]).is_dir():
            _fail(path, f"triton.repository={triton['repository']!r}: folder not found: "
                        f"{(path.parent / triton['repository']).resolve()}")
        if model is None:
            _fail(path, "triton: the triton stage compares answers with the reference network: add a `model` "
                        "section (model.onnx, and model.config/checkpoint for the reference)")
    images = resolve_images(path, raw["images"])
    return ParityConfig(path=path, reference_source=source, test_pipeline=test_pipeline,
                        data_preprocessor=data_preprocessor, dali=dali, images=images, tolerances=tolerances,
                        model=model, model_cfg=model_cfg, triton=triton, reference=reference, snapshot=snapshot,
                        reference_read=read_reference or snapshot is not None)


def _section(path, raw, name, spec) -> dict:
    given = raw.get(name)
    if not isinstance(given, dict):
        _fail(path, f"{name}={given!r}: expected dict(...) with keys {sorted(spec)}")
    _check_keys(path, f"{name}.", given, spec)
    out = {}
    for key, (default, expected, _help) in spec.items():
        value = given.get(key, default)
        if value is not None:
            _check_value(path, f"{name}.{key}", value, expected)
        out[key] = int(value) if isinstance(expected, Number) and expected.whole else value
    return out


def _reference(path: Path, reference: dict):
    """The test_pipeline and data_preprocessor, from the model config and/or inline overrides."""
    cfg: dict = {}
    source = str(path)
    if reference["config"]:
        cfg = _load_model_config(path, reference["config"], key="reference.config")
        source = reference["config"]
    test_pipeline = reference["test_pipeline"] or _find_test_pipeline(cfg)
    if not test_pipeline:
        _fail(path, f"reference: no test_pipeline in {source} (looked at test_pipeline, "
                    "test_dataloader.dataset.pipeline, val_dataloader.dataset.pipeline); set reference.test_pipeline")
    if reference["test_pipeline"] or reference["data_preprocessor"]:  # errors in them are the parity config's
        overrides = " and ".join(k for k in ("test_pipeline", "data_preprocessor") if reference[k])
        source = f"{path.name} (reference.{overrides}" + (f" over {source})" if reference["config"] else ")")
    for i, step in enumerate(test_pipeline):
        if not isinstance(step, dict) or "type" not in step:
            _fail(path, f"reference test_pipeline[{i}]={step!r}: expected dict(type=..., ...)")
    data_preprocessor = reference["data_preprocessor"]
    if data_preprocessor is None:
        # MMEngine's runner uses model.data_preprocessor, falling back to the top-level one
        data_preprocessor = (cfg.get("model") or {}).get("data_preprocessor") or cfg.get("data_preprocessor")
    return source, copy.deepcopy(list(test_pipeline)), copy.deepcopy(data_preprocessor), cfg.get("model")


def _load_model_config(path: Path, spec: str, key: str = "model.config") -> dict:
    """An MMPretrain config as a dict: a file relative to the parity config, or 'package::path'."""
    from parity.extras import require

    Config = require("mmengine", "reference", f"{path}: {key}={spec!r} (an MMPretrain config)",
                     "; or compare against a recorded reference: parity check CFG --reference SNAPSHOT_DIR").Config

    target = _package_config(path, spec) if "::" in spec else str((path.parent / spec).resolve())
    if not Path(target).is_file():
        _fail(path, f"{key}={spec!r}: file not found: {target}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Config.fromfile(target).to_dict()
    except Exception as exc:
        _fail(path, f"{key}={spec!r} cannot be loaded: {type(exc).__name__}: {exc}")


def _package_config(path: Path, spec: str) -> str:
    """'mmpretrain::hrnet/x.py' -> the file inside the installed package (as mmengine's _base_ does)."""
    import importlib.util

    package, _, rel = spec.partition("::")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        _fail(path, f"reference.config={spec!r}: package {package!r} is not installed")
    root = Path(next(iter(found.submodule_search_locations or [])))
    for candidate in (root / ".mim" / "configs" / rel, root / "configs" / rel):
        if candidate.is_file():
            return str(candidate)
    return str(root / ".mim" / "configs" / rel)


def _find_test_pipeline(cfg: dict):
    if cfg.get("test_pipeline"):
        return cfg["test_pipeline"]
    for loader in ("test_dataloader", "val_dataloader"):
        pipeline = ((cfg.get(loader) or {}).get("dataset") or {}).get("pipeline")
        if pipeline:
            return pipeline
    return None


def resolve_images(path: Path, spec) -> list[Path]:
    """Files, folders (their image files) and globs, relative to the config file, in a stable order."""
    if isinstance(spec, str):
        spec = [spec]
    if not isinstance(spec, (list, tuple)) or not spec or not all(isinstance(s, str) for s in spec):
        _fail(path, f"images={spec!r}: expected a file, folder or glob, or a non-empty list of them")
    found: list[Path] = []
    for entry in spec:
        target = path.parent / entry
        if any(ch in entry for ch in "*?[") or target.is_dir():
            listed = glob.glob(str(target), recursive=True) if not target.is_dir() else target.iterdir()
            matches = [m for m in sorted(Path(p) for p in listed) if _listed_image(m)]
            if not matches:
                what = f"folder {entry!r} holds" if target.is_dir() else f"{entry!r} matches"
                _fail(path, f"images: {what} no image file")
            found.extend(matches)
        elif target.is_file():
            found.append(target)
        else:
            _fail(path, f"images: {entry!r} not found (looked for {target.absolute()})")
    return list(dict.fromkeys(_resolved(path, p) for p in found))


def _listed_image(path: Path) -> bool:
    """What a folder or glob contributes: every file with an image suffix (a broken one is then refused by
    name, never skipped), a symlink that resolves nowhere (refused likewise), and any other file whose
    content is an image (``.jfif``, an extensionless JPEG). Sub-folders and other files are not images."""
    if path.is_symlink() and not path.exists():
        return True
    if path.is_dir():
        return False
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    from parity.images import is_image_file  # reads the file's first bytes (and imports numpy)

    return is_image_file(path)


def _resolved(config: Path, image: Path) -> Path:
    try:
        return image.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        _fail(config, f"images: {image} cannot be read: {getattr(exc, 'strerror', None) or exc} (a broken or "
                      "looping symbolic link?)")
