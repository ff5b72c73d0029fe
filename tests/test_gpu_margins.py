"""What a CPU verdict means on the GPU: a pipeline written for the GPU runs on rewritten CPU operators, and
every stage states the published margin of the GPU operators on its path, with its source."""

from __future__ import annotations

import json

import numpy as np
import pytest

from parity.config.load import config_from_dict
from parity.dali.runner import open_pipeline
from parity.errors import ParityConfigError
from parity.gpu.margins import (
    MARGINS,
    TRT_TOLERANCES,
    Evidence,
    TrtPrecision,
    Unit,
    cpu_stand_in,
    margins_table,
    onnxruntime_stand_in,
    stage_margins,
    trt_table,
    trt_tolerance,
)

from .conftest import GPU_DECODE_PIPELINE, IMAGES, ROOT, SEED, STD, write_pipeline


def _stages(tmp_path, body: str, device: str = "cpu"):
    spec = write_pipeline(tmp_path, body)
    runner = open_pipeline(pipeline=spec, serialized=None, base_dir=tmp_path, input_name="INPUT", device=device,
                           batch_size=2, num_threads=1)
    return runner.stages, runner.device


def _by_op(stages, margins, op):
    return margins[next(s.name for s in stages if s.op == op)]


def test_a_gpu_pipeline_on_the_cpu_states_each_stage_margin(tmp_path):
    """The user wrote the decoder as 'mixed' and the rest follows it onto the GPU; parity ran it on the CPU."""
    stages, ran_on = _stages(tmp_path, GPU_DECODE_PIPELINE.format(decoder_args=""))
    margins = stage_margins(stages, ran_on=ran_on)

    decoded = _by_op(stages, margins, "decoders__Image")
    assert decoded.line() == "decode (mixed): up to 44 levels (mean ≤4) at chroma edges unless jpeg_fancy_upsampling=True"
    assert decoded.bound.atol == 44
    resized = _by_op(stages, margins, "Resize")
    assert resized.lines() == [decoded.line(), "resize: ±1 level on rounding ties on the GPU (the CPU rounds .5 away "
                                               "from zero, the GPU half to even)"]
    assert resized.bound.atol == 45  # the bounds add up
    cropped = _by_op(stages, margins, "Crop")
    assert [a.margin.key for a in cropped.applied] == ["decode", "resize", "crop"] and cropped.bound.atol == 45
    model_input = _by_op(stages, margins, "CropMirrorNormalize")
    assert model_input.bound.atol == pytest.approx(45 / min(STD) + 1e-6)  # in normalized units
    assert model_input.applied[-1].where.startswith("pipe.py:10: return fn.crop_mirror_normalize(")
    assert not margins["INPUT"].applies  # the encoded bytes come from the client as they are


def test_fancy_upsampling_tightens_the_decode_margin(tmp_path):
    stages, ran_on = _stages(tmp_path, GPU_DECODE_PIPELINE.format(decoder_args=", jpeg_fancy_upsampling=True"))
    decoded = _by_op(stages, stage_margins(stages, ran_on=ran_on), "decoders__Image")
    assert decoded.line() == ("decode (mixed, jpeg_fancy_upsampling=True): up to 4 levels (mean ≤1) from the IDCT and "
                              "colour conversion")
    assert decoded.bound.atol == 4


def test_a_run_on_rewritten_operators_says_so_once(tmp_path):
    stages, ran_on = _stages(tmp_path, GPU_DECODE_PIPELINE.format(decoder_args=""))
    note = cpu_stand_in(stages, ran_on=ran_on)
    assert note.operators == ("image (mixed)", "resize (gpu)", "crop (gpu)", "crop_mirror_normalize (gpu)")
    assert note.line().startswith("DALI ran on the CPU: 4 of 5 operators were written for the GPU (image (mixed), ")
    assert json.loads(json.dumps(note.record())) == {"operators": list(note.operators), "total": 5}


