"""The bug zoo: every broken pipeline fails and is named for its real cause; correct ones pass.

Figures for the whole zoo: `python benchmarks/zoo_figures.py`.
"""

import pytest

from parity import check_preprocessing_parity
from parity.engine import Harness
from tests.zoo import ZOO, manifest, run_entry, zoo_config

from .conftest import IMAGES, write_config, write_pipeline

CORRECT, BROKEN = manifest()


@pytest.mark.parametrize("name", CORRECT)
def test_correct_pipelines_raise_no_alarm(name):
    outcome = run_entry(name, None)
    assert outcome.failed_images == [], outcome.named


@pytest.mark.parametrize("name, cause", sorted(BROKEN.items()))
def test_broken_pipeline_is_detected_and_its_cause_named(name, cause):
    outcome = run_entry(name, cause)
    assert outcome.detected, f"{name} passed on every image"
    wrong = {image: kinds for image, kinds in outcome.named.items() if cause not in kinds}
    assert not wrong, f"{name}: expected {cause!r}, got {wrong}"
    # one mistake, one cause: nothing else is blamed
    assert {k for kinds in outcome.named.values() for k in kinds} == {cause}


def test_the_zoo_covers_the_deployment_bugs_users_report():
    assert len(BROKEN) >= 15 and len(CORRECT) >= 3
    assert {"missing_normalization", "scaled_0_1", "channel_order", "layout", "pad_side", "stretch",
            "grayscale", "mean_std_channel_order", "dtype", "resize_edge"} <= set(BROKEN.values())


@pytest.mark.parametrize("name, has, fix", [
    ("mean_std_in_bgr_order", "it has mean=[103.53, 116.28, 123.675], std=[57.375, 57.12, 58.395]",
     "set mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375] (RGB order)"),
    ("imagenet_0_1_constants", "it has mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]",
     "set mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375] (RGB order)"),
])
def test_wrong_normalization_constants_are_pointed_at_the_argument_to_change(name, has, fix):
    [result] = Harness(zoo_config(name)).run([ZOO.parent / "images" / "astronaut.png"])
    [cause] = result.first_failure.diagnosis.causes
    # both pipelines normalize through the zoo's _normalize helper: its crop_mirror_normalize line is named
    line = next(n for n, text in enumerate((ZOO / "pipelines.py").read_text().splitlines(), 1)
                if "mean=mean, std=std, **kwargs)" in text)
    assert f"Fix at pipelines.py:{line}:" in cause.sentence
    assert has in cause.sentence and fix in cause.sentence, cause.sentence


@pytest.mark.parametrize("name, split, fix", [
    ("pad_bottom_right", (0, 128), "it has crop_pos_y=0; set crop_pos_y=0.5 (or leave it out) to centre like the "
                                   "reference."),
    ("crop_offset", (63, 65), "it has crop_pos_y=0.49; set crop_pos_y=0.5 (or leave it out) to centre like the "
                              "reference."),
])
def test_a_misplaced_crop_is_pointed_at_its_crop_pos_even_on_a_flat_image(name, split, fix):
    """On 'flat' (one colour) the image's own edge looks like padding; only the fill both sides share counts."""
    for image in ("astronaut", "flat"):
        [result] = Harness(zoo_config(name)).run([ZOO.parent / "images" / f"{image}.png"])
        [cause] = result.first_failure.diagnosis.causes
        assert cause.numbers["dali"] == split and cause.numbers["reference"] == (64, 64)
        assert "Fix at pipelines.py:16: return fn.crop(" in cause.sentence and fix in cause.sentence, cause.sentence


COMPOUND = {
    "off_centre_pad_and_no_normalization": ("""
        images = fn.resize(fn.external_source(name="INPUT"), size=(512, 384), mode="not_larger")
        images = fn.crop(images, crop=(512, 384), out_of_bounds_policy="pad", crop_pos_y=0.0)
        images = fn.color_space_conversion(images, image_type=types.BGR, output_type=types.RGB)
        return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW")
    """, ("missing_normalization", "pad_side")),
    "stretch_and_mean_std_in_bgr_order": ("""
        images = fn.resize(fn.external_source(name="INPUT"), size=(512, 384))
        images = fn.color_space_conversion(images, image_type=types.BGR, output_type=types.RGB)
        return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW",
                                        mean=[103.53, 116.28, 123.675], std=[57.375, 57.12, 58.395])
    """, ("mean_std_channel_order", "stretch")),
    "bicubic_and_scaled_0_1": ("""
        images = fn.resize(fn.external_source(name="INPUT"), size=(512, 384), mode="not_larger",
                           interp_type=types.INTERP_CUBIC)
        images = fn.crop(images, crop=(512, 384), out_of_bounds_policy="pad")
        return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW", std=[255.0, 255.0, 255.0])
    """, ("scaled_0_1", "channel_order", "interpolation")),
}


@pytest.mark.parametrize("name", sorted(COMPOUND))
def test_a_value_mistake_behind_a_geometry_mistake_is_named_too(tmp_path, name):
    """The geometry diverges first; the model input names the value mistake as well, measured from DALI's own
    last pixel stage (same geometry), with the geometry cause after it."""
    body, kinds = COMPOUND[name]
    cfg = write_config(tmp_path, pipeline=write_pipeline(tmp_path, body, name), input_format="BGR")
    [result] = check_preprocessing_parity(cfg, [IMAGES / "astronaut.png"])
    final = result.stages[-1]
    assert result.first_failure is not final and final.diagnosis.kinds == kinds, final.diagnosis
    assert "Measured from DALI's own" in final.diagnosis.causes[0].sentence
    # the image's summary (CLI line, report row) names both mistakes, the first divergence's first
    assert result.cause_kinds[0] == result.first_failure.diagnosis.kinds[0] and set(kinds) <= set(result.cause_kinds)
