"""The real model of the seed: HRNet-W30 from MMPretrain's shipped config (seeded random weights, nothing
downloaded), exported to ONNX as MMDeploy/torch.onnx would, then checked by parity's model stage
(reference torch network vs ONNX Runtime) on the bundled images at 512x384. Slow (about a minute, a
150 MB ONNX in build/): run by `nox -s hrnet`, not by the test suite.
"""

import sys
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "hrnet"


def main():
    BUILD.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mmpretrain

        torch.manual_seed(0)
        model = mmpretrain.get_model("hrnet-w30_3rdparty_8xb32_in1k", pretrained=False).eval()

    from parity.serving.backends import export_onnx

    torch.save({"state_dict": model.state_dict()}, BUILD / "hrnet_w30_seeded.pth")
    export_onnx(model, np.zeros((1, 3, 512, 384), np.float32), BUILD / "hrnet_w30.onnx")
    config = BUILD / "parity_hrnet.py"
    seed = ROOT / "fixtures" / "seed"
    config.write_text(
        f"reference = dict(config='{seed / 'hrnet_w30_512x384.py'}')\n"
        f"dali = dict(pipeline='{seed / 'corrected_pipeline.py'}:hrnet_w30_cls_preprocess_pipeline', "
        "input_name='INPUT_PREPROCESS')\n"
        f"images = ['{ROOT / 'fixtures' / 'images'}']\n"
        "model = dict(config='mmpretrain::hrnet/hrnet-w30_4xb32_in1k.py', checkpoint='hrnet_w30_seeded.pth', "
        "onnx='hrnet_w30.onnx')\n")
    from parity.cli import main as parity_main

    return parity_main(["check", str(config), "-q"])


if __name__ == "__main__":
    sys.exit(main())
