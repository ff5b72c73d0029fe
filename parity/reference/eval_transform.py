"""What the timm and torchvision references share: a PIL decode to RGB, as both libraries' loaders do,
then the library's own eval transform objects run one at a time, each output kept as a stage.

The stages are the decoded image (HWC uint8 RGB), every geometry step (HWC uint8: the names contain
Resize/Crop/Pad, so parity pairs them with DALI's resize and crop operators) and 'model_input' (CHW
float32, normalized). ToTensor and Normalize make one stage: ToTensor's 0..1 values have no DALI
counterpart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity.errors import ParityImageError, ParityReferenceError
from parity.reference.protocol import Reference, RefStage, check_std

# The decode, in MMPretrain's terms (the stage name and `imdecode_backend`), so that outputs and the
# GPU lint read it alike: Pillow's libjpeg, converted to RGB as timm's ImageDataset and torchvision's
# pil_loader do. EXIF orientation is not applied by either.
LOAD_STEP = dict(type="LoadImageFromFile", imdecode_backend="pillow", loader="PIL.Image.open(path).convert('RGB')")


@dataclass(frozen=True)
class EvalStep:
    """One step of the eval transform: the library's description of it and the call that applies it."""

    cfg: dict  # 'type' (the transform's class name, which is the stage name), then the library's own arguments
    apply: Callable  # PIL image -> PIL image; for the last step, PIL image -> normalized CHW tensor


def interpolation_name(mode) -> str:
    """'bicubic' for torchvision's InterpolationMode.BICUBIC (the string timm's configs use)."""
    return str(getattr(mode, "value", mode))


def float32_values(values) -> list[float]:
    """A float32 tensor's values as they were written (0.485, not 0.48500001430511475)."""
    return [float(f"{v:.7g}") for v in values.tolist()]


def decode(path: Path):
    """The image file as the libraries' loaders give it to their transforms: a PIL RGB image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ParityImageError(f"{path}: not a readable image ({exc})") from None


class EvalTransformReference(Reference):
    """A reference whose steps are a library's eval transform; subclasses build :attr:`steps`."""

    to_rgb = False
    normalizes = True
    steps: list[EvalStep]  # the geometry steps, then the step that makes the model input

    def _describe(self, mean, std) -> None:
        """Set the protocol's attributes from :attr:`steps` and the normalization (in 0..1 units)."""
        library = {"library": self.kind}
        self.pipeline_cfg = [{**LOAD_STEP, **library}] + [{**s.cfg, **library} for s in self.steps]
        self.data_preprocessor_cfg = self.pipeline_cfg[-1]
        self.mean = np.asarray(mean, np.float64) * 255.0
        self.std = np.asarray(std, np.float64) * 255.0
        check_std(self.source, self.std)
        self.stage_names = [LOAD_STEP["type"]] + [s.cfg["type"] for s in self.steps[:-1]] + ["model_input"]

    def run(self, path: Path) -> list[RefStage]:
        """Every stage for the image file at ``path``: decoded, each geometry step, model input."""
        import torch

        image = decode(Path(path))
        stages = [RefStage(self.stage_names[0], np.array(image), "HWC", "RGB", pixels=True)]
        with torch.no_grad():
            for step in self.steps[:-1]:
                image = self._apply(step, image, path)
                stages.append(RefStage(step.cfg["type"], np.array(image), "HWC", "RGB", pixels=True))
            model_input = self._apply(self.steps[-1], image, path).numpy()
        stages.append(RefStage("model_input", model_input, "CHW", "RGB", pixels=False))
        return stages

    def _apply(self, step: EvalStep, image, path):
        try:
            return step.apply(image)
        except Exception as exc:
            raise ParityReferenceError(f"{self.source}: {step.cfg['type']} failed on {path}: "
                                       f"{type(exc).__name__}: {exc}") from exc
