"""Run MMPretrain's own test pipeline and data preprocessor, keeping the output of every stage.

Nothing here re-implements a transform: each step is built from ``mmpretrain.registry.TRANSFORMS``
and the model input comes from the real ``ClsDataPreprocessor``. Stage outputs are converted to numpy
(HWC for images, CHW once ``PackInputs`` has run) so they can be compared with DALI's.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import warnings

import numpy as np

from parity.errors import ParityReferenceError
from parity.reference.protocol import Reference, RefStage, check_std, versions


def _import_mmpretrain():
    from parity.extras import require

    for module in ("torch", "mmengine", "mmcv", "mmpretrain"):
        require(module, "reference", "the live MMPretrain reference (reference.config)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mmpretrain.datasets  # noqa: F401  (registers the transforms)
        import mmpretrain.models  # noqa: F401  (registers ClsDataPreprocessor)
        from mmpretrain.registry import MODELS, TRANSFORMS
    return MODELS, TRANSFORMS


def _to_numpy(img) -> tuple[np.ndarray, str | None]:
    """Return the image as numpy plus its layout when the container says so (tensors are CHW)."""
    if isinstance(img, np.ndarray):
        return img, None
    if hasattr(img, "detach"):  # torch tensor from PackInputs / torchvision
        return img.detach().cpu().numpy(), "CHW"
    return np.asarray(img), None  # PIL image: HWC


@contextlib.contextmanager
def one_torch_thread():
    """For a block in which a pool of threads runs one image each: torch's own intra-op threads would only
    spin in OpenMP, 4.5 of the 9.5 ms of CPU a 224x224 image cost the reference on 2 cores, taken from the
    pool's other threads and from pytest-xdist's other workers. Process-wide, so restored on the way out."""
    torch = sys.modules.get("torch")
    if torch is None:  # a recorded reference: no torch runs
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ReferencePipeline(Reference):
    """MMPretrain ``test_pipeline`` + ``data_preprocessor``, run one image at a time."""

    kind = "mmpretrain"

    def __init__(self, test_pipeline: list[dict], data_preprocessor: dict | None, source: str = "config"):
        models, transforms = _import_mmpretrain()
        self.source = source
        self.pipeline_cfg = copy.deepcopy(list(test_pipeline))
        self.transforms = []
        for i, step in enumerate(self.pipeline_cfg):
            try:
                self.transforms.append(transforms.build(copy.deepcopy(step)))
            except Exception as exc:
                raise ParityReferenceError(
                    f"{source}: test_pipeline[{i}] = {step!r} cannot be built by mmpretrain: "
                    f"{type(exc).__name__}: {exc}") from exc
        if not self.pipeline_cfg or not str(self.pipeline_cfg[0].get("type", "")).endswith("LoadImageFromFile"):
            raise ParityReferenceError(
                f"{source}: test_pipeline must start with LoadImageFromFile (found "
                f"{(self.pipeline_cfg or [{}])[0].get('type')!r}): its decoded image is what both sides receive")
        dp_cfg = dict(data_preprocessor or {})
        dp_cfg.setdefault("type", "ClsDataPreprocessor")
        self.data_preprocessor_cfg = dp_cfg
        try:
            self.data_preprocessor = models.build(copy.deepcopy(dp_cfg))
            colour_only = {k: v for k, v in dp_cfg.items() if k not in ("mean", "std")}
            self._colour_only = models.build(colour_only)
        except Exception as exc:
            raise ParityReferenceError(f"{source}: data_preprocessor={dp_cfg!r} cannot be built: "
                                       f"{type(exc).__name__}: {exc}") from exc
        self.to_rgb = bool(getattr(self.data_preprocessor, "to_rgb", False))
        self.normalizes = bool(getattr(self.data_preprocessor, "_enable_normalize", False))
        self.mean = self._vector("mean")
        self.std = self._vector("std")
        check_std(f"{source}: data_preprocessor", self.std)
        names = [cfg.get("type", type(t).__name__) for cfg, t in zip(self.pipeline_cfg, self.transforms)]
        self.stage_names = names + ["to_rgb"] * (self.to_rgb and self.normalizes) + ["model_input"]

    def identity(self) -> dict:
        return dict(super().identity(), versions=versions("mmpretrain", "mmcv", "mmcv-lite", "mmengine", "torch",
                                                          "torchvision", "opencv-python", "Pillow"))

    def _vector(self, name):
        if not self.normalizes:
            return None
        return getattr(self.data_preprocessor, name).flatten().cpu().numpy().astype(np.float64)

    def run(self, path) -> list[RefStage]:
        """All stages for the image file at ``path``: load, each transform, to_rgb, model_input."""
        results = {"img_path": str(path)}
        stages: list[RefStage] = []
        channels, layout = "BGR", "HWC"
        for cfg, transform in zip(self.pipeline_cfg, self.transforms):
            name = cfg.get("type", type(transform).__name__)
            try:
                results = transform(results)
            except Exception as exc:
                raise ParityReferenceError(f"{self.source}: reference transform {name} failed on {path}: "
                                           f"{type(exc).__name__}: {exc}") from exc
            if results is None:
                raise ParityReferenceError(f"{self.source}: reference transform {name} dropped {path} "
                                           "(returned None)")
            if name.endswith("LoadImageFromFile"):
                channels = "RGB" if getattr(transform, "channel_order", "bgr") == "rgb" else "BGR"
            if name.endswith("NumpyToPIL") and getattr(transform, "to_rgb", False):
                channels = "RGB"
            if name.endswith(("PILToNumpy", "ToNumpy")) and getattr(transform, "to_bgr", False):
                channels = "BGR"
            img = results["inputs"] if "inputs" in results else results.get("img")
            array, container_layout = _to_numpy(img)
            layout = container_layout or ("HWC" if "inputs" not in results else "CHW")
            stages.append(RefStage(name, array, layout, channels, pixels=True))
        if "inputs" not in results:
            raise ParityReferenceError(f"{self.source}: test_pipeline must end with PackInputs (found "
                                       f"{self.pipeline_cfg[-1].get('type')!r}): the data preprocessor "
                                       "takes its 'inputs'")
        stages.extend(self._preprocess(results, stages[-1]))
        return stages

    def _preprocess(self, results: dict, packed: RefStage) -> list[RefStage]:
        import torch

        data = {"inputs": [results["inputs"]], "data_samples": [results.get("data_samples")]}
        out = []
        with torch.no_grad():
            if self.to_rgb and self.normalizes:
                rgb = self._colour_only(copy.copy(data), training=False)["inputs"][0].numpy()
                out.append(RefStage("to_rgb", rgb, "CHW", "RGB", pixels=True))
            final = self.data_preprocessor(copy.copy(data), training=False)["inputs"][0].numpy()
        channels = "RGB" if self.to_rgb else packed.channels
        out.append(RefStage("model_input", final, "CHW", channels, pixels=not self.normalizes))
        return out
