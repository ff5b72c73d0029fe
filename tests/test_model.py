"""The model stage: the seed's collapsed answers are caught, a healthy deployment is not flagged."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from parity import check_preprocessing_parity, load_config
from parity.run.harness import Harness
from parity.run.run import Run
from parity.serving.backends import (
    OnnxRuntimeRunner,
    ParityModelError,
    TensorRTRunner,
    TensorSpec,
    output_shape,
    resolve_shape,
    split_io,
)
from parity.serving.model import ModelResult, clear_topk, topk_overlap

from .conftest import IMAGES, ROOT, SEED, write_config

BUILD = ROOT / "fixtures" / "model" / "build"


def _run(config):
    with Run(load_config(config) if isinstance(config, Path) else config) as run:
        results = list(run.stream())
        return results, run.degenerate()


@pytest.mark.slow
def test_seed_deployment_collapses_and_the_message_points_back_to_preprocessing():
    results, degenerate = _run(SEED / "parity_deployed.py")
    answers = json.loads((BUILD / "answers.json").read_text())
    assert [r.model.ref_top1 for r in results] == [answers[r.image] for r in results]  # the known answers
    assert sum(r.model.dali_top1 == r.model.ref_top1 for r in results) <= 1
    assert all(r.model.dali_prob > 0.999 and r.model.status == "failed" for r in results)
    assert degenerate.status == "failed"
    message = degenerate.message()
    assert "probabilities saturated: p >= 0.999 for 100% of images (reference 0%)" in message
    assert "missing_normalization" in message and "DALI's model input spans 0..255" in message


@pytest.mark.slow
def test_corrected_deployment_gives_the_known_answers_and_no_collapse():
    results, degenerate = _run(SEED / "parity_corrected.py")
    answers = json.loads((BUILD / "answers.json").read_text())
    assert [r.model.dali_top1 for r in results] == [answers[r.image] for r in results]
    assert all(r.model.status == "passed" and r.model.kl < 1e-5 for r in results)
    assert max(r.model.conversion_max_abs for r in results) < 1e-3  # ONNX Runtime vs torch, same input
    assert degenerate.status == "passed"


@pytest.mark.slow
def test_collapse_is_caught_without_a_reference_model(tmp_path):
    cfg = load_config(SEED / "parity_deployed.py")
    cfg.model = dataclasses.replace(cfg.model, reference_model=False)
    results, degenerate = _run(cfg)
    assert {r.model.status for r in results} == {"skipped"}
    assert degenerate.status == "failed" and "saturated" in degenerate.message()


def test_a_conversion_error_is_told_apart_from_preprocessing(tmp_path):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(BUILD / "known_answer.onnx"))
    for init in model.graph.initializer:
        if tuple(init.dims) == (1000, 512):  # the classifier head
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.05, init.name))
    onnx.save(model, str(tmp_path / "drifted.onnx"))
    cfg = load_config(SEED / "parity_corrected.py")
    cfg.model = dataclasses.replace(cfg.model, onnx=str(tmp_path / "drifted.onnx"))
    [result] = Harness(cfg).run([IMAGES / "astronaut.png"])
    assert result.model.status == "failed"
    assert result.model.dali_top1 == result.model.ref_top1  # answers survive a 5% drift ...
    assert any(p.startswith("Conversion error") for p in result.model.problems)  # ... the logits do not
    assert result.model.conversion_max_abs == pytest.approx(0.5, rel=0.05)  # 5% of the margin of 10


def test_topk_overlap_counts_near_ties():
    ref = np.array([10.0, 5.0, 0.0, 0.0, -1.0])  # classes 2 and 3 tie for the reference's 3rd place
    assert topk_overlap(ref, np.array([9.0, 4.0, -0.001, 0.001, -5.0]), k=3) == 1.0  # either tie is fine
    assert topk_overlap(ref, np.array([0.0, -5.0, 0.0, 0.0, 9.0]), k=3) == 0.5  # class 1 is missing
    assert topk_overlap(np.zeros(5), np.arange(5.0), k=3) == 1.0  # nothing certain to miss
    # the message says what the share is of, so "top-1 differs" next to 100% overlap reads right
    assert list(clear_topk(ref, k=3)) == [0, 1]
    line = ModelResult("img", "onnxruntime", "failed", ref_top1=0, dali_top1=1, topk_overlap=1.0, topk=3,
                       topk_counted=2).message().splitlines()[3]
    assert line.startswith("Top-3 overlap: 100% of the 2 classes the reference ranks clearly in its top 3;")
    tied = ModelResult("img", "onnxruntime", "passed", ref_top1=0, dali_top1=0, topk_overlap=1.0, topk=3)
    assert "Top-3 overlap: not judged (the reference's top 3 are tied)" in tied.message()


def test_model_config_errors_are_named(tmp_path):
    from parity import ParityConfigError

    path = write_config(tmp_path, pipeline="p.py:f", extra="model = dict(checkpoint='x.pth')\n")
    with pytest.raises(ParityConfigError, match="model: give onnx='model.onnx'"):
        load_config(path)
    with pytest.raises(ParityModelError, match="model.onnx: file not found"):
        OnnxRuntimeRunner(tmp_path / "missing.onnx")


# ---- TensorRT: the binding and buffer logic runs everywhere; the engine where a GPU exists -----------

def test_tensorrt_binding_and_shape_logic():
    specs = [TensorSpec("input", True, (-1, 3, 512, 384), np.dtype("float32")),
             TensorSpec("logits", False, (-1, 1000), np.dtype("float32"))]
    inp, out = split_io(specs)
    assert (inp.name, out.name) == ("input", "logits")
    assert resolve_shape(inp.shape, np.zeros((4, 3, 512, 384))) == (4, 3, 512, 384)
    assert output_shape(out, 4) == (4, 1000)
    with pytest.raises(ParityModelError, match=r"expects \(-1, 3, 512, 384\), the batch is \(4, 512, 384, 3\)"):
        resolve_shape(inp.shape, np.zeros((4, 512, 384, 3)))
    with pytest.raises(ParityModelError, match="expected one input"):
        split_io(specs + [TensorSpec("mask", True, (1,), np.dtype("float32"))])


def test_tensorrt_backend_says_why_it_cannot_run_here():
    try:
        import pycuda.autoinit  # noqa: F401
        import tensorrt  # noqa: F401
    except Exception:
        with pytest.raises(ParityModelError, match="TensorRT backend unavailable: .*ONNX Runtime runs the same"):
            TensorRTRunner(onnx_path=BUILD / "known_answer.onnx")
    else:
        pytest.skip("TensorRT and a GPU are present: the GPU test below runs the engine")


@pytest.mark.gpu
def test_tensorrt_engine_matches_onnxruntime():
    runner = TensorRTRunner(onnx_path=BUILD / "known_answer.onnx")
    ort = OnnxRuntimeRunner(BUILD / "known_answer.onnx")
    batch = np.random.default_rng(0).normal(size=(2, 3, 512, 384)).astype(np.float32)
    np.testing.assert_allclose(runner.infer(batch), ort.infer(batch), atol=1e-2, rtol=1e-2)


@pytest.mark.slow
def test_model_items_in_pytest(pytester):
    result = pytester.runpytest_subprocess("--parity-config", str(SEED / "parity_corrected.py"), "-k",
                                           "(model and not model_input) or degenerate")
    result.assert_outcomes(passed=9)  # 8 images x model, and the degenerate-output check
    result.stdout.fnmatch_lines(["*model (onnxruntime): 8 passed, 0 failed, 0 skipped; top-1 agreement 8/8*",
                                 "*degenerate-output check: PASSED*"])


def test_check_preprocessing_parity_includes_the_model_verdict():
    [result] = check_preprocessing_parity(SEED / "parity_deployed.py", [IMAGES / "noise.png"])
    assert result.model is not None and not result.passed


def test_logit_and_collapse_assertions_for_other_suites():
    from parity import assert_logits_close, assert_not_degenerate

    rng = np.random.default_rng(0)
    reference = rng.normal(0, 3, (6, 10))
    assert_logits_close(reference + rng.normal(0, 1e-3, reference.shape), reference)
    swapped = reference.copy()
    swapped[2] = reference[2][::-1]
    with pytest.raises(AssertionError, match=r"not close for 1 of 6 inputs!\n\nrow 2: top-1"):
        assert_logits_close(swapped, reference)
    assert_not_degenerate(reference)  # varied answers
    from parity import ParityUsageError

    for bad in (dict(kl=float("nan")), dict(atol=float("nan")), dict(topk_overlap=float("nan")), dict(topk=0)):
        with pytest.raises(ParityUsageError, match=f"but got {next(iter(bad))}="):  # NaN would pass any pair
            assert_logits_close(swapped, reference, **bad)
    collapsed = np.zeros((6, 10))
    collapsed[:, 0] = 50.0
    with pytest.raises(AssertionError, match=r"6 of 6 images -> class 0 with mean p=1.000"):
        assert_not_degenerate(collapsed)


def test_the_degenerate_judge_finds_constant_and_non_finite_logits_and_needs_no_order():
    """One judge over answers: identical rows (found even where no class share reaches the threshold), NaN
    rows, and answers fed in any order (as workers and shards send them) judged alike."""
    from parity import assert_not_degenerate
    from parity.results.degenerate import DegenerateJudge, answer_of

    rng = np.random.default_rng(1)
    constant = np.tile(rng.normal(0, 1, 10), (4, 1))
    with pytest.raises(AssertionError, match=r"logits identical across images \(greatest spread across images 0\)"):
        assert_not_degenerate(constant, share=1.1)  # no share of one class reaches 1.1: only identity remains
    broken = rng.normal(0, 3, (4, 10))
    broken[1, 3] = np.nan
    with pytest.raises(AssertionError, match=r"NaN/Inf logits for 1 images"):
        assert_not_degenerate(broken)
    collapsed, reference = np.zeros((6, 10)), rng.normal(0, 3, (6, 10))
    collapsed[:, 0] = 50.0
    forward, backward = DegenerateJudge(0.9), DegenerateJudge(0.9)
    for i in range(6):
        forward.add_answer(answer_of(collapsed[i], reference[i]))
        backward.add_answer(answer_of(collapsed[5 - i], reference[5 - i]))
    assert forward.verdict() == backward.verdict() and forward.verdict().status == "failed"
    assert forward.verdict().findings[0].startswith("6 of 6 images -> class 0 with mean p=1.000 (the reference model")
