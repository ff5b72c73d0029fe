"""A mismatch is explained: which cause, with the numbers behind it; a correct pipeline raises no alarm."""

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity import assert_stage_close, check_preprocessing_parity
from parity.compare.arrays import compare_arrays
from parity.config.load import Tolerance
from parity.diagnose.geometry import shape_causes
from parity.diagnose.stage import diagnose_arrays

from . import recovery
from .conftest import IMAGES, MEAN, ROOT, SEED, STD, save_rgb, write_config, write_pipeline

M, S = np.array(MEAN)[:, None, None], np.array(STD)[:, None, None]
NORMALIZED = Tolerance(atol=3 / 57.12, max_mismatch=0.005, unit="normalized units")  # the model input's default
PIXELS = Tolerance(atol=5, max_mismatch=0.005, unit="uint8 levels")


@st.composite
def pixel_images(draw):
    """Textured (C,H,W) float images in 0..255: gradients plus noise, odd and tiny sizes included."""
    h, w = draw(st.integers(6, 48)), draw(st.integers(6, 48))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([x * rng.uniform(50, 200), y * rng.uniform(50, 200), (x + y) * rng.uniform(20, 100)])
    noise = rng.uniform(0, draw(st.sampled_from([5.0, 60.0, 255.0])), (3, h, w))
    return np.clip(base + noise, 0, 255).round()


BUGS = {
    "missing_normalization": lambda p: p,
    "scaled_0_1": lambda p: p / 255.0,
    "mean_std_channel_order": lambda p: (p - M[::-1]) / S[::-1],
    "double_normalization": lambda p: ((p - M) / S - M) / S,
    "normalized_0_1_input": lambda p: (p - M / 255) / (S / 255),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pixels=pixel_images(), bug=st.sampled_from(sorted(BUGS)), swap=st.booleans())
def test_value_bugs_are_named_with_the_effective_mean_and_std(pixels, bug, swap):
    reference = (pixels - M) / S
    dali = BUGS[bug](pixels)
    if swap:  # the same bug, and the channels also leave in BGR order
        dali = dali[::-1]
    diagnosis = diagnose_arrays(dali, reference, NORMALIZED, mean=MEAN, std=STD, to_rgb=True)
    expected = {bug} | ({"channel_order"} if swap else set())
    if swap and bug == "mean_std_channel_order":
        # reversed constants on reversed channels is the same tensor as unconverted BGR with the right
        # constants: one mistake, the channel order, explains it
        expected = {"channel_order"}
    assert set(diagnosis.kinds) == expected, str(diagnosis)
    for cause in diagnosis.causes:  # each fit explains the whole difference, and says by how much
        assert cause.evidence.residual_max <= cause.evidence.limit == NORMALIZED.atol


