"""What the harness needs of a reference, whichever library computes it: its stages in order, one image
run through them, its normalization, and an identity that results and snapshots record.

:class:`~parity.reference.mmpretrain.ReferencePipeline` (MMPretrain run live),
:class:`~parity.reference.snapshot.Snapshot` (a recording of it),
:class:`~parity.reference.timm.TimmReference` and :class:`~parity.reference.torchvision.TorchvisionReference`
(those libraries' eval transforms) implement it; :func:`parity.reference.open_reference` chooses one from the
config: the harness, the comparison, the diagnosis and every output stay as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_GEOMETRY = re.compile(r"Resize|Crop|Pad|Scale")  # transforms that may change the image size


@dataclass
class RefStage:
    """One captured point of the reference pipeline."""

    name: str  # transform type ('ResizeEdge'), or 'to_rgb' / 'model_input' for the data preprocessor
    array: np.ndarray
    layout: str  # 'HWC' or 'CHW'
    channels: str  # 'BGR' or 'RGB'
    pixels: bool  # True while values are image intensities; False once normalized
    logits: np.ndarray | None = None  # the reference network's answer to this model input, when recorded


def versions(*packages: str) -> dict[str, str]:
    """Installed versions of the packages that decide the reference's numbers (those installed)."""
    from importlib import metadata

    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def check_std(source: str, std) -> None:
    """Refuse a normalization whose std has a zero (or a NaN): the reference's model input would be inf."""
    from parity.errors import ParityReferenceError

    if std is not None and (not np.all(np.isfinite(std)) or np.any(np.asarray(std) == 0)):
        raise ParityReferenceError(f"{source}: std={[float(v) for v in std]}: a std of 0 (or NaN) divides by zero, "
                                   "making the model input inf; give the std the model was trained with")


def is_geometry_name(name: str) -> bool:
    """Whether a transform may change the image size (resize, crop, pad): the stages paired with DALI's."""
    return bool(_GEOMETRY.search(name))


class Reference:
    """The reference side of a run. Subclasses set the attributes and implement :meth:`run`."""

    kind: str  # 'mmpretrain', 'timm', 'torchvision': the library whose semantics the stages follow
    source: str  # where it was read from, as results name it (a config file, a snapshot folder)
    pipeline_cfg: list[dict]  # the steps, as the library's config gives them (for the diagnosis's advice)
    data_preprocessor_cfg: dict  # the normalization step's own config
    to_rgb: bool  # the model input is RGB made from a BGR decode
    normalizes: bool
    mean: np.ndarray | None  # per channel of the model input, in 0..255 units (None: not normalized)
    std: np.ndarray | None
    stage_names: list[str]  # one per stage :meth:`run` returns, the last being 'model_input'

    def run(self, path: Path) -> list[RefStage]:
        """Every stage for the image file at ``path``, the decoded image first and the model input last."""
        raise NotImplementedError

    @property
    def geometry_stages(self) -> list[bool]:
        """Which stages may change the image size: the ones paired with DALI's geometry operators."""
        return [is_geometry_name(name) for name in self.stage_names]

    def identity(self) -> dict:
        """What results and snapshots record to say which reference this is."""
        return dict(kind=self.kind, source=self.source, test_pipeline=self.pipeline_cfg,
                    data_preprocessor=self.data_preprocessor_cfg)
