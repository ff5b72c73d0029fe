"""The parity config file: an mmengine-style Python file naming the reference, the DALI pipeline,
the images and the tolerances, read into the typed sections of :mod:`parity.config.sections`. Every key is
validated here, so the rest of parity can trust it."""

from __future__ import annotations

import copy
import dataclasses
import glob
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.config.sections import (
    TOLERANCE_KEYS,
    DaliSection,
    ModelSection,
    ReferenceSection,
    Tolerance,
    Tolerances,
    TritonSection,
    build_section,
    check_keys,
    check_tolerance_entries,
    fail,
    unknown_stage,
)

SAMPLE_IMAGES = Path(__file__).resolve().parents[1] / "samples"  # photos and synthetic images shipped with parity
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_TOP_KEYS = ("reference", "dali", "images", "tolerances", "model", "triton")


@dataclass
class ParityConfig:
    """A loaded parity config: each section as a typed, frozen dataclass (``cfg.dali.batch_size``,
    ``cfg.model.onnx``: :mod:`parity.config.sections`), the reference's test pipeline and data preprocessor,
    the images, and the tolerance table resolved from the file (and the command line)."""

    path: Path
    reference_source: str
    test_pipeline: list
    data_preprocessor: dict | None
    dali: DaliSection
    images: list[Path]
    tolerances: Tolerances = Tolerances()
    model: ModelSection | None = None  # None when the file has no `model` section
    triton: TritonSection | None = None  # None when the file has no `triton` section
    model_cfg: dict | None = None  # the MMPretrain network definition (config's `model`), or {library, name}
    reference: ReferenceSection = ReferenceSection()
    snapshot: Path | None = None  # the recorded reference to compare against, instead of running MMPretrain
    reference_read: bool = True  # False: the MMPretrain config was left unread (load_config(reference=False))

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def check_tolerance_labels(self, labels: list[str]) -> None:
        """Refuse a tolerance entry that names no stage of the pipeline (a typo would silently not apply)."""
        for stage in self.tolerances.entries:
            problem = unknown_stage(stage, labels)
            if problem:
                fail(self.path, f"tolerances.{stage}: {problem}")

    def tolerance_for(self, stage: str, *, normalized_by: float | None = None) -> Tolerance:
        """Tolerance of a stage label (see :meth:`Tolerances.of`)."""
        return self.tolerances.of(stage, normalized_by=normalized_by)


