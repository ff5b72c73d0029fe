"""The reference side: MMPretrain run live, or a recorded snapshot of it, behind one
:class:`~parity.reference.protocol.Reference` protocol."""

from __future__ import annotations


def open_reference(config):
    """The reference a parity config names: its snapshot when one is given, else the live library."""
    if config.snapshot is not None:
        from parity.reference.snapshot import Snapshot

        return Snapshot(config.snapshot, config.images, config.base_dir)
    from parity.reference.mmpretrain import ReferencePipeline

    return ReferencePipeline(config.test_pipeline, config.data_preprocessor, source=config.reference_source)