def _textured(h=64, w=48, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    pixels = np.stack([np.sin(x / 5) * 100 + 120 + y, np.cos(y / 7) * 90 + 120, (x * y) % 200 + 20.0])
    return pixels + rng.normal(0, 3, pixels.shape)


@pytest.mark.parametrize("transform, kind, params", [
    (lambda r: np.roll(r, 1, axis=1), "offset", {"dy": 1, "dx": 0}),
    (lambda r: np.roll(r, -2, axis=2), "offset", {"dy": 0, "dx": -2}),
    (lambda r: r[:, :, ::-1], "flip", {}),
])
def test_geometry_slips_are_found_by_search(transform, kind, params):
    reference = (_textured() - M) / S
    diagnosis = diagnose_arrays(transform(reference), reference, NORMALIZED, mean=MEAN, std=STD)
    assert diagnosis.kinds == (kind,), str(diagnosis)
    assert params.items() <= diagnosis.causes[0].evidence.params.items()
    assert diagnosis.causes[0].evidence.residual_max < 1e-9  # shifted or mirrored back, nothing is left


def test_shape_mismatches_say_layout_or_swapped_sizes():
    kinds = lambda causes: tuple(c.kind for c in causes)  # noqa: E731
    assert kinds(shape_causes((512, 384, 3), (3, 512, 384), "HWC")) == ("layout",)
    assert kinds(shape_causes((3, 384, 512), (3, 512, 384), "CHW")) == ("size_swapped",)
    assert kinds(shape_causes((3, 256, 384), (3, 341, 512), "CHW")) == ("size",)


def test_a_difference_no_model_explains_is_reported_as_such_with_its_statistics():
    """No fallback cause: a value error of ~1 normalized unit that is neither affine, shifted, mirrored nor a
    filter's fine detail names nothing (a filter difference is at most ~0.07)."""
    reference = (_textured() - M) / S
    blotch = np.zeros_like(reference)
    blotch[:, 10:40, 5:30] = 1.09  # a region brighter by ~62 levels: no per-channel map of the whole explains it
    diagnosis = diagnose_arrays(reference + blotch, reference, NORMALIZED, mean=MEAN, std=STD)
    assert diagnosis.kinds == () and not diagnosis
    assert diagnosis.unexplained.max_abs == pytest.approx(1.09)
    assert diagnosis.unexplained.mean_abs == pytest.approx(1.09 * 30 * 25 / (64 * 48))
    assert diagnosis.finding.startswith("not explained by a known cause (max abs 1.09,")


def test_a_real_cause_gets_no_filter_appended_and_a_filter_alone_is_named():
    pixels = _textured()
    reference = (pixels - M) / S
    fine = np.random.default_rng(1).normal(0, 0.01, reference.shape)  # resampling-sized fine detail
    assert diagnose_arrays(pixels + fine * S, reference, NORMALIZED, mean=MEAN, std=STD).kinds == \
        ("missing_normalization",)
    smoothed_away = diagnose_arrays(reference + 5 * fine, reference, NORMALIZED, mean=MEAN, std=STD)
    assert smoothed_away.kinds == ("interpolation",)
    assert smoothed_away.causes[0].evidence.residual_max <= NORMALIZED.atol


def test_uint8_images_compare_exactly_without_wrapping_around():
    """uint8 stages are compared in their own type (the fast path); 0 vs 255 is 255 apart, not 1."""
    expected = np.full((3, 4, 5), 255, np.uint8)
    actual = expected.copy()
    actual[0, 1, 2], actual[2, 3, 4] = 0, 250
    result = compare_arrays(actual, expected, Tolerance(atol=5), image="-", stage="crop", dali_op="-", reference="-")
    assert (result.mismatched, result.max_abs, result.max_abs_index) == (1, 255.0, (0, 1, 2))
    assert result.mean_abs == pytest.approx(260 / 60)
    with pytest.raises(AssertionError, match=r"(?s)Greatest absolute difference: 255 at index \(0, 1, 2\).*"
                                             r"\(0, 1, 2\) +\| 0 +\| 255"):
        assert_stage_close(actual, expected, atol=5)


@pytest.mark.slow
def test_landscape_images_show_the_seed_reference_and_dali_disagree_on_geometry(tmp_path):
    """MMCV's keep-ratio Resize fits the long edge to 512; the deployed pipeline's not_larger box does not."""
    import skimage.data

    image = save_rgb(tmp_path / "coffee_landscape.png", skimage.data.coffee())  # 400x600
    [result] = check_preprocessing_parity(SEED / "parity_deployed.py", [image])
    resize = next(r for r in result.stages if r.stage == "resize")
    assert resize.status == "failed"
    assert resize.problems[0] == "Shape mismatch: DALI (256, 384, 3), reference (341, 512, 3)"
    assert resize.diagnosis.kinds == ("size",)
    assert "First divergence: this stage (resize); earlier stages matched: input" in resize.message()
    # after another size, no filter is guessed; the missing normalization is still measured (from DALI's own crop)
    assert result.cause_kinds == ("size", "missing_normalization", "channel_order", "layout")
    assert result.stages[-1].diagnosis.follows_from == "resize"


@st.composite
def odd_images(draw):
    h, w = draw(st.integers(1, 90)), draw(st.integers(1, 90))
    kind = draw(st.sampled_from(["noise", "gradient", "flat"]))
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    if kind == "noise":
        return rng.integers(0, 256, (h, w, 3))
    if kind == "flat":
        return np.broadcast_to(rng.integers(0, 256, 3), (h, w, 3))
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], -1)


@pytest.fixture(scope="module")
def stretch_harness(tmp_path_factory):
    """A DALI pipeline exactly equivalent to an MMCV stretch-resize reference, for any input size."""
    from parity import Harness, load_config

    folder = tmp_path_factory.mktemp("stretch")
    spec = write_pipeline(folder, """
        images = fn.external_source(name="INPUT")
        images = fn.resize(images, size=(64, 48))
        images = fn.color_space_conversion(images, image_type=types.BGR, output_type=types.RGB)
        return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW",
                                        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
    """)
    reference = dict(
        config="mmpretrain::resnet/resnet50_8xb32_in1k.py",
        test_pipeline=[dict(type="LoadImageFromFile"),
                       dict(type="Resize", scale=(48, 64), keep_ratio=False, backend="pillow",
                            interpolation="bilinear"),
                       dict(type="PackInputs")])
    save_rgb(folder / "seed.png", np.zeros((8, 8, 3)))
    cfg = load_config(write_config(folder, pipeline=spec, reference=reference, images=[str(folder / "seed.png")]))
    return Harness(cfg), folder


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(image=odd_images())
def test_no_false_alarm_on_odd_tiny_and_extreme_images(stretch_harness, image):
    harness, folder = stretch_harness
    path = save_rgb(folder / "drawn.png", np.ascontiguousarray(image))
    [result] = harness.run([path])
    assert result.passed, result.first_failure.message()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.tuples(st.integers(8, 96), st.integers(8, 96)),
       mean=st.lists(st.floats(0, 255), min_size=3, max_size=3),
       std=st.lists(st.floats(1, 128), min_size=3, max_size=3),
       image=odd_images())