def with_tolerance_overrides(config: ParityConfig, labels: list[str], **overrides: list[str]) -> ParityConfig:
    """``config`` with command-line tolerances (``--atol resize=2``, ``--rtol 0.01``): ``[stage=]value`` per
    tolerance key; a bare value sets the pixel default. ``labels`` are the pipeline's stages. The values are
    held to the ranges of the config file's keys and resolved into the same table."""
    from parity.errors import ParityUsageError

    entries: dict[str, dict[str, float]] = {}
    for name, values in overrides.items():
        flag = "--" + name.replace("_", "-")
        accepts = TOLERANCE_KEYS[name]
        for text in values:
            stage, _, value = text.rpartition("=")
            try:
                number = float(value)
            except ValueError:
                raise ParityUsageError(f"{flag} {text!r}: expected [STAGE=]NUMBER, e.g. {flag} resize=2") from None
            if not accepts.accepts(number):
                raise ParityUsageError(f"{flag} {text!r}: expected {accepts.expected()}")
            stage = stage.strip() or "pixels"
            problem = unknown_stage(stage, labels)
            if problem:
                raise ParityUsageError(f"{flag} {text!r}: {problem}")
            entries.setdefault(stage, {})[name] = number
    return dataclasses.replace(config, tolerances=config.tolerances.with_entries(entries))


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
    """Validate a config given as a dict; relative paths resolve against ``path``'s folder. Every section's
    keys and values are checked first, then what the sections say together."""
    path = Path(path).resolve()
    raw = {k: v for k, v in raw.items() if not k.startswith("_")}
    if snapshot is not None and isinstance(raw.get("reference"), dict):
        raw["reference"] = {**raw["reference"], "snapshot": str(Path(snapshot).resolve())}
    check_keys(path, "", raw, _TOP_KEYS)
    for key in ("reference", "dali", "images"):
        if key not in raw:
            fail(path, f"missing key {key!r} (see docs/config.md)")
    dali = build_section(path, "dali", raw["dali"], DaliSection)
    reference = build_section(path, "reference", raw["reference"], ReferenceSection)
    model = build_section(path, "model", raw["model"], ModelSection) if "model" in raw else None
    triton = build_section(path, "triton", raw["triton"], TritonSection) if "triton" in raw else None
    tolerances = Tolerances.resolve(check_tolerance_entries(path, raw.get("tolerances") or {}))

    if bool(dali.pipeline) == bool(dali.serialized):
        fail(path, "dali: give exactly one of pipeline='file.py:function' or serialized='path/model.dali'")
    snapshot = (path.parent / reference.snapshot).resolve() if reference.snapshot and not live else None
    if reference.library != "mmpretrain":
        _check_eval_transform(path, reference)
    if snapshot is not None:
        from parity.reference.snapshot import recorded_reference

        source, test_pipeline, data_preprocessor, recorded_logits = recorded_reference(snapshot, path, reference, model)
        model_cfg = None
    elif reference.library != "mmpretrain":
        name = reference.timm or reference.torchvision
        source, test_pipeline, data_preprocessor, model_cfg = f"{reference.library} {name}", [], None, None
    else:
        if not reference.config and not reference.test_pipeline:
            fail(path, "reference: give config='model_config.py' (or 'mmpretrain::path.py'), an inline "
                       "test_pipeline, or snapshot='folder/' written by `parity snapshot`")
        source, test_pipeline, data_preprocessor, model_cfg = (
            _reference(path, reference) if read_reference else (reference.config or str(path), [], None, None))
    if model is not None:
        if model.config and snapshot is None and read_reference and reference.library == "mmpretrain":
            model_cfg = _load_model_config(path, model.config).get("model")
        if not model.onnx and not model.tensorrt:
            fail(path, "model: give onnx='model.onnx' (and/or tensorrt='model.plan') for the deployed model")
        if snapshot is not None:
            if model.reference_model and not recorded_logits:
                fail(path, f"reference.snapshot={str(snapshot)!r} holds no reference logits (it was written from a "
                           "config without a `model` section): run `parity snapshot` again with the model section, "
                           "or set model.reference_model=False for the degenerate-output check alone")
        elif reference.library != "mmpretrain":
            if model.config:
                fail(path, f"model.config: the {reference.library} reference's network is built by "
                           f"{reference.library} from {name!r}; give its weights as model.checkpoint")
            model_cfg = dict(library=reference.library, name=name)  # built by the library (LibraryClassifier)
        elif model.reference_model and not model_cfg and read_reference:
            fail(path, "model: no `model` in the reference config to build the reference network; set "
                       "model.config, or model.reference_model=False for the degenerate-output check alone")
    if triton is not None:
        if bool(triton.repository) == bool(triton.url):
            fail(path, "triton: give exactly one of repository='model_repository' (embedded server) or "
                       "url='host:8001' (a running server)")
        if triton.repository and not (path.parent / triton.repository).is_dir():
            fail(path, f"triton.repository={triton.repository!r}: folder not found: "
                       f"{(path.parent / triton.repository).resolve()}")
        if model is None:
            fail(path, "triton: the triton stage compares answers with the reference network: add a `model` "
                       "section (model.onnx, and model.config/checkpoint for the reference)")
    images = resolve_images(path, raw["images"])
    return ParityConfig(path=path, reference_source=source, test_pipeline=test_pipeline,
                        data_preprocessor=data_preprocessor, dali=dali, images=images, tolerances=tolerances,
                        model=model, model_cfg=model_cfg, triton=triton, reference=reference, snapshot=snapshot,
                        reference_read=read_reference or snapshot is not None)


_MMPRETRAIN_KEYS = ("config", "test_pipeline", "data_preprocessor")
_TIMM_ONLY = ("use_test_size", "input_size", "crop_pct", "crop_mode")
_TORCHVISION_ONLY = ("resize_size", "crop_size")


def _check_eval_transform(path: Path, reference: ReferenceSection) -> None:
    """A timm or torchvision reference: one library named, and only the overrides that library takes."""
    given = [k for k in ("timm", "torchvision", *_MMPRETRAIN_KEYS) if getattr(reference, k)]
    if len(given) > 1:
        fail(path, f"reference: {' and '.join(given)} given together: name one reference (timm=..., "
                   "torchvision=..., or an MMPretrain config=...)")
    foreign = [k for k in (_TORCHVISION_ONLY if reference.timm else _TIMM_ONLY) if getattr(reference, k)]
    if foreign:
        fail(path, f"reference.{foreign[0]} is not an argument of the {reference.library} reference (its "
                   f"overrides: {', '.join(reference.eval_transform_args()) or 'see docs/config.md'})")
    size = reference.input_size
    sizes = [size] if isinstance(size, int) else list(size) if isinstance(size, (list, tuple)) else None
    if size is not None and (not sizes or len(sizes) not in (1, 2, 3) or
                             any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in sizes)):
        fail(path, f"reference.input_size={size!r}: expected a positive integer, (H, W) or (3, H, W)")


