"""Optional dependencies: parity's core needs only numpy, Pillow and pytest; each stack it drives comes
with an extra (pyproject.toml). A missing one is a usage error naming the extra, never an ImportError."""

from __future__ import annotations

import importlib
import importlib.util

from parity.errors import ParityExtraError

# extra -> what it brings, as the message says it
EXTRAS = {
    "reference": "the MMPretrain reference (torch, torchvision, mmpretrain, mmcv-lite, mmengine)",
    "dali": "the DALI pipeline runner (nvidia-dali-cuda120, protobuf)",
    "onnx": "the deployed model on ONNX Runtime",
    "triton": "the Triton client (tritonclient[grpc])",
    "triton-server": "the embedded tritonserver (nvidia-pytriton, with numpy<2: its Python-backend stub predates numpy 2)",
    "gpu": "the TensorRT backend (tensorrt, pycuda)",
    "timm": "the timm reference (timm, huggingface_hub, safetensors)",
    "report": "the HTML report's pictures (matplotlib)",
}


def require(module: str, extra: str, purpose: str, alternative: str = ""):
    """Import ``module``, or raise :class:`ParityExtraError` naming the extra that installs it (and the
    ``alternative`` that needs none, when there is one)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.split(".")[0] != exc.name.split(".")[0] and _installed(module.split(".")[0]):
            raise _broken(module, purpose, exc) from None  # installed: one of its own imports is missing
        raise ParityExtraError(
            f"{purpose} needs {EXTRAS[extra]}, and {exc.name or module!r} cannot be imported here: "
            f"pip install 'parity[{extra}]'{alternative}") from None
    except (ImportError, OSError, MemoryError) as exc:  # installed, and failing as it loads
        raise _broken(module, purpose, exc) from None


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def _broken(module: str, purpose: str, exc: BaseException) -> ParityExtraError:
    """An installed package that fails to import (a missing shared library, a memory limit, a version clash):
    said as it is, not as a missing extra."""
    reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return ParityExtraError(f"{purpose}: {module!r} is installed but fails to import: {type(exc).__name__}: "
                            f"{reason} (a memory limit such as `ulimit -v`, a missing system library, or "
                            "packages of clashing versions)")
