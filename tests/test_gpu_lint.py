"""GPU-only risks, named before any image: pipelines as a new user writes them for the GPU, with and without
the arguments that make the GPU compute what parity checks on the CPU, as Python and as a Triton model.dali."""

from __future__ import annotations

import json

from parity.dali.runner import open_pipeline
from parity.gpu.lint import Rule, lint, reference_decoder

from .conftest import GPU_DECODE_PIPELINE, ROOT, write_pipeline

REPOS = ROOT / "fixtures" / "triton" / "build"



def _open(folder, body: str):
    spec = write_pipeline(folder, body)
    return open_pipeline(pipeline=spec, serialized=None, base_dir=folder, input_name="INPUT", device="cpu",
                         batch_size=2, num_threads=1)


def _lint(folder, body: str, **kwargs):
    runner = _open(folder, body)
    return lint(runner.stages, source="pipe.py:pipe", outputs=runner.outputs, **kwargs)


def test_a_mixed_decoder_with_its_defaults_is_named_with_the_arguments_to_set(tmp_path):
    result = _lint(tmp_path, GPU_DECODE_PIPELINE.format(decoder_args=""))
    assert result.status == "warned" and result  # a warning does not fail the run
    upsampling, hardware = result.risks
    assert (upsampling.rule, upsampling.argument) == (Rule.DECODER_UPSAMPLING, "jpeg_fancy_upsampling=True")
    assert upsampling.where.startswith('pipe.py:7: images = fn.decoders.image(jpegs, device="mixed"')
    assert "the reference decodes with cv2" in upsampling.detail and "up to 44 levels" in upsampling.detail
    assert (hardware.rule, hardware.argument) == (Rule.HW_DECODER, "hw_decoder_load=0")
    assert "by DALI's default, 65% of the images go to the hardware JPEG decoder" in hardware.detail
    assert "change per image within a batch" in hardware.detail
    message = result.message()
    assert message.startswith("The DALI pipeline pipe.py:pipe may compute differently on the GPU than on the CPU")
    assert "set jpeg_fancy_upsampling=True" in message and "set hw_decoder_load=0" in message
    assert "--strict-gpu" in message
    assert result.headline == "The DALI pipeline pipe.py:pipe may compute differently on the GPU than on the CPU parity checked!"
    assert result  # a warning: the run passes unless --strict-gpu


def test_the_decoder_set_as_advised_passes(tmp_path):
    result = _lint(tmp_path, GPU_DECODE_PIPELINE.format(decoder_args=", jpeg_fancy_upsampling=True, hw_decoder_load=0"))
    assert result.status == "passed" and not result.risks
    assert result.headline == "The DALI pipeline pipe.py:pipe computes on the GPU what parity checks on the CPU, within the " \
                              "published margins."


def test_strict_gpu_fails_the_item(tmp_path):
    result = _lint(tmp_path, GPU_DECODE_PIPELINE.format(decoder_args=""), strict=True)
    assert result.status == "failed" and not result
    assert "--strict-gpu" not in result.message()


def test_a_decoder_on_the_cpu_carries_no_gpu_risk(tmp_path):
    result = _lint(tmp_path, GPU_DECODE_PIPELINE.format(decoder_args="").replace('device="mixed"', 'device="cpu"'))
    assert result.status == "passed"


def test_the_upsampling_risk_follows_the_reference_decoder(tmp_path):
    body = GPU_DECODE_PIPELINE.format(decoder_args=", hw_decoder_load=0")
    pillow = reference_decoder([dict(type="LoadImageFromFile", imdecode_backend="pillow"), dict(type="PackInputs")])
    assert pillow == "pillow"
    assert [r.rule for r in _lint(tmp_path, body, reference_decoder=pillow).risks] == [Rule.DECODER_UPSAMPLING]
    assert reference_decoder([dict(type="LoadImageFromFile"), dict(type="PackInputs")]) == "cv2"  # MMCV's default
    assert _lint(tmp_path, body, reference_decoder="tifffile").status == "passed"  # not a libjpeg decoder


