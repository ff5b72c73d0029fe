"""Where a GPU exists, the CPU verdict is checked on it. The comparison runs here on what the two devices
compute differently, built from first principles: chroma upsampled without interpolation (nvJPEG's default)
against libjpeg's interpolating upsampling, and .5 ties rounded half to even against half up."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from parity.dali.runner import open_pipeline
from parity.gpu.compare import NO_GPU, compare_devices, run_on_both
from parity.gpu.margins import stage_margins

from .conftest import IMAGES, MEAN, STD, write_pipeline

PIPELINE = """
    jpegs = fn.external_source(name="INPUT", dtype=types.UINT8)
    images = fn.decoders.image(jpegs, device="mixed", output_type=types.RGB{decoder_args})
    images = fn.resize(images, size=(256, 256))
    images = fn.crop(images, crop=(224, 224))
    return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="HWC",
                                    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
"""


# ---- what each device computes, in numpy -----------------------------------------------------------

def _ycbcr(rgb):
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return (0.299 * r + 0.587 * g + 0.114 * b, -0.168736 * r - 0.331264 * g + 0.5 * b + 128,
            0.5 * r - 0.418688 * g - 0.081312 * b + 128)


def _rgb(y, cb, cr):
    rgb = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                    y + 1.772 * (cb - 128)], -1)
    return np.clip(np.floor(rgb + 0.5), 0, 255).astype(np.uint8)


def _nearest(c):  # nvJPEG without NVJPEG_FLAGS_UPSAMPLING_WITH_INTERPOLATION: each chroma sample repeated
    return c.repeat(2, 0).repeat(2, 1)


def _interpolated(c):  # libjpeg's fancy upsampling: 3/4 of the nearer sample, 1/4 of the next one
    for axis in (0, 1):
        padded = np.concatenate([np.take(c, [0], axis), c, np.take(c, [-1], axis)], axis)
        n = c.shape[axis]
        before = 0.75 * c + 0.25 * np.take(padded, range(0, n), axis)
        after = 0.75 * c + 0.25 * np.take(padded, range(2, n + 2), axis)
        c = np.stack([before, after], axis + 1).reshape(*[s * 2 if i == axis else s for i, s in enumerate(c.shape)])
    return c


def _decoded_4_2_0(name: str):
    """A photo through 4:2:0 chroma subsampling, upsampled as the CPU decoder (and cv2) and as nvJPEG do."""
    y, cb, cr = _ycbcr(np.asarray(Image.open(IMAGES / name).convert("RGB")))
    cb, cr = (np.round(c.reshape(c.shape[0] // 2, 2, c.shape[1] // 2, 2).mean((1, 3))) for c in (cb, cr))
    return _rgb(y, _interpolated(cb), _interpolated(cr)), _rgb(y, _nearest(cb), _nearest(cr))


def _halve(image, rounding):
    """A 2x linear downscale: each output the mean of 2x2 inputs, so .5 ties are common."""
    h, w = image.shape[0] // 2, image.shape[1] // 2
    mean = image[:2 * h, :2 * w].reshape(h, 2, w, 2, 3).astype(np.float64).mean((1, 3))
    return rounding(mean).astype(np.uint8)


def _half_up(x):  # the CPU resampler: add 0.5 and truncate
    return np.floor(x + 0.5)


def _device_stages(decoded, rounding, crop_row=16):
    resized = _halve(decoded, rounding)
    cropped = resized[crop_row:crop_row + 224, 16:240]
    normalized = ((cropped - np.float32(MEAN)) / np.float32(STD)).astype(np.float32)
    return [decoded, resized, cropped, normalized]


# ---- the pipeline whose stages they are -----------------------------------------------------------

def _pipeline(folder, decoder_args=""):
    spec = write_pipeline(folder, PIPELINE.format(decoder_args=decoder_args))
    runner = open_pipeline(pipeline=spec, serialized=None, base_dir=folder, input_name="INPUT", device="cpu",
                           batch_size=2, num_threads=1)
    names = [s.name for s in runner.stages if s.op != "ExternalSource"]
    return runner, names, stage_margins(runner.stages, ran_on="cpu")


def _runs(names, cpu_stages, gpu_stages):
    return dict(zip(names, gpu_stages)), dict(zip(names, cpu_stages))


def test_chroma_edges_and_rounding_ties_stay_within_the_margins(tmp_path):
    runner, names, margins = _pipeline(tmp_path)
    cpu_decoded, gpu_decoded = _decoded_4_2_0("astronaut.png")
    gpu, cpu = _runs(names, _device_stages(cpu_decoded, _half_up), _device_stages(gpu_decoded, np.rint))
    result = compare_devices(gpu, cpu, margins, image="astronaut.png", where={s.name: s.where for s in runner.stages})

    assert result.status == "passed" and result
    decode, resize, crop, model_input = result.differences
    assert 4 < decode.max_abs <= 44 and decode.mean_abs < 4  # chroma edges: beyond fancy's bound, within nvJPEG's
    assert decode.line().startswith('pipe.py:7: images = fn.decoders.image(jpegs, device="mixed"')
    assert "within the margin atol 44 (decode (mixed): up to 44 levels" in decode.line()
    assert resize.max_abs <= 45 and "atol 45" in resize.line()  # the resize's ties add to the decoder's edges
    assert model_input.max_abs <= model_input.margins.bound.atol == pytest.approx(45 / min(STD) + 1e-6, rel=1e-6)
    record = json.loads(json.dumps(result.record()))
    assert record["differences"][0]["margins"]["margins"][0]["key"] == "decode"


def test_rounding_ties_alone_are_one_level(tmp_path):
    _, names, margins = _pipeline(tmp_path, ", jpeg_fancy_upsampling=True")
    cpu_decoded, _ = _decoded_4_2_0("chelsea.png")
    gpu, cpu = _runs(names, _device_stages(cpu_decoded, _half_up), _device_stages(cpu_decoded, np.rint))
    result = compare_devices(gpu, cpu, margins, image="chelsea.png")
    decode, resize, crop, _ = result.differences
    assert decode.max_abs == 0 and resize.max_abs == 1 and crop.max_abs == 1
    assert result.status == "passed"


def test_nvjpeg_without_interpolation_is_beyond_the_fancy_upsampling_margin(tmp_path):
    """The user set jpeg_fancy_upsampling=True, but the GPU still decodes without interpolation (an nvJPEG
    older than 12.0.1 ignores the flag): the decode stage is beyond its 4-level margin."""
    _, names, margins = _pipeline(tmp_path, ", jpeg_fancy_upsampling=True")
    cpu_decoded, gpu_decoded = _decoded_4_2_0("astronaut.png")
    gpu, cpu = _runs(names, _device_stages(cpu_decoded, _half_up), _device_stages(gpu_decoded, np.rint))
    result = compare_devices(gpu, cpu, margins, image="astronaut.png")
    assert result.status == "failed" and not result
    decode = result.differences[0]
    assert decode.status == "failed" and decode.beyond > 0 and decode.margins.bound.atol == 4
    assert "elements beyond the margin atol 4" in decode.line()
    assert result.headline == "DALI on the GPU differs from DALI on the CPU beyond the published margins on image " \
                              "'astronaut.png'!"
    assert "differs from DALI on the CPU beyond the published margins" in result.message()


def test_a_crop_one_row_off_on_the_gpu_fails_at_the_crop(tmp_path):
    """Crops are exact on both devices: a difference there is a real one, whatever the rounding upstream."""
    _, names, margins = _pipeline(tmp_path, ", jpeg_fancy_upsampling=True")
    cpu_decoded, _ = _decoded_4_2_0("coffee.png")
    gpu, cpu = _runs(names, _device_stages(cpu_decoded, _half_up), _device_stages(cpu_decoded, _half_up, crop_row=17))
    decode, resize, crop, model_input = compare_devices(gpu, cpu, margins, image="coffee.png").differences
    assert (decode.status, resize.status, crop.status, model_input.status) == ("passed", "passed", "failed", "failed")


def test_outputs_of_different_shapes_are_named(tmp_path):
    _, names, margins = _pipeline(tmp_path)
    cpu_decoded, _ = _decoded_4_2_0("astronaut.png")
    stages = _device_stages(cpu_decoded, _half_up)
    gpu, cpu = _runs(names, stages, [*stages[:2], stages[2][:-1], stages[3]])
    crop = compare_devices(gpu, cpu, margins, image="astronaut.png").differences[2]
    assert crop.status == "failed" and crop.problem == "the GPU output has shape (223, 224, 3), the CPU output " \
                                                       "(224, 224, 3)"


def test_an_operator_without_a_published_margin_is_reported_not_judged(tmp_path):
    spec = write_pipeline(tmp_path, """
        images = fn.external_source(name="INPUT", device="gpu")
        return fn.hsv(images, saturation=1.2)
    """)
    runner = open_pipeline(pipeline=spec, serialized=None, base_dir=tmp_path, input_name="INPUT", device="cpu",
                           batch_size=1, num_threads=1)
    image = np.asarray(Image.open(IMAGES / "coffee.png").convert("RGB"))
    [out] = runner.run([image])
    shifted = {k: np.clip(v.astype(int) + 1, 0, 255) for k, v in out.items()}
    result = compare_devices(shifted, out, stage_margins(runner.stages, ran_on="cpu"), image="coffee.png")
    assert result.status == "passed"
    [hsv] = [d for d in result.differences if d.stage == runner.outputs[0]]
    assert hsv.status == "unbounded" and "reported against the margin no bound" in hsv.line()


def test_without_a_gpu_the_device_run_skips_with_its_reason(tmp_path):
    from parity.dali.runner import gpu_available

    if gpu_available():
        pytest.skip("a GPU is present: the comparison runs")
    spec = write_pipeline(tmp_path, PIPELINE.format(decoder_args=""))
    [result] = run_on_both([], [], pipeline=spec, serialized=None, base_dir=tmp_path, input_name="INPUT",
                           batch_size=2, num_threads=1)
    assert result.status == "skipped" and result.skip_reason == NO_GPU and result
    assert result.headline == f"GPU-vs-CPU comparison of 'all images' was not run: {NO_GPU}"


@pytest.mark.gpu
def test_on_a_gpu_the_seed_pipeline_agrees_within_its_margins():
    from .conftest import SEED

    images = [np.asarray(Image.open(IMAGES / n).convert("RGB"))[..., ::-1].copy() for n in ("astronaut.png", "coffee.png")]
    results = run_on_both(images, ["astronaut.png", "coffee.png"], pipeline="corrected_pipeline.py:"
                          "hrnet_w30_cls_preprocess_pipeline", serialized=None, base_dir=SEED,
                          input_name="INPUT_PREPROCESS", batch_size=2, num_threads=1)
    assert [r.status for r in results] == ["passed", "passed"]
