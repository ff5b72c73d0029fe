"""Repository-wide test setup: tests marked ``gpu`` skip, with the reason, where DALI sees no GPU."""

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU visible to DALI (skipped otherwise)")


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    from parity.dali.runner import gpu_available

    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: DALI sees none on this machine (CPU path tested instead)")
    for item in gpu_items:
        item.add_marker(skip)
