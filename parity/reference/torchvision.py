"""A torchvision weights' own eval preset as the reference (e.g. ResNet50_Weights.IMAGENET1K_V2).

``weights.transforms()`` is one opaque ``ImageClassification`` module; its ``forward`` is resize, center
crop, to tensor, normalize. :class:`TorchvisionReference` calls those same functional steps with the
preset's own attributes, so each output can be kept; tests/test_reference_timm.py proves the result equals
``preset(image)`` exactly.
"""

from __future__ import annotations

import difflib

from parity.errors import ParityReferenceError
from parity.reference.eval_transform import EvalStep, EvalTransformReference, interpolation_name
from parity.reference.protocol import versions


def _import_torchvision():
    from parity.extras import require

    require("torch", "reference", "the torchvision reference")
    return require("torchvision.models", "reference", "the torchvision reference")


def _weights(models, name: str):
    """The weights enum member called ``name`` ('ResNet50_Weights.IMAGENET1K_V2', or '....DEFAULT')."""
    try:
        return models.get_weight(name)
    except (ValueError, KeyError):
        def named(weights):
            return [f"{type(w).__name__}.{w.name}" for w in weights]

        if name.lower() in models.list_models():  # a model's name: its weights are what was meant
            close = named(models.get_model_weights(name.lower()))
        else:
            known = [n for m in models.list_models() for n in named(models.get_model_weights(m))]
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"; the closest are {', '.join(map(repr, close))}" if close else ""
        raise ParityReferenceError(f"torchvision has no weights {name!r} (expected 'Enum.MEMBER', e.g. "
                                   f"'ResNet50_Weights.IMAGENET1K_V2'){hint}") from None


class TorchvisionReference(EvalTransformReference):
    """The ``ImageClassification`` preset of torchvision weights ``weights``, with the preset's own
    arguments (crop_size, resize_size, interpolation, mean, std) overridable."""

    kind = "torchvision"

    def __init__(self, weights: str, *, crop_size: int | None = None, resize_size: int | None = None,
                 interpolation: str | None = None, mean=None, std=None):
        models = _import_torchvision()
        import torch
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        member = _weights(models, weights)
        self.weights = f"{type(member).__name__}.{member.name}"
        self.source = f"torchvision {self.weights}"
        preset = member.transforms()
        if type(preset).__name__ != "ImageClassification":
            raise ParityReferenceError(f"{self.source}: its preset is {preset!r}, which parity cannot pair with "
                                       "DALI's operators; it pairs ImageClassification's resize and center crop")
        modes = [m.value for m in InterpolationMode]
        if interpolation is not None and interpolation not in modes:
            raise ParityReferenceError(f"{self.source}: interpolation={interpolation!r}: expected one of {modes}")
        overrides = dict(crop_size=crop_size, resize_size=resize_size, mean=mean, std=std,
                         interpolation=None if interpolation is None else InterpolationMode(interpolation))
        preset = member.transforms(**{k: v for k, v in overrides.items() if v is not None})
        self.preset = preset
        self.steps = [
            EvalStep(dict(type="Resize", size=list(preset.resize_size),
                          interpolation=interpolation_name(preset.interpolation), antialias=preset.antialias,
                          backend="pillow"),
                     lambda image: F.resize(image, preset.resize_size, interpolation=preset.interpolation,
                                            antialias=preset.antialias)),
            EvalStep(dict(type="CenterCrop", size=list(preset.crop_size)),
                     lambda image: F.center_crop(image, preset.crop_size)),
            EvalStep(dict(type="Normalize", to_tensor="pil_to_tensor+convert_image_dtype", mean=list(preset.mean),
                          std=list(preset.std)),
                     lambda image: F.normalize(F.convert_image_dtype(F.pil_to_tensor(image), torch.float),
                                               mean=preset.mean, std=preset.std)),
        ]
        self._describe(preset.mean, preset.std)

    def identity(self) -> dict:
        preset = self.preset
        return dict(super().identity(), weights=self.weights,
                    preset=dict(type=type(preset).__name__, crop_size=list(preset.crop_size),
                                resize_size=list(preset.resize_size),
                                interpolation=interpolation_name(preset.interpolation), antialias=preset.antialias,
                                mean=list(preset.mean), std=list(preset.std)),
                    versions=versions("torch", "torchvision", "Pillow"))