def test_a_pipeline_written_for_the_cpu_needs_no_margin(tmp_path):
    body = GPU_DECODE_PIPELINE.format(decoder_args="").replace('device="mixed"', 'device="cpu"')
    stages, ran_on = _stages(tmp_path, body)
    assert cpu_stand_in(stages, ran_on=ran_on) is None
    assert not any(m.applies for m in stage_margins(stages, ran_on=ran_on).values())


def test_on_the_gpu_nothing_was_rewritten(tmp_path):
    stages, _ = _stages(tmp_path, GPU_DECODE_PIPELINE.format(decoder_args=""))
    assert cpu_stand_in(stages, ran_on="gpu") is None
    assert not any(m.applies for m in stage_margins(stages, ran_on="gpu").values())


def test_the_seed_pipeline_is_exact_on_the_gpu_but_for_the_resize():
    """The corrected seed: resize, crop with padding, a BGR->RGB swap and a float normalization."""
    runner = open_pipeline(pipeline="corrected_pipeline.py:hrnet_w30_cls_preprocess_pipeline", serialized=None,
                           base_dir=SEED, input_name="INPUT_PREPROCESS", device="cpu", batch_size=2, num_threads=1)
    margins = stage_margins(runner.stages, ran_on=runner.device)
    final = margins[runner.outputs[0]]
    assert [a.margin.key for a in final.applied] == ["resize", "crop", "csc-swap", "cmn-float"]
    assert final.line() == ("resize: ±1 level on rounding ties on the GPU (the CPU rounds .5 away from zero, the GPU "
                            "half to even); crop_mirror_normalize (float output): up to 1e-06 (fmaf on the GPU, "
                            "(x - mean) * inv_std on the CPU)")
    assert final.bound.atol == pytest.approx(1 / 57.12 + 1e-6, rel=1e-6)
    swap = margins[next(s.name for s in runner.stages if s.op == "ColorSpaceConversion")]
    assert swap.applied[-1].line() == "color_space_conversion (RGB↔BGR): exact (a channel swap)"
    assert json.loads(json.dumps(final.record()))["margins"][0]["where"].startswith("corrected_pipeline.py:20:")


def test_an_operator_without_a_published_number_is_not_covered(tmp_path):
    body = """
        images = fn.external_source(name="INPUT", device="gpu")
        images = fn.hsv(images, saturation=1.2)
        return fn.resize(images, size=(64, 64))
    """
    stages, ran_on = _stages(tmp_path, body)
    final = stage_margins(stages, ran_on=ran_on)[stages[-1].name]
    assert final.applied[0].line() == "hsv: no published CPU-vs-GPU number (not covered by the CPU verdict)"
    assert final.bound.atol is None and "no bound" in final.bound.line()


def test_a_normalize_scales_the_margins_before_it(tmp_path):
    body = """
        images = fn.external_source(name="INPUT", device="gpu")
        images = fn.resize(images, size=(64, 64))
        return fn.normalize(images, mean=128.0, stddev=64.0)
    """
    stages, ran_on = _stages(tmp_path, body)
    final = stage_margins(stages, ran_on=ran_on)[stages[-1].name]
    assert final.bound.atol == pytest.approx(1 / 64 + 1e-6)
    assert final.applied[-1].line() == "normalize (given mean and stddev): up to 1e-06 (the same formula on both)"
    own_statistics = _stages(tmp_path, body.replace("mean=128.0, stddev=64.0", "axes=[0, 1]"))[0]
    final = stage_margins(own_statistics, ran_on="cpu")[own_statistics[-1].name]
    assert final.applied[-1].margin.key == "normalize-data" and final.bound.rtol == 1e-3
    assert final.bound.atol is None  # divided by the data's own std: the levels before it have no fixed scale