def _reference(path: Path, reference: ReferenceSection):
    """The test_pipeline and data_preprocessor, from the model config and/or inline overrides."""
    cfg: dict = {}
    source = str(path)
    if reference.config:
        cfg = _load_model_config(path, reference.config, key="reference.config")
        source = reference.config
    test_pipeline = reference.test_pipeline
    if not test_pipeline:
        test_pipeline, key = _find_test_pipeline(source, cfg)
        if not test_pipeline:
            fail(path, f"reference: no test_pipeline in {source} (looked at {', '.join(_PIPELINE_KEYS)}); set "
                       "reference.test_pipeline")
        source = f"{source} ({key})" if reference.config else source
    if reference.test_pipeline or reference.data_preprocessor:  # errors in them are the parity config's
        overrides = " and ".join(k for k in ("test_pipeline", "data_preprocessor") if getattr(reference, k))
        source = f"{path.name} (reference.{overrides}" + (f" over {source})" if reference.config else ")")
    for i, step in enumerate(test_pipeline):
        if not isinstance(step, dict) or "type" not in step:
            fail(path, f"reference test_pipeline[{i}]={step!r}: expected dict(type=..., ...)")
    data_preprocessor = reference.data_preprocessor
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
        fail(path, f"{key}={spec!r}: file not found: {target}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Config.fromfile(target).to_dict()
    except Exception as exc:
        fail(path, f"{key}={spec!r} cannot be loaded: {type(exc).__name__}: {exc}")


def _package_config(path: Path, spec: str) -> str:
    """'mmpretrain::hrnet/x.py' -> the file inside the installed package (as mmengine's _base_ does)."""
    import importlib.util

    package, _, rel = spec.partition("::")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        fail(path, f"reference.config={spec!r}: package {package!r} is not installed")
    root = Path(next(iter(found.submodule_search_locations or [])))
    for candidate in (root / ".mim" / "configs" / rel, root / "configs" / rel):
        if candidate.is_file():
            return str(candidate)
    return str(root / ".mim" / "configs" / rel)


_PIPELINE_KEYS = ("test_dataloader.dataset.pipeline", "val_dataloader.dataset.pipeline", "test_pipeline")


def _find_test_pipeline(source: str, cfg: dict) -> tuple[list | None, str]:
    """The pipeline MMEngine's runner and MMPretrain's inferencers build: test_dataloader's, then
    val_dataloader's; a top-level ``test_pipeline`` is only a variable, read last. Returns it and the key
    read; warns (ParityPipelineWarning) when another key holds a different pipeline."""
    found: dict[str, list] = {}
    for key in _PIPELINE_KEYS:
        value: Any = cfg
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value:
            found[key] = value
    if not found:
        return None, ""
    key, pipeline = next(iter(found.items()))
    differ = [k for k, v in found.items() if v != pipeline]
    if differ:
        import warnings

        from parity.errors import ParityPipelineWarning

        warnings.warn(ParityPipelineWarning(
            f"{source} sets {' and '.join(differ)} different from {key}; parity reads {key}, "
            "the pipeline MMEngine's runner builds"), stacklevel=2)
    return pipeline, key


def resolve_images(path: Path, spec) -> list[Path]:
    """Files, folders (their image files) and globs, relative to the config file, in a stable order."""
    if isinstance(spec, str):
        spec = [spec]
    if not isinstance(spec, (list, tuple)) or not spec or not all(isinstance(s, str) for s in spec):
        fail(path, f"images={spec!r}: expected a file, folder or glob, or a non-empty list of them")
    found: list[Path] = []
    for entry in spec:
        target = path.parent / entry
        if any(ch in entry for ch in "*?[") or target.is_dir():
            listed = glob.glob(str(target), recursive=True) if not target.is_dir() else target.iterdir()
            matches = [m for m in sorted(Path(p) for p in listed) if _listed_image(m)]
            if not matches:
                what = f"folder {entry!r} holds" if target.is_dir() else f"{entry!r} matches"
                fail(path, f"images: {what} no image file")
            found.extend(matches)
        elif target.is_file():
            found.append(target)
        else:
            fail(path, f"images: {entry!r} not found (looked for {target.absolute()})")
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
        fail(config, f"images: {image} cannot be read: {getattr(exc, 'strerror', None) or exc} (a broken or "
                      "looping symbolic link?)")
