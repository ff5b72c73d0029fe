"""assert_stage_close from a user's own test suite: their arrays or tensors, their layout, their words."""

import numpy as np
import pytest

from parity import ParityUsageError, assert_stage_close
from parity.api import LayoutError

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def _photo(h=32, w=40, seed=0) -> np.ndarray:
    """An (H, W, 3) textured image in 0..255."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 5.0, y * 6.0, (x + y) * 3.0], -1)
    return np.clip(base + rng.uniform(0, 40, (h, w, 3)), 0, 255)


def test_hwc_arrays_are_read_as_hwc_and_the_missing_normalization_is_named_first():
    """An (H, W, 3) pair: the channel axis is the last one, so the fit runs per colour channel (not per row)."""
    pixels = _photo()
    expected = (pixels - MEAN) / STD
    with pytest.raises(AssertionError) as excinfo:
        assert_stage_close(pixels, expected, atol=0.05, mean=MEAN, std=STD, name="normalized crop")
    first, *rest = str(excinfo.value).splitlines()
    assert first.startswith("normalized crop: Actual output is the un-normalized image (values 0..255")
    text = str(excinfo.value)
    assert "DALI" not in text and "reference" not in text  # the caller's words: actual, expected
    assert "Channel  | actual min / max / mean" in text and "\n3 " not in text  # three channel rows, not 32


def test_layout_is_inferred_only_when_one_axis_can_hold_channels():
    square = np.zeros((3, 8, 3), np.float32)  # channels first or last?
    with pytest.raises(LayoutError, match=r"shape \(3, 8, 3\).*layout='CHW' or layout='HWC'") as excinfo:
        assert_stage_close(square, square + 1, atol=0.1)
    assert isinstance(excinfo.value, ValueError)
    with pytest.raises(LayoutError, match=r"neither"):
        assert_stage_close(np.zeros((8, 9, 10)), np.zeros((8, 9, 10)), atol=0.1)
    assert assert_stage_close(square, square, atol=0.1, layout="HWC").passed  # told: no guess needed
    assert assert_stage_close(np.zeros((2, 3, 8, 9)), np.zeros((2, 3, 8, 9)), atol=0.1).passed  # NCHW
    assert assert_stage_close(np.zeros((8, 9)), np.zeros((8, 9)), atol=0.1).passed  # HW


def test_a_nan_tolerance_is_refused_rather_than_passing_everything():
    pixels = _photo()
    with pytest.raises(ParityUsageError, match=r"^atol=nan: expected a non-negative number \(inf: no limit\)$"):
        assert_stage_close(pixels, pixels + 100, atol=float("nan"))
    with pytest.raises(ParityUsageError, match=r"^max_mismatch=nan: expected a number in \[0, 1\]$"):
        assert_stage_close(pixels, pixels + 100, atol=1, max_mismatch=float("nan"))


def test_a_criterion_that_is_off_is_not_printed_as_a_limit():
    expected = np.zeros((3, 4, 5), np.float32)
    actual = expected.copy()
    actual[1, 2, 3] = 0.5
    with pytest.raises(AssertionError) as excinfo:
        assert_stage_close(actual, expected, atol=0.1, name="normalize")
    text = str(excinfo.value)
    assert text.splitlines()[0].startswith("normalize: not explained by a known cause (max abs 0.5, mean abs")
    assert "Mismatched elements: 1 / 60 (1.7%)" in text
    assert "Greatest absolute difference: 0.5 at index (1, 2, 3) (up to 0.1 allowed)" in text
    assert "Greatest relative difference: " in text and "(up to 0 allowed)" not in text
    assert "element threshold 0.1, in units" in text  # no "+ 0 * |expected|"
    assert "(1, 2, 3)         | 0.5         | 0" in text
    result = assert_stage_close(actual, expected, atol=0.1, max_mismatch=0.02)
    assert result.passed and result.mismatched == 1


def test_torch_tensors_are_accepted_and_batches_are_diagnosed_on_their_worst_sample():
    torch = pytest.importorskip("torch")
    pixels = np.stack([_photo(seed=1), _photo(seed=2)]).transpose(0, 3, 1, 2)  # NCHW
    expected = (pixels - np.array(MEAN)[:, None, None]) / np.array(STD)[:, None, None]
    actual = expected.copy()
    actual[1] = actual[1, ::-1]  # the second sample leaves in BGR order
    assert assert_stage_close(torch.from_numpy(expected), torch.from_numpy(expected), atol=1e-6).passed
    with pytest.raises(AssertionError) as excinfo:
        assert_stage_close(torch.from_numpy(actual).to(torch.bfloat16), torch.from_numpy(expected), atol=0.05,
                           mean=MEAN, std=STD)
    assert excinfo.value.args[0].splitlines()[0].startswith("actual vs expected: Actual's channels are in reverse "
                                                              "order (BGR vs RGB)")


@pytest.mark.slow
def test_the_assertion_carries_the_whole_run_findings_a_stale_triton_repository_included(tmp_path):
    """The fixed pipeline passes every stage, but the repository still serves the old model.dali: the
    assertion says so, as `parity check` does, instead of only counting failed images."""
    import shutil

    from parity import assert_preprocessing_parity

    from .conftest import IMAGES, ROOT, seed_config_text

    repo = shutil.copytree(ROOT / "fixtures" / "triton" / "build" / "corrected_repository", tmp_path / "repo",
                           symlinks=True)
    shutil.copy(ROOT / "fixtures" / "triton" / "build" / "seed_repository" / "preprocess" / "1" / "model.dali",
                repo / "preprocess" / "1" / "model.dali")
    cfg = tmp_path / "parity_cfg.py"
    cfg.write_text(seed_config_text(IMAGES / "*.png", pipeline="corrected")
                   + f"triton = dict(repository='{repo}', model='ensemble', input='INPUT', output='OUTPUT')\n")
    with pytest.raises(AssertionError) as failure:
        assert_preprocessing_parity(cfg, images=[IMAGES / "astronaut.png", IMAGES / "coffee.png"])
    text = str(failure.value)
    assert "triton repository check: FAILED" in text  # the summary, as the CLI prints it
    assert f"{repo / 'preprocess' / '1' / 'model.dali'} lacks color_space_conversion(" in text  # its finding