def test_a_float_to_integer_cast_after_a_float_resize(tmp_path):
    body = """
        images = fn.external_source(name="INPUT", device="gpu")
        images = fn.resize(images, size=(224, 224), dtype=types.FLOAT)
        return fn.cast(images, dtype=types.UINT8)
    """
    [risk] = _lint(tmp_path, body).risks
    assert (risk.rule, risk.operator) == (Rule.ROUNDING, "cast")
    assert risk.where == "pipe.py:8: return fn.cast(images, dtype=types.UINT8)"
    assert risk.argument == "dtype=types.FLOAT (keep float to the model)"
    assert "the CPU rounds .5 away from zero, the GPU half to even, ±1 level on ties" in risk.detail


def test_a_cast_to_float_is_no_risk(tmp_path):
    body = """
        images = fn.external_source(name="INPUT", device="gpu")
        images = fn.resize(images, size=(224, 224))
        return fn.cast(images, dtype=types.FLOAT)
    """
    assert _lint(tmp_path, body).status == "passed"


def test_an_integer_output_normalization_after_a_resize(tmp_path):
    body = """
        images = fn.external_source(name="INPUT", device="gpu")
        images = fn.resize(images, size=(224, 224))
        return fn.crop_mirror_normalize(images, dtype=types.UINT8, mean=[10.5, 10.5, 10.5], std=[2.0, 2.0, 2.0])
    """
    [risk] = _lint(tmp_path, body).risks
    assert (risk.rule, risk.operator, risk.argument) == (Rule.ROUNDING, "crop_mirror_normalize", "dtype=types.FLOAT")
    assert risk.where.startswith("pipe.py:8: return fn.crop_mirror_normalize(")


def test_a_colour_conversion_that_is_not_a_channel_swap(tmp_path):
    body = """
        images = fn.external_source(name="INPUT", device="gpu")
        images = fn.color_space_conversion(images, image_type=types.BGR, output_type=types.RGB)
        return fn.color_space_conversion(images, image_type=types.RGB, output_type=types.YCbCr)
    """
    [risk] = _lint(tmp_path, body).risks  # the BGR->RGB swap is exact on both
    assert (risk.rule, risk.operator) == (Rule.DIFFERENT_ALGORITHM, "color_space_conversion")
    assert "output_type=types.YCbCr" in risk.where
    assert "OpenCV cvtColor" in risk.detail and "CUDA kernel" in risk.detail and risk.argument.startswith("device='cpu'")
    assert json.loads(json.dumps(risk.record()))["margin"]["key"] == "csc"


def test_the_served_model_dali_is_linted_like_the_python_pipeline(tmp_path):
    """A model.dali copied out of a Triton repository: the corrected seed's passes, one serialized from a
    mixed-decoder pipeline names its source line."""
    from parity.dali import proto as dali_proto
    from parity.dali.runner import load_function, rewrite, serialize_function

    served = REPOS / "corrected_repository" / "preprocess" / "1" / "model.dali"
    _, stages, outputs = rewrite(served.read_bytes(), to_cpu=True)
    assert lint(stages, source=str(served), outputs=outputs).status == "passed"

    spec = write_pipeline(tmp_path, GPU_DECODE_PIPELINE.format(decoder_args=""))
    data = serialize_function(load_function(spec, tmp_path), spec, batch_size=8, num_threads=1)
    pipe = dali_proto.PipelineDef()
    pipe.ParseFromString(data)
    pipe.device_id = 0  # as on the GPU box that wrote it
    model_dali = tmp_path / "repo" / "preprocess" / "1" / "model.dali"
    model_dali.parent.mkdir(parents=True)
    model_dali.write_bytes(pipe.SerializeToString())
    runner = open_pipeline(pipeline=None, serialized=str(model_dali), base_dir=tmp_path, input_name="INPUT",
                           device="cpu", batch_size=2, num_threads=1)
    result = lint(runner.stages, source=str(model_dali), outputs=runner.outputs)
    assert [r.rule for r in result.risks] == [Rule.DECODER_UPSAMPLING, Rule.HW_DECODER]
    assert all(r.where.startswith("pipe.py:7: images = fn.decoders.image(") for r in result.risks)
    assert result.message().startswith(f"The DALI pipeline {model_dali} may compute differently")
