"""DALI pipelines as users deploy them: GPU placement, serialized model.dali files, broken graphs."""

import dataclasses

import numpy as np
import pytest

from parity import ParityDaliError, check_preprocessing_parity, load_config
from parity.dali import proto as dali_proto
from parity.dali.runner import CPU_ONLY_DEVICE_ID, load_function, open_pipeline, rewrite, serialize_function

from .conftest import IMAGES, MEAN, SEED, STD, save_rgb, write_config, write_pipeline

SEED_FUNCTION = "deployed_pipeline.py:hrnet_w30_cls_preprocess_pipeline"


def _serialized_seed(device_id: int) -> bytes:
    """The seed pipeline serialized as on a machine with a GPU (device_id 0 stored in the file)."""
    data = serialize_function(load_function(SEED_FUNCTION, SEED), SEED_FUNCTION, batch_size=256, num_threads=4)
    pipe = dali_proto.PipelineDef()
    pipe.ParseFromString(data)
    pipe.device_id = device_id
    return pipe.SerializeToString()


def test_rewrite_moves_a_gpu_pipeline_to_the_cpu_and_exposes_every_stage():
    data, stages, originals = rewrite(_serialized_seed(0), to_cpu=True)
    pipe = dali_proto.PipelineDef()
    pipe.ParseFromString(data)
    assert pipe.device_id == CPU_ONLY_DEVICE_ID
    assert {io.device for op in pipe.op for io in [*op.input, *op.output]} == {"cpu"}
    assert {a.strings[0] for op in pipe.op for a in op.args if a.name == "device"} == {"cpu"}
    assert originals == ["__Cast_2"]
    assert [o.name for o in pipe.pipe_outputs] == ["__Cast_2", "INPUT_PREPROCESS", "__Resize_0", "__Crop_1"]
    assert [(s.op, s.display) for s in stages] == [("ExternalSource", "external_source"), ("Resize", "resize"),
                                                   ("Crop", "crop"), ("Cast", "cast")]
    assert stages[1].args["size"] == [512.0, 384.0] and stages[1].args["mode"] == "not_larger"
    assert stages[1].source.startswith("deployed_pipeline.py:8: images = fn.resize(")


@pytest.mark.slow
def test_a_model_dali_from_a_triton_repository_gives_the_same_verdict_as_the_function(tmp_path):
    model_dir = tmp_path / "preprocess" / "1"
    model_dir.mkdir(parents=True)
    (model_dir / "model.dali").write_bytes(_serialized_seed(0))
    cfg = write_config(tmp_path, serialized="preprocess/1/model.dali", input_name="INPUT_PREPROCESS",
                       reference=dict(config=str(SEED / "hrnet_w30_512x384.py")))
    images = [IMAGES / "astronaut.png", IMAGES / "noise.png"]
    from_file = check_preprocessing_parity(cfg, images)
    from_function = check_preprocessing_parity(SEED / "parity_deployed.py", images)
    for a, b in zip(from_file, from_function):
        assert [(r.stage, r.status, r.max_abs, r.mean_abs) for r in a.stages] == \
               [(r.stage, r.status, r.max_abs, r.mean_abs) for r in b.stages]
    assert from_file[0].first_failure.dali_op.startswith("deployed_pipeline.py:10: images = fn.cast(")


def test_gpu_only_operators_are_named_with_their_source_line(tmp_path):
    spec = write_pipeline(tmp_path, """
        images = fn.external_source(device="gpu", name="INPUT")
        return fn.experimental.median_blur(images, device="gpu")
    """)
    with pytest.raises(ParityDaliError, match=r"only on the GPU.*experimental__MedianBlur \(pipe.py:7: return fn"):
        open_pipeline(pipeline=spec, serialized=None, base_dir=tmp_path, input_name="INPUT", device="cpu",
                      batch_size=2, num_threads=1)


def test_a_pipeline_that_does_not_build_gives_one_clear_error(tmp_path):
    body = "return fn.resize(fn.external_source(name='INPUT'), size=(10, 10), no_such_arg=1)"
    cfg = write_config(tmp_path, pipeline=write_pipeline(tmp_path, body))
    with pytest.raises(ParityDaliError, match="defining the pipeline failed: .*no_such_arg"):
        check_preprocessing_parity(cfg, [IMAGES / "noise.png"])


def test_a_run_failure_is_that_images_error_with_dalis_reason_and_the_users_line(tmp_path):
    """DALI fails on the tiny image only: it is named with the operator, the line and DALI's reason after
    its traceback; the other image of the same batch is still judged."""
    body = "return fn.crop(fn.external_source(name='INPUT'), crop=(300, 300))"
    cfg = write_config(tmp_path, pipeline=write_pipeline(tmp_path, body))
    tiny = save_rgb(tmp_path / "tiny.png", np.full((20, 30, 3), 90))
    astronaut, small = check_preprocessing_parity(cfg, [IMAGES / "astronaut.png", tiny])
    assert not astronaut.error and astronaut.stages
    assert "running the DALI pipeline failed" in small.error
    assert "nvidia.dali.fn.crop (CPU) at pipe.py:6: return fn.crop(" in small.error
    assert "Slice can't be placed out of bounds" in small.error and f"(image {tiny})" in small.error
    assert "C++ context" not in small.error and not small.passed


