"""parity: prove that deployed DALI preprocessing computes what the MMPretrain reference computes.

Names are imported on first use, so that loading the pytest plugin (or ``import parity``) costs nothing
until a check runs.
"""

from importlib import import_module, metadata

try:
    __version__ = metadata.version("parity")
except metadata.PackageNotFoundError:  # a source checkout that was never installed
    __version__ = "0+unknown"

_EXPORTS = {
    "assert_logits_close": "parity.api", "assert_not_degenerate": "parity.api",
    "assert_preprocessing_parity": "parity.api", "assert_stage_close": "parity.api",
    "assert_triton_parity": "parity.api", "check_preprocessing_parity": "parity.api",
    "StageResult": "parity.compare.arrays", "ParityConfig": "parity.config.load", "Tolerance": "parity.config.load",
    "load_config": "parity.config.load", "Cause": "parity.diagnose.causes", "CauseKind": "parity.diagnose.causes",
    "Diagnosis": "parity.diagnose.causes", "LayoutError": "parity.errors",
    "Harness": "parity.run.harness", "ImageResult": "parity.run.harness", "ParityConfigError": "parity.errors",
    "ParityDaliError": "parity.errors", "ParityImageError": "parity.errors", "ParityReferenceError": "parity.errors",
    "ParityUsageError": "parity.errors", "ParitySnapshotError": "parity.errors", "ParityModelError": "parity.errors",
    "ParityTritonError": "parity.errors", "ParityExtraError": "parity.errors", "write_snapshot": "parity.reference.snapshot",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'parity' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_EXPORTS])
