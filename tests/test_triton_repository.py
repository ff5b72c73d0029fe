"""The served pipeline is the tested pipeline: repository mistakes users make, each named before any request
(`triton_repository`), with the config.pbtxt line or the operator to change."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from parity.dali.runner import open_pipeline
from parity.serving.triton_repository import check_repository

from .conftest import ROOT, SEED

REPOS = ROOT / "fixtures" / "triton" / "build"
ONNX = ROOT / "fixtures" / "model" / "build" / "known_answer.onnx"


def _tested(module: str = "corrected_pipeline.py"):
    runner = open_pipeline(pipeline=f"{module}:hrnet_w30_cls_preprocess_pipeline", serialized=None, base_dir=SEED,
                           input_name="INPUT_PREPROCESS", device="cpu", batch_size=2, num_threads=1)
    return runner.stages


@pytest.fixture()
def repo(tmp_path) -> Path:
    """A copy of the corrected repository, the one that serves exactly what was tested."""
    return Path(shutil.copytree(REPOS / "corrected_repository", tmp_path / "repo", symlinks=True))


def _check(repo: Path, tested=None, onnx: Path = ONNX):
    return check_repository(repo, tested=tested or _tested(), input_name="INPUT_PREPROCESS", onnx=onnx)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_the_corrected_repository_serves_what_was_tested(repo):
    result = _check(repo)
    assert result.status == "passed" and not result.problems


def test_a_stale_model_dali_is_named_with_what_it_lacks(repo):
    """The Python file was fixed, the model never re-serialized: the classic way a fix never ships."""
    shutil.copy(REPOS / "seed_repository" / "preprocess" / "1" / "model.dali", repo / "preprocess" / "1" / "model.dali")
    result = _check(repo)
    assert result.status == "failed"
    text = result.message()
    served = repo / "preprocess" / "1" / "model.dali"
    assert f"{served} lacks color_space_conversion(" in text
    assert "crop_mirror_normalize(" in text and "mean=[123.67" in text and "corrected_pipeline.py:26:" in text
    assert "re-serialize the tested pipeline into it" in text
    assert f"{served} has resize(" in text  # the old geometry too


def test_an_ensemble_mapping_to_a_tensor_no_step_produces(repo):
    _edit(repo / "ensemble" / "config.pbtxt", 'key: "input" value: "preprocessed_image"',
          'key: "input" value: "preprocessed"')
    [problem] = [p for p in _check(repo).problems if "input_map" in p]
    assert f"{repo / 'ensemble' / 'config.pbtxt'}:" in problem
    assert "input_map maps 'input' to 'preprocessed', which no earlier step produces" in problem


def test_fp32_declared_where_the_dali_model_emits_uint8(repo):
    """A pipeline without a normalizing/casting operator emits UINT8; the config says FP32."""
    from parity.dali import proto as dali_proto

    # the deployed pipeline without its cast: what a team gets when it removes "the cast nobody needs"
    shutil.copy(REPOS / "seed_repository" / "preprocess" / "1" / "model.dali", repo / "preprocess" / "1" / "model.dali")
    pipe = dali_proto.PipelineDef()
    pipe.ParseFromString((repo / "preprocess" / "1" / "model.dali").read_bytes())
    crop = next(op for op in pipe.op if op.name == "Crop")
    del pipe.op[-1]
    pipe.pipe_outputs[0].name = crop.output[0].name
    (repo / "preprocess" / "1" / "model.dali").write_bytes(pipe.SerializeToString())
    problems = _check(repo).problems
    assert any("output 'PREPROCESSED' of 'preprocess' is declared TYPE_FP32, but its model.dali emits TYPE_UINT8"
               in p and "set data_type: TYPE_UINT8" in p and "preprocess/config.pbtxt:5" in p for p in problems)


def test_hwc_produced_where_the_classifier_declares_chw():
    """The seed's own repository: the DALI model emits HWC, the classifier takes [3, 512, 384]."""
    result = _check(REPOS / "seed_repository", tested=_tested("deployed_pipeline.py"))
    [problem] = result.problems
    assert "classifier/config.pbtxt:4: 'classifier' declares 'input' dims [3, 512, 384] (CHW), but 'preprocess' " \
           "emits HWC (its last operator: deployed_pipeline.py:10:" in problem
    assert "set output_layout='CHW' in fn.crop_mirror_normalize" in problem


def test_max_batch_size_and_dims_mismatch(repo):
    _edit(repo / "classifier" / "config.pbtxt", "max_batch_size: 8", "max_batch_size: 0")
    problems = _check(repo).problems
    assert any("'classifier' has max_batch_size 0, 'preprocess' 8" in p and "dims exclude the batch dimension" in p
               for p in problems)
    shutil.rmtree(repo)
    shutil.copytree(REPOS / "corrected_repository", repo, symlinks=True)
    _edit(repo / "classifier" / "config.pbtxt", "dims: [ 3, 512, 384 ]", "dims: [ 3, 224, 224 ]")
    _edit(repo / "preprocess" / "config.pbtxt", "dims: [ -1, -1, -1 ]", "dims: [ 3, 512, 384 ]")
    assert any("input 'input' of 'classifier' has dims [3, 224, 224], 'preprocessed_image' is declared [3, 512, 384]"
               in p for p in _check(repo).problems)


def test_an_onnx_that_is_not_the_exported_model(repo, tmp_path):
    served = repo / "classifier" / "1" / "model.onnx"
    served.unlink()
    served.write_bytes(ONNX.read_bytes() + b"\x00")  # another file: a re-export, another checkpoint
    [problem] = _check(repo).problems
    assert f"{served} is not model.onnx {ONNX} (another sha256)" in problem


@pytest.mark.slow
def test_the_repository_item_fails_first_in_pytest_and_explains_the_refusal(pytester):
    result = pytester.runpytest_subprocess("--parity-config", str(SEED / "parity_triton_deployed.py"), "-k",
                                           "repository or astronaut", "-p", "no:randomly")
    text = result.stdout.str()
    assert "FAILED" in text and "::triton_repository" in text
    assert "'classifier' declares 'input' dims [3, 512, 384] (CHW), but 'preprocess' emits HWC" in text
    assert "Why (triton_repository):" in text  # the refusal is explained by the static check


def test_map_keys_that_are_not_the_step_models_tensors(repo):
    _edit(repo / "ensemble" / "config.pbtxt", 'key: "logits" value: "OUTPUT"', 'key: "logit" value: "OUTPUT"')
    problems = _check(repo).problems
    assert any("output_map key 'logit' is not an output of 'classifier' (its outputs: ['logits']" in p for p in problems)
    assert any("ensemble output 'OUTPUT' is produced by no step" in p for p in problems)


def test_an_argument_that_differs_is_named_in_the_users_terms(repo, tmp_path):
    """One std value mistyped in the tested pipeline: the finding names that element with both values as written,
    not float32 reprs."""
    source = (SEED / "corrected_pipeline.py").read_text()
    assert "57.375]" in source
    (tmp_path / "pipeline.py").write_text(source.replace("57.375]", "5.7375]"))
    runner = open_pipeline(pipeline="pipeline.py:hrnet_w30_cls_preprocess_pipeline", serialized=None, base_dir=tmp_path,
                           input_name="INPUT_PREPROCESS", device="cpu", batch_size=2, num_threads=1)
    [problem] = _check(repo, tested=runner.stages).problems
    assert "std[2]: 57.375 in model.dali, 5.7375 in pipeline.py:" in problem
    assert "57.375000" not in problem and "5.737500" not in problem
