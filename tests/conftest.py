"""Shared fixtures: the bundled seed example and helpers to write parity configs for a test."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "fixtures" / "seed"
IMAGES = ROOT / "fixtures" / "images"
MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]

# A pipeline written for the GPU as users write it: nvJPEG decoding ('mixed'), resize, crop, normalize;
# {decoder_args} adds arguments to the decoder (jpeg_fancy_upsampling=True, hw_decoder_load=0.0...).
GPU_DECODE_PIPELINE = """
    jpegs = fn.external_source(name="INPUT", dtype=types.UINT8)
    images = fn.decoders.image(jpegs, device="mixed", output_type=types.RGB{decoder_args})
    images = fn.resize(images, resize_shorter=256)
    images = fn.crop(images, crop=(224, 224))
    return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW",
                                    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
"""


# The model's shipped HRNet-W30 preprocessing, as an inline reference (no config file needed).
HRNET_REFERENCE = dict(config=str(SEED / "hrnet_w30_512x384.py"))


def write_pipeline(folder: Path, body: str, name: str = "pipe") -> str:
    """Write a DALI pipeline module whose function body is ``body``; returns 'file.py:function'."""
    source = "from nvidia.dali import fn, pipeline_def, types\n\n\n" \
             "@pipeline_def(batch_size=8, num_threads=2, device_id=0)\n" \
             f"def {name}():\n" + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
    (folder / f"{name}.py").write_text(source)
    return f"{name}.py:{name}"


def seed_config_text(images, pipeline: str = "deployed", **dali) -> str:
    """A parity config for the seed: the HRNet-W30 reference, the known-answer model and the seed's
    ``deployed`` (broken) or ``corrected`` DALI pipeline, on ``images`` (a path or glob)."""
    build = ROOT / "fixtures" / "model" / "build"
    dali_args = "".join(f", {k}={v!r}" for k, v in dali.items())
    return (f"reference = dict(config='{SEED / 'hrnet_w30_512x384.py'}')\nimages = ['{images}']\n"
            f"model = dict(config='mmpretrain::resnet/resnet18_8xb32_in1k.py', checkpoint='{build / 'known_answer.pth'}', "
            f"onnx='{build / 'known_answer.onnx'}')\n"
            f"dali = dict(pipeline='{SEED / f'{pipeline}_pipeline.py'}:hrnet_w30_cls_preprocess_pipeline', "
            f"input_name='INPUT_PREPROCESS'{dali_args})\n")


def write_config(folder: Path, *, pipeline: str | None = None, serialized: str | None = None,
                 images=None, reference=None, extra: str = "", **dali) -> Path:
    """Write a parity config file into ``folder`` and return its path."""
    dali_cfg = {"input_name": "INPUT", **dali}
    if pipeline:
        dali_cfg["pipeline"] = pipeline
    if serialized:
        dali_cfg["serialized"] = serialized
    text = (f"reference = {reference or HRNET_REFERENCE!r}\n"
            f"dali = {dali_cfg!r}\n"
            f"images = {images or [str(IMAGES / '*.png')]!r}\n{extra}")
    path = folder / "parity_cfg.py"
    path.write_text(text)
    return path


def save_rgb(path: Path, rgb: np.ndarray) -> Path:
    Image.fromarray(rgb.astype(np.uint8), "RGB").save(path)
    return path


@pytest.fixture(scope="session")
def seed_report(tmp_path_factory) -> Path:
    """The seed's deployed check with its HTML report, run once for the tests that read the report (read only)."""
    from parity.cli import main

    folder = tmp_path_factory.mktemp("report")
    assert main(["check", str(SEED / "parity_deployed.py"), "--report", str(folder), "-q"]) == 1
    return folder


@pytest.fixture(scope="session", autouse=True)
def known_answer_model():
    """The model stage's fixture classifier (scripts/setup.sh builds it; built here when missing)."""
    build = ROOT / "fixtures" / "model" / "build"
    if not (build / "known_answer.onnx").is_file():
        import runpy

        runpy.run_path(str(ROOT / "fixtures" / "model" / "make_model.py"), run_name="__main__")
    if not (ROOT / "fixtures" / "triton" / "build" / "seed_repository" / "preprocess" / "1" / "model.dali").is_file():
        import runpy

        runpy.run_path(str(ROOT / "fixtures" / "triton" / "make_repository.py"), run_name="__main__")
    if not (ROOT / "fixtures" / "timm" / "build" / "vit_tiny.onnx").is_file():  # the timm reference's model
        import runpy

        runpy.run_path(str(ROOT / "fixtures" / "timm" / "make_model.py"), run_name="__main__")
    return build