def test_the_margins_match_the_cited_numbers():
    """The numbers the sources publish (GPU notes: nvImageCodec's decoder thresholds, DALI's rounding)."""
    assert (MARGINS["decode"].value, MARGINS["decode"].mean) == (44, 4)
    assert (MARGINS["decode-fancy"].value, MARGINS["decode-fancy"].mean) == (4, 1)
    assert MARGINS["resize"].value == MARGINS["cast-float-int"].value == MARGINS["warp_affine"].value == 1
    assert MARGINS["crop"].value == MARGINS["cast"].value == MARGINS["csc-swap"].value == 0
    assert (MARGINS["cmn-float"].value, MARGINS["cmn-float"].unit) == (1e-6, Unit.ABSOLUTE)
    assert "get_max_diff_threshold" in MARGINS["decode"].source and "#1602" in MARGINS["resize"].source
    assert MARGINS["decode"].evidence is Evidence.VERIFIED and MARGINS["resize"].evidence is Evidence.INFERRED
    assert all(m.source for m in MARGINS.values())


def test_tensorrt_tolerances_follow_the_engine_precision():
    assert [(t.atol, t.rtol) for t in TRT_TOLERANCES.values()] == [(1e-4, 1e-4), (1e-2, 1e-2), (5e-2, 1e-2)]
    assert "#3279" in trt_tolerance("fp32").source and "#2709" in trt_tolerance("fp16").source
    # FP16-sized differences (ViT: max 0.012, TensorRT #2709) pass an FP16 engine and fail an FP32 one
    reference = np.random.default_rng(0).normal(scale=4.0, size=1000).astype(np.float32)
    fp16_like = reference + np.random.default_rng(1).uniform(-0.012, 0.012, size=1000).astype(np.float32)
    assert trt_tolerance(TrtPrecision.FP16).excess(fp16_like, reference) <= 0
    assert trt_tolerance(TrtPrecision.FP32).excess(fp16_like, reference) > 0


def test_on_the_cpu_onnxruntime_stands_in_and_says_what_tensorrt_would_be_held_to():
    assert onnxruntime_stand_in("fp16") == ("ONNX Runtime stood in for TensorRT; a TensorRT FP16 engine would be held "
                                            "to atol=0.05, rtol=0.01 (and top-1 agreement and top-5 overlap)")
    unknown = onnxruntime_stand_in(None)
    assert "atol=0.01, rtol=0.01 as TensorRT builds by default (FP32 with TF32 on)" in unknown
    assert "set model.trt_precision" in unknown


def _model_config(tmp_path, **model):
    raw = dict(reference=dict(test_pipeline=[dict(type="LoadImageFromFile"), dict(type="PackInputs")]),
               dali=dict(pipeline="p.py:f"), images=[str(IMAGES / "astronaut.png")],
               model=dict(onnx="model.onnx", reference_model=False, **model))
    return config_from_dict(raw, tmp_path / "parity_cfg.py")


def test_the_engine_precision_is_a_validated_config_key(tmp_path):
    assert _model_config(tmp_path, trt_precision="fp16").model.trt_precision == "fp16"
    assert _model_config(tmp_path).model.trt_precision is None
    with pytest.raises(ParityConfigError, match=r"model.trt_precision='bf16': expected one of \['fp32', 'tf32', "
                                                r"'fp16'\]"):
        _model_config(tmp_path, trt_precision="bf16")


@pytest.mark.gpu
def test_an_fp32_engine_built_by_parity_is_held_to_the_fp32_tolerance():
    from parity.serving.backends import OnnxRuntimeRunner, TensorRTRunner

    onnx = ROOT / "fixtures" / "model" / "build" / "known_answer.onnx"
    engine = TensorRTRunner(onnx_path=onnx, precision="fp32")
    batch = np.random.default_rng(0).normal(size=(2, 3, 512, 384)).astype(np.float32)
    assert engine.tolerance is trt_tolerance("fp32")
    assert engine.tolerance.excess(engine.infer(batch), OnnxRuntimeRunner(onnx).infer(batch)) <= 0


def test_the_documents_hold_the_tables_of_the_code():
    """docs/gpu.md and docs/tolerances.md print the code's tables (python -m parity.gpu.margins): no drift."""
    gpu_doc = (ROOT / "docs" / "gpu.md").read_text()
    assert margins_table() in gpu_doc and trt_table() in gpu_doc
    assert trt_table() in (ROOT / "docs" / "tolerances.md").read_text()