def test_no_false_alarm_for_random_correct_pipeline_parameters(tmp_path_factory, size, mean, std, image):
    """Random output size and normalization, written the same way on both sides, always pass."""
    from parity import Harness, load_config

    folder = tmp_path_factory.mktemp("random")
    spec = write_pipeline(folder, f"""
        images = fn.external_source(name="INPUT")
        images = fn.resize(images, size={size})
        images = fn.color_space_conversion(images, image_type=types.BGR, output_type=types.RGB)
        return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW", mean={mean}, std={std})
    """)
    reference = dict(
        test_pipeline=[dict(type="LoadImageFromFile"),
                       dict(type="Resize", scale=(size[1], size[0]), keep_ratio=False, backend="pillow",
                            interpolation="bilinear"),
                       dict(type="PackInputs")],
        data_preprocessor=dict(mean=mean, std=std, to_rgb=True))
    path = save_rgb(folder / "drawn.png", np.ascontiguousarray(image))
    harness = Harness(load_config(write_config(folder, pipeline=spec, reference=reference, images=[str(path)])))
    [result] = harness.run()
    assert result.passed, result.first_failure.message()


def test_the_resize_argument_that_differs_is_named():
    from parity.diagnose.advice import resize_filter_cause

    cv2_edge = dict(type="ResizeEdge", scale=256, edge="short")  # backend cv2, bilinear: no antialiasing
    cause = resize_filter_cause({"resize_shorter": 256.0}, cv2_edge, where="p.py:3: fn.resize(...)")
    assert cause.kind == "resize_filter"
    assert (cause.advice.argument, cause.advice.value, cause.advice.where) == \
        ("antialias", "antialias=False", "p.py:3: fn.resize(...)")
    pillow = dict(type="Resize", scale=(384, 512), keep_ratio=True, backend="pillow", interpolation="bicubic")
    cause = resize_filter_cause({"interp_type": 1}, pillow)
    assert cause.advice.value == "interp_type=types.INTERP_CUBIC"
    assert resize_filter_cause({"antialias": False}, cv2_edge) is None  # nothing to change


def test_a_one_pixel_size_difference_is_called_rounding():
    [cause] = shape_causes((256, 385, 3), (256, 384, 3), "HWC", ref_layout="HWC", input_hw=(300, 451))
    assert cause.kind == "size_rounding"
    assert cause.evidence.params["dali"] == (256, 385) and cause.evidence.params["reference"] == (256, 384)


@pytest.mark.parametrize("split, value", [((64, 64), "0.5"), ((0, 128), "0"), ((128, 0), "1")])
def test_the_crop_anchor_advice_follows_where_the_reference_pads(split, value):
    """The reference pads above only: crop_pos_y=1, and nothing else is suggested."""
    from parity.diagnose.advice import anchor_advice

    for args in (None, {"crop_pos_y": 0.25}):
        fix = anchor_advice("rows", split, args, "p.py:9: fn.crop(...)" if args else "")
        assert (fix.argument, fix.value) == ("crop_pos_y", value)
        assert "crop_pos_y=" + value in fix.text and fix.text.count("crop_pos_y=") == (1 if args is None else 2)


IMAGENET_DALI = """
    images = fn.decoders.image(fn.external_source(name="INPUT"), device="mixed", output_type=types.RGB)
    images = fn.resize(images, resize_shorter=256, interp_type=types.INTERP_LINEAR, antialias=False{extra})
    return fn.crop_mirror_normalize(images, crop=(224, 224), dtype=types.FLOAT, output_layout="CHW",
                                    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
"""