def test_a_batch_of_large_photos_runs_in_iterations_of_bounded_size_with_the_same_results(tmp_path, monkeypatch):
    """The DALI batch size bounds an iteration's images, ITERATION_BYTES its input (one image at least): a
    batch of 32 phone photos would otherwise hold every operator's output of all 32 at once. An image DALI
    fails on is still named, and ``keep`` copies out only the stages asked for."""
    from parity.dali import runner as dali_runner

    spec = write_pipeline(tmp_path, """
        images = fn.resize(fn.external_source(name="INPUT"), size=(64, 48))
        return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW", mean=[0.0], std=[255.0])
    """)
    runner = open_pipeline(pipeline=spec, serialized=None, base_dir=tmp_path, input_name="INPUT", device="cpu",
                           batch_size=4, num_threads=1)
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (h, 90, 3), dtype=np.uint8) for h in (100, 250, 80, 100, 60, 40)]
    whole = runner.run(photos)
    assert [len(b) for b in runner.batches(photos)] == [4, 2]
    monkeypatch.setattr(dali_runner, "ITERATION_BYTES", 100 * 90 * 3 * 2)
    assert [len(b) for b in runner.batches(photos)] == [1, 1, 2, 2]  # 250 rows: alone, and over the limit
    cut = runner.run(photos)
    assert all(a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a) for a, b in zip(whole, cut))
    [final] = runner.outputs
    assert [set(out) for out in runner.run(photos[:2], keep={final})] == [{final}, {final}]
    flat = np.zeros((40, 90), np.uint8)  # no channel axis: DALI fails on it
    results = runner.run_each([photos[0], flat, photos[2]], ["a.png", "flat.png", "c.png"])
    assert isinstance(results[1], ParityDaliError) and "(image flat.png)" in str(results[1])
    assert all(np.array_equal(results[i][final], whole[j][final]) for i, j in ((0, 0), (2, 2)))


def test_wrong_names_and_undecorated_functions_are_explained(tmp_path):
    spec = write_pipeline(tmp_path, "return fn.external_source(name='IMAGES')")
    with pytest.raises(ParityDaliError, match=r"dali.input_name='INPUT' is not an external_source.*\['IMAGES'\]"):
        open_pipeline(pipeline=spec, serialized=None, base_dir=tmp_path, input_name="INPUT", device="cpu",
                      batch_size=2, num_threads=1)
    (tmp_path / "plain.py").write_text("def preprocess():\n    return 1\n")
    with pytest.raises(ParityDaliError, match="is not a @pipeline_def function"):
        open_pipeline(pipeline="plain.py:preprocess", serialized=None, base_dir=tmp_path, input_name=None,
                      device="cpu", batch_size=2, num_threads=1)
    with pytest.raises(ParityDaliError, match="has no function 'nope'"):
        load_function("plain.py:nope", tmp_path)
    (tmp_path / "junk.dali").write_bytes(b"\x00not protobuf")
    with pytest.raises(ParityDaliError, match="not a serialized DALI pipeline"):
        rewrite(b"\x00not protobuf", to_cpu=True)


def test_encoded_input_is_decoded_by_the_pipeline(tmp_path):
    spec = write_pipeline(tmp_path, """
        jpegs = fn.external_source(name="INPUT")
        images = fn.decoders.image(jpegs, device="mixed", output_type=types.RGB)
        images = fn.resize(images, size=(512, 384), mode="not_larger")
        images = fn.crop(images, crop=(512, 384), out_of_bounds_policy="pad")
        return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW",
                                        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
    """)
    cfg = write_config(tmp_path, pipeline=spec, input_format="encoded")
    [result] = check_preprocessing_parity(cfg, [IMAGES / "rocket.png"])
    assert [(r.stage, r.status) for r in result.stages] == [
        ("image", "passed"), ("resize", "passed"), ("crop", "passed"), ("model_input", "passed")]



def test_jpeg_decoding_on_the_cpu_matches_opencv_exactly(tmp_path):
    """DALI's CPU decoder and the reference's cv2.imdecode are both libjpeg-turbo: zero difference, chroma
    subsampled or not, so any difference at the decoder stage on a GPU is nvJPEG's."""
    from PIL import Image

    spec = write_pipeline(tmp_path, """
        images = fn.decoders.image(fn.external_source(name="INPUT"), device="mixed", output_type=types.RGB)
        return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW",
                                        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
    """)
    rgb = Image.open(IMAGES / "astronaut.png").convert("RGB")
    jpegs = [tmp_path / "astronaut_420.jpg", tmp_path / "astronaut_444.jpg"]
    rgb.save(jpegs[0], quality=90, subsampling=2)
    rgb.save(jpegs[1], quality=90, subsampling=0)
    reference = dict(test_pipeline=[dict(type="LoadImageFromFile"), dict(type="PackInputs")],
                     data_preprocessor=dict(mean=MEAN, std=STD, to_rgb=True))
    cfg = write_config(tmp_path, pipeline=spec, input_format="encoded", reference=reference)
    for result in check_preprocessing_parity(cfg, jpegs):
        decoded = result.stages[0]
        assert (decoded.stage, decoded.status, decoded.max_abs) == ("image", "passed", 0.0)


@pytest.mark.gpu
def test_on_a_gpu_the_pipeline_runs_as_written(tmp_path):
    cfg = load_config(SEED / "parity_corrected.py")
    cfg.dali = dataclasses.replace(cfg.dali, device="gpu")
    results = check_preprocessing_parity(cfg)
    assert all(r.passed for r in results)
    assert np.isfinite([s.max_abs for r in results for s in r.stages]).all()
