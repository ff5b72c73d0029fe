"""The reference side: MMPretrain run live or a recorded snapshot of it, timm's or torchvision's eval
transform, behind one :class:`~parity.reference.protocol.Reference` protocol."""

from __future__ import annotations


def open_reference(config):
    """The reference a parity config names: its snapshot when one is given, else the live library (a timm
    checkpoint, a torchvision preset or an MMPretrain config)."""
    if config.snapshot is not None:
        from parity.reference.snapshot import Snapshot

        return Snapshot(config.snapshot, config.images, config.base_dir)
    if config.reference.timm:
        from parity.reference.timm import TimmReference

        return TimmReference(config.reference.timm, **config.reference.eval_transform_args())
    if config.reference.torchvision:
        from parity.reference.torchvision import TorchvisionReference

        return TorchvisionReference(config.reference.torchvision, **config.reference.eval_transform_args())
    from parity.reference.mmpretrain import ReferencePipeline

    return ReferencePipeline(config.test_pipeline, config.data_preprocessor, source=config.reference_source)
