"""The bug zoo: every broken pipeline fails and is named for its real cause; correct ones pass.

Figures for the whole zoo: `python benchmarks/zoo_figures.py`.
"""

import pytest

from parity.zoo import manifest, run_entry

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