def test_the_usual_imagenet_dali_pipeline_is_told_which_arguments_to_change(tmp_path):
    """ResNet-50's shipped reference (ResizeEdge 256 with cv2, CenterCrop 224) against the DALI pipeline
    most people write: the fractional size resize_shorter computes is scaled differently (subpixel_scale),
    and crop_mirror_normalize's centred window rounds its anchor differently on some sizes."""
    reference = dict(config="mmpretrain::resnet/resnet50_8xb32_in1k.py")
    landscape = [IMAGES / "coffee.png", IMAGES / "rocket.png"]
    spec = write_pipeline(tmp_path, IMAGENET_DALI.format(extra=""), "usual")
    cfg = write_config(tmp_path, pipeline=spec, input_format="encoded", reference=reference)
    for result in check_preprocessing_parity(cfg, landscape):
        resize = result.first_failure
        assert resize.stage == "resize" and resize.diagnosis.kinds == ("resize_filter",)
        [cause] = resize.diagnosis.causes
        assert cause.advice.argument == "subpixel_scale" and cause.advice.where.startswith("usual.py:")
        assert cause.evidence.residual_beyond <= cause.evidence.allowed_beyond  # the filter model explains it
        final = result.stages[-1].diagnosis  # names nothing of its own: no filter guessed after a rescale
        assert (final.kinds, final.follows_from) == ((), "resize")
    spec = write_pipeline(tmp_path, IMAGENET_DALI.format(extra=", subpixel_scale=False"), "fixed")
    cfg = write_config(tmp_path, pipeline=spec, input_format="encoded", reference=reference)
    for result in check_preprocessing_parity(cfg, landscape):
        assert [r.status for r in result.stages] == ["passed", "passed", "failed"]  # the resize is fixed
        [cause] = result.stages[-1].diagnosis.causes
        assert cause.kind == "offset" and abs(cause.evidence.params["dy"]) == 1 and cause.evidence.params["dx"] == 0
        assert cause.advice.argument == "crop_pos_y" and cause.advice.where.startswith("fixed.py:")


def test_normalization_constants_for_0_1_input_are_named_behind_a_resize_and_crop_difference(tmp_path):
    """Two mistakes in the usual pipeline: the resize differs (a geometry divergence) and the ImageNet
    constants are the 0..1 ones. The model input names both, the value mistake measured from DALI's own
    resize output through crop_mirror_normalize's window."""
    body = IMAGENET_DALI.format(extra="").replace("mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]",
                                                  "mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]")
    cfg = write_config(tmp_path, pipeline=write_pipeline(tmp_path, body, "both"), input_format="encoded",
                       reference=dict(config="mmpretrain::resnet/resnet50_8xb32_in1k.py"))
    for result in check_preprocessing_parity(cfg, [IMAGES / "coffee.png", IMAGES / "rocket.png"]):
        assert result.first_failure.stage == "resize"
        assert result.cause_kinds[:2] == ("resize_filter", "normalized_0_1_input")
        own = result.stages[-1].diagnosis.causes[0]
        assert "fitted against DALI's own resize output" in own.evidence.model
        assert own.confidence == "exact" and own.evidence.residual_max < 1e-3
        assert own.advice.value == "mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]"
        assert own.advice.where.startswith("both.py:")


FLOAT16_DALI = """
    images = fn.resize(fn.external_source(name="INPUT"), resize_shorter=384, max_size=512, subpixel_scale=False)
    images = fn.crop(images, crop=(512, 384), crop_pos_x=0.499, crop_pos_y=0.499, out_of_bounds_policy="pad")
    images = fn.color_space_conversion(images, image_type=types.BGR, output_type=types.RGB)
    return fn.crop_mirror_normalize(images, dtype=types.FLOAT16, output_layout="CHW",
                                    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
"""


