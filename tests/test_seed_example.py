"""The story that created parity: HRNet-W30 deployed behind a DALI pipeline that never normalized."""

import re
from pathlib import Path

import numpy as np
import pytest

from parity import assert_preprocessing_parity, check_preprocessing_parity

from .conftest import MEAN, SEED, STD


def _by_stage(image_result):
    return {r.stage: r for r in image_result.stages}


@pytest.mark.slow
def test_deployed_pipeline_fails_only_at_the_model_input_and_names_missing_normalization():
    results = check_preprocessing_parity(SEED / "parity_deployed.py")
    assert len(results) == 8
    for image in results:
        stages = _by_stage(image)
        # geometry was right: resize and crop agree with MMCV/torchvision within a few levels
        assert [stages[s].status for s in ("input", "resize", "crop")] == ["passed"] * 3
        assert stages["crop"].max_abs <= 3
        final = stages["model_input"]
        assert final.status == "failed"
        assert final.mismatch_fraction > 0.9
        # value ranges: DALI 0..255, reference standardized around 0
        assert max(c.max for c in final.dali_channels) > 200
        assert all(-2.2 < c.min < 0 and 0 < c.max < 2.7 for c in final.ref_channels)
        assert set(final.diagnosis.kinds) == {"missing_normalization", "channel_order", "layout"}
        cause = next(c for c in final.diagnosis.causes if c.kind == "missing_normalization")
        np.testing.assert_allclose(cause.numbers["effective_std"], 1.0, atol=0.05)
        message = final.message()
        assert "un-normalized" in message and "BGR vs RGB" in message
        assert "Layout mismatch: DALI emits HWC" in message
        assert "earlier stages matched: input, resize, crop" in message
        # where to add the missing operator, and a fix command that runs from here
        assert "(RGB order) after deployed_pipeline.py:9: images = fn.crop(" in cause.sentence
        typed = re.search(r"Fix: `parity suggest (\S+)`", message).group(1)
        assert (Path.cwd() / typed).resolve() == (SEED / "parity_deployed.py").resolve()


@pytest.mark.slow
def test_the_proposed_fix_mean_0_stddev_255_still_fails():
    results = check_preprocessing_parity(SEED / "parity_proposed_fix.py")
    for image in results:
        final = _by_stage(image)["model_input"]
        assert final.status == "failed"
        assert set(final.diagnosis.kinds) == {"scaled_0_1", "channel_order", "layout"}
        cause = next(c for c in final.diagnosis.causes if c.kind == "scaled_0_1")
        np.testing.assert_allclose(cause.numbers["effective_std"], 255, rtol=0.02)
        np.testing.assert_allclose(cause.numbers["std"], STD)
        np.testing.assert_allclose(cause.numbers["mean"], MEAN)
        # and it says what to write instead, at the line that is wrong
        assert ("Fix at proposed_fix_pipeline.py:11: images = fn.normalize(images, mean=0, stddev=255, "
                "device=\"gpu\"): it applies one mean [0] and stddev [255] to every channel; replace it with "
                "fn.crop_mirror_normalize(dtype=types.FLOAT, mean=[123.675, 116.28, 103.53], "
                "std=[58.395, 57.12, 57.375]) for RGB data (the data reaching it is BGR: convert the channels "
                "first).") in cause.sentence


@pytest.mark.slow
def test_the_corrected_pipeline_passes_every_stage():
    results = assert_preprocessing_parity(SEED / "parity_corrected.py")
    finals = [_by_stage(r)["model_input"] for r in results]
    assert all(f.status == "passed" for f in finals)
    # within 3 uint8 levels everywhere and far below one level on average (normalized units / std)
    assert max(f.max_abs for f in finals) <= 3 / min(STD)
    assert max(f.mean_abs for f in finals) < 0.25 / min(STD)


def test_assertion_message_names_the_failing_images_and_cause():
    with pytest.raises(AssertionError) as excinfo:
        assert_preprocessing_parity(SEED / "parity_deployed.py", images=[SEED.parent / "images" / "astronaut.png"])
    text = str(excinfo.value)
    assert text.startswith("Preprocessing parity failed for 1 of 1 images (astronaut).")
    assert "stage 'model_input'" in text and "Mismatched elements: 589824 / 589824 (100.0%)" in text


LANDSCAPE = sorted((SEED.parent / "landscape").glob("*.png"))


@pytest.mark.slow
def test_landscape_photos_show_the_deployed_pipelines_second_bug_and_the_corrected_one_passes():
    """MMCV fits the short edge to 384 and the long one to at most 512 in any orientation; the deployed
    not_larger box (512, 384) is portrait. The corrected pipeline passes every stage on landscape photos
    and a 3:1 panorama too."""
    assert [p.stem for p in LANDSCAPE] == ["chelsea_wide", "coffee_wide", "hubble_panorama", "rocket_wide"]
    for image in check_preprocessing_parity(SEED / "parity_deployed.py", LANDSCAPE):
        resize = _by_stage(image)["resize"]
        assert image.first_failure is resize and resize.diagnosis.kinds[0] == "size"
        assert "Both keep the aspect ratio but scale differently" in resize.message()
    corrected = assert_preprocessing_parity(SEED / "parity_corrected.py", LANDSCAPE)
    assert all(r.status == "passed" for image in corrected for r in image.stages)
