"""Optional dependencies: parity's core needs only numpy, Pillow and pytest; each stack it drives comes
with an extra (pyproject.toml). A missing one is a usage error naming the extra, never an ImportError."""

from __future__ import annotations

import importlib

from parity.errors import ParityExtraError

# extra -> what it brings, as the message says it
EXTRAS = {
    "reference": "the MMPretrain reference (torch, torchvision, mmpretrain, mmcv-lite, mmengine)",
    "dali": "the DALI pipeline runner (nvidia-dali-cuda120, protobuf)",
    "onnx": "the deployed model on ONNX Runtime",
    "triton": "the Triton client and the embedded tritonserver (tritonclient[grpc], nvidia-pytriton)",
    "gpu": "the TensorRT backend (tensorrt, pycuda)",
    "timm": "the timm reference (timm, huggingface_hub, safetensors)",
    "report": "the HTML report's pictures (matplotlib)",
}


def require(module: str, extra: str, purpose: str, alternative: str = ""):
    """Import ``module``, or raise :class:`ParityExtraError` naming the extra that installs it (and the
    ``alternative`` that needs none, when there is one)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ParityExtraError(
            f"{purpose} needs {EXTRAS[extra]}, and {exc.name or module!r} cannot be imported here: "
            f"pip install 'parity[{extra}]'{alternative}") from None
