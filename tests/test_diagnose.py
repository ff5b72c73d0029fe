"""A mismatch is explained: which cause, with the numbers behind it; a correct pipeline raises no alarm."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity import assert_stage_close, check_preprocessing_parity
from parity.compare import compare_arrays
from parity.config import Tolerance
from parity.diagnose import diagnose_shapes, diagnose_values

from .conftest import IMAGES, MEAN, SEED, STD, save_rgb, write_config, write_pipeline

M, S = np.array(MEAN)[:, None, None], np.array(STD)[:, None, None]


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
    diagnosis = diagnose_values(dali, reference, mean=MEAN, std=STD, to_rgb=True)
    expected = {bug} | ({"channel_order"} if swap else set())
    if swap and bug == "mean_std_channel_order":
        # reversed constants on reversed channels is the same tensor as unconverted BGR with the right
        # constants: one mistake, the channel order, explains it
        expected = {"channel_order"}
    assert set(diagnosis.kinds) == expected, str(diagnosis)


@pytest.mark.parametrize("transform, kind", [
    (lambda r: np.roll(r, 1, axis=1), "offset"),
    (lambda r: np.roll(r, -2, axis=2), "offset"),
    (lambda r: r[:, :, ::-1], "flip"),
])
def test_geometry_slips_are_found_by_search(transform, kind):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:48]
    pixels = np.stack([np.sin(x / 5) * 100 + 120 + y, np.cos(y / 7) * 90 + 120, (x * y) % 200 + 20.0])
    pixels = pixels + rng.normal(0, 3, pixels.shape)
    reference = (pixels - M) / S
    diagnosis = diagnose_values(transform(reference), reference, mean=MEAN, std=STD)
    assert diagnosis.kinds == (kind,), str(diagnosis)


def test_shape_mismatches_say_layout_or_swapped_sizes():
    assert diagnose_shapes((512, 384, 3), (3, 512, 384), "HWC").kinds == ("layout",)
    assert diagnose_shapes((3, 384, 512), (3, 512, 384), "CHW").kinds == ("size_swapped",)
    assert diagnose_shapes((3, 256, 384), (3, 341, 512), "CHW").kinds == ("size",)


def test_assert_stage_close_reads_like_torch_testing():
    expected = np.zeros((3, 4, 5), np.float32)
    actual = expected.copy()
    actual[1, 2, 3] = 0.5
    with pytest.raises(AssertionError) as excinfo:
        assert_stage_close(actual, expected, atol=0.1, stage="normalize")
    text = str(excinfo.value)
    assert "Mismatched elements: 1 / 60 (1.7%)" in text
    assert "Greatest absolute difference: 0.5 at index (1, 2, 3) (up to 0.1 allowed)" in text
    assert "(1, 2, 3)         | 0.5         | 0" in text
    assert assert_stage_close(actual, expected, atol=0.1, max_mismatch=0.02).passed


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
    from parity.diagnose import resize_filter_cause

    cv2_edge = dict(type="ResizeEdge", scale=256, edge="short")  # backend cv2, bilinear: no antialiasing
    cause = resize_filter_cause({"resize_shorter": 256.0}, cv2_edge)
    assert cause.kind == "resize_filter" and "set antialias=False (DALI antialiases by default" in cause.sentence
    pillow = dict(type="Resize", scale=(384, 512), keep_ratio=True, backend="pillow", interpolation="bicubic")
    cause = resize_filter_cause({"interp_type": 1}, pillow)
    assert "interp_type=types.INTERP_CUBIC (DALI uses INTERP_LINEAR)" in cause.sentence
    assert resize_filter_cause({"antialias": False}, cv2_edge) is None  # nothing to change


def test_a_one_pixel_size_difference_is_called_rounding():
    diagnosis = diagnose_shapes((256, 385, 3), (256, 384, 3), "HWC", ref_layout="HWC", input_hw=(300, 451))
    assert diagnosis.kinds == ("size_rounding",)
    assert "ResizeEdge truncates" in str(diagnosis)


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
        assert "set subpixel_scale=False (DALI keeps one exact scale" in resize.diagnosis.causes[0].sentence
    spec = write_pipeline(tmp_path, IMAGENET_DALI.format(extra=", subpixel_scale=False"), "fixed")
    cfg = write_config(tmp_path, pipeline=spec, input_format="encoded", reference=reference)
    for result in check_preprocessing_parity(cfg, landscape):
        assert [r.status for r in result.stages] == ["passed", "passed", "failed"]  # the resize is fixed
        [cause] = result.stages[-1].diagnosis.causes
        assert cause.kind == "offset" and cause.numbers["dy"] and "Fix at fixed.py:" in cause.sentence
        assert "crop window is 1 row off the reference's" in cause.sentence and "parity suggest" in cause.sentence


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
        assert own.sentence.startswith("Measured from DALI's own resize output to its model input")
        assert "set mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]" in own.sentence