def _float16_model(path):
    """The known-answer classifier taking a float16 input (a Cast in front of it), as a float16 export does."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(ROOT / "fixtures" / "model" / "build" / "known_answer.onnx"))
    graph_input = model.graph.input[0]
    name = graph_input.name
    graph_input.name = f"{name}_fp16"
    graph_input.type.tensor_type.elem_type = TensorProto.FLOAT16
    model.graph.node.insert(0, helper.make_node("Cast", [graph_input.name], [name], to=TensorProto.FLOAT))
    onnx.save(model, str(path))
    return path


def test_a_float16_model_input_passes_only_when_the_deployed_model_takes_float16(tmp_path):
    """The dtype policy (docs/diagnosis.md): values within tolerance in float16 are what a float16 model needs;
    without a model that says so, the dtype is the cause."""
    from parity import Harness, load_config
    from parity.images import client_input

    cfg = load_config(write_config(tmp_path, pipeline=write_pipeline(tmp_path, FLOAT16_DALI), input_format="BGR"))
    [result] = Harness(cfg).run([IMAGES / "astronaut.png"])
    final = result.stages[-1]
    assert final.status == "failed" and final.mismatched == 0  # the values are right ...
    [cause] = final.diagnosis.causes  # ... the dtype alone fails it
    assert cause.kind == "dtype" and cause.evidence.params == {"dali": "float16", "model": "float32"}

    seed = load_config(SEED / "parity_corrected.py")
    cfg.model = dataclasses.replace(seed.model, onnx=str(_float16_model(tmp_path / "fp16.onnx")), reference_model=False)
    harness = Harness(cfg)
    assert harness.model.input_dtype == np.float16
    reference = harness.reference.run(IMAGES / "astronaut.png")
    [out] = harness.dali.run_each([client_input(reference[0].array, reference[0].channels, IMAGES / "astronaut.png",
                                                "BGR")], [str(IMAGES / "astronaut.png")])
    final = harness.compare("astronaut", reference, out)[-1]
    assert final.status == "passed", final.message()
    assert any("float16, which the deployed model takes" in note for note in final.notes)


HRNET_MEAN_STD = "mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]"
WRONG_DIAGNOSES = {
    # the crop fused into crop_mirror_normalize pads after normalizing: its 0 is the mean colour, not black
    "fused_crop_pad": (f"""
        images = fn.resize(fn.external_source(name="INPUT"), size=(512, 384), mode="not_larger")
        images = fn.color_space_conversion(images, image_type=types.BGR, output_type=types.RGB)
        return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW", crop=(512, 384),
                                        out_of_bounds_policy="pad", {HRNET_MEAN_STD})
    """, ("pad_value",)),
    # resize_x/resize_y truncated where MMCV rounds: one pixel short, with a filter that matches exactly
    "size_truncated": (f"""
        from nvidia.dali import math as dmath
        images = fn.external_source(name="INPUT")
        shape = images.shape(dtype=types.FLOAT)
        scale = dmath.min(512.0 / shape[0], 384.0 / shape[1])
        images = fn.resize(images, resize_y=dmath.floor(shape[0] * scale), resize_x=dmath.floor(shape[1] * scale))
        images = fn.crop(images, crop=(512, 384), out_of_bounds_policy="pad")
        images = fn.color_space_conversion(images, image_type=types.BGR, output_type=types.RGB)
        return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW", {HRNET_MEAN_STD})
    """, ("size_rounding",)),
    # a crop anchor off the centre and a mean without its std: two mistakes, the second is no filter
    "offset_and_mean_without_std": ("""
        images = fn.resize(fn.external_source(name="INPUT"), size=(512, 384), mode="not_larger")
        images = fn.crop(images, crop=(512, 384), out_of_bounds_policy="pad", crop_pos_y=0.45)
        images = fn.color_space_conversion(images, image_type=types.BGR, output_type=types.RGB)
        return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW",
                                        mean=[123.675, 116.28, 103.53])
    """, ("offset", "wrong_normalization")),
}


@pytest.mark.parametrize("name", sorted(WRONG_DIAGNOSES))
def test_diagnoses_once_given_without_evidence_now_name_only_what_explains_them(tmp_path, name):
    """Each of these once also got "interpolation" (most likely a different resize filter) appended, or instead."""
    body, kinds = WRONG_DIAGNOSES[name]
    spec = write_pipeline(tmp_path, body, name)
    cfg = write_config(tmp_path, pipeline=spec, input_format="BGR")
    odd = ROOT / "fixtures" / "zoo" / "images" / "odd_size.png"
    [result] = check_preprocessing_parity(cfg, [odd if name == "size_truncated" else IMAGES / "astronaut.png"])
    assert result.cause_kinds == kinds, [r.message() for r in result.stages if r.status == "failed"]
    for stage in result.stages:
        if stage.status == "failed" and stage is not result.first_failure and not stage.diagnosis:
            assert stage.diagnosis.follows_from == result.first_failure.stage  # later stages say where from
        for cause in stage.diagnosis.causes if stage.diagnosis else ():
            assert cause.evidence is not None and (cause.evidence.limit is None or
                                                   cause.evidence.residual_beyond <= cause.evidence.allowed_beyond)


@pytest.mark.slow
def test_the_first_line_names_image_stage_and_cause_and_the_answers_are_its_consequence():
    """The seed: pytest's short summary and JUnit's message show the cause; the model item says it follows."""
    from parity import load_config
    from parity.run.run import Run

    run = Run(load_config(SEED / "parity_deployed.py"))
    result, _ = run.stream([IMAGES / "astronaut.png", IMAGES / "coffee.png"])
    final = result.stages[-1]
    assert final.diagnosis.primary.kind == "missing_normalization"
    assert final.headline == f"astronaut: model_input: {final.diagnosis.primary.finding}"
    assert final.headline.startswith("astronaut: model_input: DALI output is the un-normalized image (values 0..255")
    assert final.message().splitlines()[0] == final.headline
    headline, *fixes, statistics = final.short_message().splitlines()  # every cause's change, then the numbers
    assert headline == final.headline
    assert fixes == [f"{c.kind}: {c.advice}" for c in final.diagnosis.causes]
    assert [c.kind for c in final.diagnosis.causes] == ["missing_normalization", "channel_order", "layout"]
    assert statistics.startswith("Mismatched elements: 589824 / 589824 (100.0%); greatest absolute difference")
    assert result.model.status == "failed" and result.model.consequence_of == "model_input divergence on astronaut"
    assert result.model.message().splitlines()[0] == \
        f"astronaut: {result.model.backend}: consequence of the model_input divergence on astronaut"
    collapse = run.degenerate()  # the outputs collapse across images: that, too, follows from preprocessing
    assert collapse.status == "failed" and collapse.consequence_of == "model_input divergence on astronaut and 1 " \
                                                                      "more image"
    assert collapse.message().splitlines()[0] == f"degenerate: consequence of the {collapse.consequence_of}"
    run.close()


def test_a_cause_is_written_to_json_field_by_field():
    import json

    from parity.results.records import cause_record, plain

    pixels = _textured()
    [cause] = diagnose_arrays(pixels, (pixels - M) / S, NORMALIZED, mean=MEAN, std=STD).causes
    record = json.loads(json.dumps(cause_record(cause), default=plain))
    assert (record["kind"], record["confidence"], record["advice"]["argument"]) == \
        ("missing_normalization", "exact", "mean/std")
    assert record["evidence"]["limit"] == pytest.approx(NORMALIZED.atol)
    assert record["evidence"]["params"]["effective_std"] == pytest.approx([1, 1, 1])
    assert record["finding"] == cause.finding and record["sentence"] == cause.sentence


_LUMA = np.array([0.299, 0.587, 0.114])[:, None, None]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pixels=pixel_images(), gain=st.floats(1.15, 1.8), offset=st.floats(-20, 20))
def test_a_gain_that_clips_at_255_is_named_with_its_gain(pixels, gain, offset):
    """brightness/contrast left on: where clipping at 255 is common, the per-channel affine fit cannot express
    it and the clipped gain is named with its gain recovered; where it is rare, a gain is indistinguishable
    from another normalization within tolerance, and either may be named, with its evidence."""
    bright = np.clip(pixels * gain + offset, 0, 255).round()
    if np.all((bright > 0) & (bright < 255), axis=0).sum() < 300:
        return  # too few pixels left unclipped on every channel to fit a colour transform (it needs 256)
    diagnosis = diagnose_arrays((bright - M) / S, (pixels - M) / S, NORMALIZED, mean=MEAN, std=STD)
    if not diagnosis.causes and diagnosis.unexplained is None:
        return  # within tolerance after all
    if diagnosis.kinds == ("wrong_normalization",) and np.mean(bright >= 255) < 0.05:
        assert diagnosis.causes[0].evidence.residual_beyond <= NORMALIZED.max_mismatch
        return
    assert diagnosis.kinds == ("brightness_contrast",), str(diagnosis)
    matrix = diagnosis.causes[0].evidence.params["matrix"]
    assert np.allclose(np.diag(matrix), gain, atol=0.02)
    assert diagnosis.causes[0].evidence.residual_beyond <= NORMALIZED.max_mismatch


def test_a_gain_that_never_clips_on_a_pixel_stage_is_a_brightness_change():
    """fn.brightness_contrast(brightness=1.25) on a photo that has no value above 204: the per-channel affine
    fit explains it, and on pixel levels that is a brightness/contrast change, named with its gain (not the
    bare "a * reference + b" of a stage whose mean/std are unknown)."""
    trial = recovery.trial("gain", 1.25, "chelsea.png")
    assert trial.kinds == ("brightness_contrast",) and trial.recovered, trial


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pixels=pixel_images(), saturation=st.floats(0.2, 0.85), bgr=st.booleans())
def test_a_saturation_change_is_named_with_its_factor(pixels, saturation, bgr):
    """fn.saturation keeps the luma and scales the colours towards it; on BGR data taken for RGB the weights
    come reversed: either way the factor is recovered and nothing else is named."""
    luma = _LUMA[::-1] if bgr else _LUMA
    grey = (pixels * luma).sum(0, keepdims=True)
    changed = np.clip(grey + saturation * (pixels - grey), 0, 255).round()
    if pixels.shape[1] * pixels.shape[2] < 256 or float(np.abs(pixels - grey).mean()) < 10:
        return  # too few pixels, or too little colour, to tell a saturation change
    diagnosis = diagnose_arrays((changed - M) / S, (pixels - M) / S, NORMALIZED, mean=MEAN, std=STD)
    if not diagnosis.causes and diagnosis.unexplained is None:
        return
    assert diagnosis.kinds == ("color_transform",), str(diagnosis)
    assert abs(diagnosis.causes[0].evidence.params["saturation"] - saturation) < 0.03, str(diagnosis)


@pytest.mark.slow
def test_dali_saturation_and_brightness_left_in_the_pipeline_are_named(tmp_path):
    body = ("    x = fn.resize(x, size=(512, 384), mode='not_larger')\n"
            "    x = fn.crop(x, crop=(512, 384), out_of_bounds_policy='pad')\n"
            "    x = {}\n"
            "    x = fn.color_space_conversion(x, image_type=types.BGR, output_type=types.RGB)\n"
            "    return fn.crop_mirror_normalize(x, dtype=types.FLOAT, output_layout='CHW', "
            "mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])\n")
    for op, kind, said in (("fn.saturation(x, saturation=0.6)", "color_transform", "saturation x 0.6"),
                           ("fn.brightness_contrast(x, brightness=1.3)", "brightness_contrast", "a brightness/contrast change")):
        (tmp_path / "pipe.py").write_text(
            "from nvidia.dali import fn, pipeline_def, types\n\n@pipeline_def(batch_size=2, num_threads=1, "
            "device_id=0)\ndef f():\n    x = fn.external_source(name='INPUT_PREPROCESS', layout='HWC')\n"
            + body.format(op))
        cfg = tmp_path / "parity_cfg.py"
        cfg.write_text(f"reference = dict(config='{SEED / 'hrnet_w30_512x384.py'}')\n"
                       f"images = ['{IMAGES / 'astronaut.png'}']\ndali = dict(pipeline='pipe.py:f', "
                       "input_name='INPUT_PREPROCESS')\n")
        [result] = check_preprocessing_parity(cfg)
        final = result.stages[-1]
        assert final.diagnosis.kinds == (kind,) and said in final.headline, final.headline


@pytest.mark.slow
def test_a_rotation_in_the_pipeline_is_named_on_square_and_portrait_images(tmp_path):
    """fn.rotate(angle=90) before the resize: on a square photo the turned image matches; on a portrait one the
    output has the input's aspect transposed, and the pixels, turned back, match the reference's."""
    (tmp_path / "pipe.py").write_text(
        "from nvidia.dali import fn, pipeline_def, types\n\n@pipeline_def(batch_size=2, num_threads=1, device_id=0)\n"
        "def f():\n    x = fn.external_source(name='INPUT_PREPROCESS', layout='HWC')\n"
        "    x = fn.rotate(x, angle=90)\n    x = fn.resize(x, size=(512, 384), mode='not_larger')\n"
        "    x = fn.crop(x, crop=(512, 384), out_of_bounds_policy='pad')\n"
        "    x = fn.color_space_conversion(x, image_type=types.BGR, output_type=types.RGB)\n"
        "    return fn.crop_mirror_normalize(x, dtype=types.FLOAT, output_layout='CHW', "
        "mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])\n")
    cfg = tmp_path / "parity_cfg.py"
    images = [str(IMAGES / "astronaut.png"), str(IMAGES / "coffee.png")]
    cfg.write_text(f"reference = dict(config='{SEED / 'hrnet_w30_512x384.py'}')\nimages = {images!r}\n"
                   "dali = dict(pipeline='pipe.py:f', input_name='INPUT_PREPROCESS')\n")
    for result in check_preprocessing_parity(cfg):
        first = result.first_failure
        assert first.stage == "resize" and first.diagnosis.kinds == ("orientation",), first.headline
        assert "an operator turns it" in first.headline or "turned by 90 degrees before it is resized" in first.headline


FAMILY_DRAWS = {  # one draw per family: parameters drawn over each family's whole range
    "translation": st.tuples(st.integers(0, 32), st.integers(0, 32)).filter(lambda a: a != (16, 16)),
    "zoom": st.floats(1.1, 2.5),
    "zoom out": st.floats(0.5, 0.9),
    "blur": st.floats(0.6, 3.0),
    "hue": st.one_of(st.floats(-60, -8), st.floats(8, 60)),
    "gain": st.floats(1.2, 1.8),
    "rotation": st.sampled_from([90.0, 180.0, 270.0]),
}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), family=st.sampled_from(sorted(FAMILY_DRAWS)), photo=st.sampled_from(recovery.PHOTOS))
def test_a_mistake_applied_by_a_dali_operator_is_named_with_its_parameter(data, family, photo):
    """fn.slice elsewhere, fn.warp_affine zooming in or out, fn.gaussian_blur, fn.hsv, fn.brightness_contrast or
    fn.rotate on an otherwise exact stage: its family's cause alone is named, the parameter recovered within the
    stated bound."""
    value = data.draw(FAMILY_DRAWS[family])
    trial = recovery.trial(family, value, photo)
    assert trial.failed and trial.kinds == recovery.FAMILIES[family].kinds, trial
    if family != "gain":  # a gain clipping much of a bright sky may leave its fitted gain beyond the bound
        assert trial.recovered, trial


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(anchor=FAMILY_DRAWS["translation"], gain=st.floats(1.2, 1.6), photo=st.sampled_from(recovery.PHOTOS))
def test_a_window_placed_elsewhere_and_brightened_is_named_as_both_mistakes(anchor, gain, photo):
    """fn.slice elsewhere, then fn.brightness_contrast: neither mistake alone explains the stage; the shift is
    registered on the image's structure, undone, and the gain fitted on the overlap. Both are named, each with
    its parameter, and the evidence of both is the residual left once both are undone."""
    trial = recovery.trial("translation + gain", (anchor, gain), photo)
    assert trial.kinds == ("offset", "brightness_contrast") and trial.recovered, trial


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(factor=FAMILY_DRAWS["zoom"], gain=st.floats(1.2, 1.4), photo=st.sampled_from(recovery.PHOTOS))
def test_a_zoomed_and_brightened_stage_is_named_as_both_mistakes(factor, gain, photo):
    """fn.warp_affine zooming, then fn.brightness_contrast: the zoom is searched on differences a gain leaves alone,
    the reference magnified onto DALI's frame, the gain fitted there and judged as the zoom is (both smoothed). Gains
    that clip much of a bright photo are recovered less often (docs/diagnosis.md's table draws up to 1.8)."""
    trial = recovery.trial("zoom + gain", (factor, gain), photo)
    assert trial.kinds == ("zoom", "brightness_contrast") and trial.recovered, trial


@pytest.mark.parametrize("photo", recovery.PHOTOS)
def test_a_blur_on_top_of_a_zoom_is_never_named_a_colour_change(photo):
    """A zoom is judged through a 13x13 box, which hides most of a blur and leaves a slightly lower contrast: that is
    not evidence of a brightness change. The zoom alone is named, or nothing (docs/diagnosis.md, Limits)."""
    from scipy.ndimage import gaussian_filter

    image = recovery.photo(photo)
    zoomed = recovery.dali_stage("zoom", image, 1.3)
    blurred = np.stack([gaussian_filter(c.astype(np.float64), 1.0) for c in zoomed]).round().clip(0, 255)
    diagnosis = diagnose_arrays(blurred.astype(np.uint8), recovery.reference_stage(image), recovery.PIXELS)
    assert diagnosis.kinds in (("zoom",), ()), str(diagnosis)
    assert diagnosis.causes or diagnosis.unexplained is not None  # still a failure, never a pass


@pytest.mark.slow
def test_the_recovery_table_in_the_docs_is_what_the_seeded_draws_give():
    page = (ROOT / "docs" / "diagnosis.md").read_text()
    assert recovery.table(recovery.trials(recovery.PER_FAMILY)) in page, \
        "docs/diagnosis.md is behind: python benchmarks/diagnosis_recovery.py --markdown > d.md && mv d.md docs/diagnosis.md"


@pytest.mark.parametrize("picked", [(0, 1, 0), (2, 1, 2), (0, 0, 2), (1, 1, 2)])
def test_a_channel_copied_over_another_is_named_with_the_channels_it_holds(picked):
    """A channel slice or concatenation with a wrong index repeats one channel in place of another: no permutation
    and no mixing explain it, the 3x3 colour fit does, and each channel's source is named."""
    pixels = np.clip(_textured(), 0, 255).round()
    diagnosis = diagnose_arrays(pixels[list(picked)], pixels, PIXELS)
    [cause] = diagnosis.causes
    assert cause.kind == "color_transform" and "a channel copied over another" in cause.finding, str(diagnosis)
    assert tuple(cause.evidence.params["channels"]) == picked
    assert cause.evidence.residual_beyond <= PIXELS.max_mismatch


@pytest.mark.parametrize("family, value, turn, kinds", [
    ("blur", 1.5, lambda x: x[:, :, ::-1], ("flip", "spatial_filter")),
    ("hue", 30.0, lambda x: np.rot90(x, 1, (1, 2)), ("orientation", "color_transform")),
    ("gain", 1.4, lambda x: x[:, ::-1], ("flip", "brightness_contrast")),
])
def test_a_turned_or_mirrored_image_with_a_colour_change_or_a_blur_is_named_as_both(family, value, turn, kinds):
    """fn.gaussian_blur, fn.hsv or fn.brightness_contrast on DALI's stage, then a mirror or a turn: undone, the
    geometry leaves what the photometric model explains, and both are named with the residual left by both."""
    image = recovery.photo("chelsea.png")
    dali = np.ascontiguousarray(turn(recovery.dali_stage(family, image, value)))
    diagnosis = diagnose_arrays(dali, recovery.reference_stage(image), recovery.PIXELS)
    assert diagnosis.kinds == kinds, str(diagnosis)
    geometric, photometric = diagnosis.causes
    assert recovery.recovered(family, value, (photometric,)), photometric.evidence
    assert geometric.evidence.residual_beyond == photometric.evidence.residual_beyond <= recovery.PIXELS.max_mismatch
