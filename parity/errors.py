"""Exceptions that carry a user-facing message: usage errors are the user's to fix, never a traceback."""


class ParityUsageError(Exception):
    """A config key, file or argument is wrong; the message names it and what was expected."""


class ParityConfigError(ParityUsageError):
    """The parity config file is missing, unreadable, or has an unknown, missing or ill-typed key."""


class ParityImageError(ParityUsageError):
    """An image is missing, unreadable, or in a mode parity does not compare (grayscale, RGBA, 16-bit)."""


class ParityDaliError(ParityUsageError):
    """The DALI pipeline cannot be loaded, rewritten for the CPU, built or run."""


class ParityReferenceError(ParityUsageError):
    """The reference (an MMPretrain pipeline, a timm checkpoint, torchvision weights) cannot be built or run."""


class ParitySnapshotError(ParityUsageError):
    """A snapshot is missing, corrupt, stale (images changed) or of another reference than the config's."""


class ParityModelError(ParityUsageError):
    """A model, checkpoint, ONNX file or engine cannot be loaded or run."""


class ParityTritonError(ParityUsageError):
    """The Triton server, repository, model or request is not as configured."""


class ParityExtraError(ParityUsageError):
    """A feature was asked for whose optional dependencies are not installed."""


class LayoutError(ParityUsageError, ValueError):
    """``assert_stage_close`` cannot tell which axis holds the channels: pass ``layout=``."""


def check_argument(condition: bool, message: str, *args) -> None:
    """Raise :class:`ParityUsageError` with ``message.format(*args)`` unless ``condition`` holds."""
    if not condition:
        raise ParityUsageError(message.format(*args))


class ParityPipelineWarning(UserWarning):
    """The model config holds pipelines that differ; parity reads the one MMEngine's runner builds."""
