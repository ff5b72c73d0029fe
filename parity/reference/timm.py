"""A timm checkpoint's own eval transform as the reference, resolved offline from its pretrained config.

``timm.create_model(name, pretrained=False)`` carries the checkpoint's ``pretrained_cfg`` without its
weights; ``resolve_model_data_config`` and ``create_transform(is_training=False)`` then build the very
``Compose`` timm's validation runs, whose steps :class:`TimmReference` applies one at a time.
"""

from __future__ import annotations

import difflib

from parity.errors import ParityReferenceError
from parity.reference.eval_transform import (
    EvalStep,
    EvalTransformReference,
    float32_values,
    interpolation_name,
)
from parity.reference.protocol import versions

CROP_MODES = ("center", "squash", "border")  # timm's eval crop modes; it takes any other silently as 'center'


def _import_timm():
    from parity.extras import require

    require("torch", "timm", "the timm reference")
    timm = require("timm", "timm", "the timm reference")
    data = require("timm.data", "timm", "the timm reference")
    if not hasattr(data, "resolve_model_data_config"):
        raise ParityReferenceError(f"timm {timm.__version__} has no timm.data.resolve_model_data_config, which "
                                   "resolves a checkpoint's eval transform: pip install 'parity[timm]' (timm>=1.0)")
    return timm


def _checkpoint(timm, name: str) -> str:
    """``name`` when timm has pretrained weights under it (an architecture alone means its default tag)."""
    known = timm.list_pretrained()
    if name in known or ("." not in name and any(k.startswith(name + ".") for k in known)):
        return name
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; the closest are {', '.join(map(repr, close))}" if close else ""
    raise ParityReferenceError(f"timm {timm.__version__} has no pretrained checkpoint {name!r}{hint}")


def _create_model(timm, name: str):
    """The network with its pretrained_cfg and no weights: on the meta device it allocates nothing (a ViT-B
    is built in 0.2 s instead of 2.4 s); a constructor that computes from its weights is built on the CPU."""
    import torch

    try:
        with torch.device("meta"):
            return timm.create_model(name, pretrained=False)
    except Exception:
        return timm.create_model(name, pretrained=False)


def _input_size(size) -> tuple:
    """timm's (channels, height, width) from an int, (height, width) or (3, height, width)."""
    if isinstance(size, int):
        return (3, size, size)
    size = tuple(size)
    if len(size) not in (2, 3) or not all(isinstance(n, int) and n > 0 for n in size):
        raise ParityReferenceError(f"input_size={size!r}: expected an int, (height, width) or (3, height, width)")
    return size if len(size) == 3 else (3, *size)


def _geometry_step(t, source: str, index: int) -> EvalStep:
    """A resize or crop of the Compose, described with its own attributes."""
    kind = type(t).__name__
    if kind == "Resize":
        cfg = dict(size=t.size if isinstance(t.size, int) else list(t.size),
                   interpolation=interpolation_name(t.interpolation), max_size=t.max_size,
                   antialias=t.antialias, backend="pillow")
    elif kind == "ResizeKeepRatio":
        cfg = dict(size=list(t.size), longest=t.longest, interpolation=interpolation_name(t.interpolation),
                   backend="pillow")
    elif kind == "CenterCrop":
        cfg = dict(size=list(t.size))
    elif kind == "CenterCropOrPad":
        cfg = dict(size=list(t.size), fill=t.fill, padding_mode=t.padding_mode)
    else:
        raise ParityReferenceError(
            f"{source}: eval transform step {index} {t!r} has no DALI counterpart parity can pair (it pairs "
            "Resize, ResizeKeepRatio, CenterCrop and CenterCropOrPad, then ToTensor and Normalize)")
    return EvalStep(dict(type=kind, **cfg), t)


def _steps(compose, source: str) -> list[EvalStep]:
    """The geometry steps of timm's eval Compose, then its ToTensor and Normalize as one step."""
    transforms = list(compose.transforms)
    *geometry, to_tensor, normalize = transforms
    if type(to_tensor).__name__ not in ("MaybeToTensor", "ToTensor") or type(normalize).__name__ != "Normalize":
        raise ParityReferenceError(f"{source}: the eval transform ends with {to_tensor!r}, {normalize!r}; parity "
                                   "expects ToTensor then Normalize, which make the model input")
    steps = [_geometry_step(t, source, i) for i, t in enumerate(geometry)]
    cfg = dict(type="Normalize", to_tensor=type(to_tensor).__name__, mean=float32_values(normalize.mean),
               std=float32_values(normalize.std))
    steps.append(EvalStep(cfg, lambda image: normalize(to_tensor(image))))
    return steps


class TimmReference(EvalTransformReference):
    """The eval transform timm builds for checkpoint ``name`` (e.g. 'resnet50.a1_in1k').

    ``use_test_size`` takes the checkpoint's test size and crop_pct (timm's own default is the training
    size); the other arguments override the resolved data config, as timm's ``args`` do.
    """

    kind = "timm"

    def __init__(self, name: str, *, use_test_size: bool = False, input_size=None, crop_pct: float | None = None,
                 interpolation: str | None = None, crop_mode: str | None = None, mean=None, std=None):
        timm = _import_timm()
        self.use_test_size = use_test_size
        model = _create_model(timm, _checkpoint(timm, name))
        self.name = f"{model.pretrained_cfg['architecture']}.{model.pretrained_cfg['tag']}"
        self.source = f"timm {self.name}"
        overrides = dict(input_size=None if input_size is None else _input_size(input_size), crop_pct=crop_pct,
                         interpolation=interpolation, crop_mode=crop_mode, mean=mean, std=std)
        args = {k: v for k, v in overrides.items() if v is not None}
        try:
            self.data_config = timm.data.resolve_model_data_config(model, args=args, use_test_size=use_test_size)
        except AssertionError:  # timm asserts a mean/std of one value or one per channel
            raise ParityReferenceError(f"{self.source}: mean={mean!r}, std={std!r}: expected one value or one per "
                                       "channel each") from None
        if self.data_config["crop_mode"] not in CROP_MODES:
            raise ParityReferenceError(f"{self.source}: crop_mode={self.data_config['crop_mode']!r} is not one of "
                                       f"timm's eval crop modes {CROP_MODES}")
        try:
            compose = timm.data.create_transform(**self.data_config, is_training=False)
        except Exception as exc:
            raise ParityReferenceError(f"{self.source}: timm cannot build the eval transform of {self.data_config}: "
                                       f"{type(exc).__name__}: {exc}") from exc
        self.steps = _steps(compose, self.source)
        for step in self.steps:  # what decided the resize's size, for the diagnosis to name
            if step.cfg["type"] == "Resize":
                step.cfg.update(checkpoint=self.name, crop_pct=self.data_config["crop_pct"],
                                crop_size=self.data_config["input_size"][-1])
                test_size = model.pretrained_cfg.get("test_input_size")
                if test_size and not use_test_size and input_size is None:  # the size timm does not resolve
                    test_pct = model.pretrained_cfg.get("test_crop_pct") or self.data_config["crop_pct"]
                    step.cfg.update(test_size=test_size[-1], test_crop_pct=test_pct)
        self._describe(self.data_config["mean"], self.data_config["std"])

    def identity(self) -> dict:
        return dict(super().identity(), data_config=self.data_config, use_test_size=self.use_test_size,
                    versions=versions("timm", "torch", "torchvision", "Pillow"))
