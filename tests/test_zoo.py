"""The bug zoo (docs/zoo.md): every broken pipeline is caught, named for its real cause (or listed as a known
gap) and never given a cause its ground truth rules out; every correct pipeline, however it is written, passes.

Each case runs on two bundled images (a square one, which the canvas pads, and a 3:4 portrait, which fills
it) unless the manifest gives it its own. Figures over every bundled image: `python benchmarks/zoo_figures.py`.
"""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity import check_preprocessing_parity
from parity.run.harness import Harness
from tests.zoo import RANDOM, ZOO, cases_table, manifest, run_entry, zoo_config, zoo_images

from .conftest import IMAGES, ROOT, save_rgb, write_config, write_pipeline

CORRECT, BROKEN = manifest()
QUICK = [IMAGES / "astronaut.png", IMAGES / "chelsea.png"]


def _images(entry) -> list:
    return zoo_images(entry) if entry.images else QUICK


@pytest.mark.parametrize("name", CORRECT)
def test_correct_pipelines_raise_no_alarm(name):
    outcome = run_entry(name, CORRECT[name], _images(CORRECT[name]))
    assert not outcome.detected, (outcome.named, outcome.determinism.message())


@pytest.mark.parametrize("name", sorted(BROKEN))
@pytest.mark.slow
def test_broken_pipeline_is_caught_and_named_for_its_cause(name):
    entry = BROKEN[name]
    outcome = run_entry(name, entry, _images(entry))
    assert outcome.detected, f"{name} passed on every image and gave one output per input"
    assert not outcome.wrong, f"{name}: named causes its ground truth rules out: {outcome.wrong}"
    if entry.known_gap:
        assert not outcome.names_expected, f"{name} is named {entry.kind!r} now: remove its known_gap"
        return
    assert outcome.names_expected, f"{name}: expected {entry.kind!r}, got {outcome.named}"
    if entry.kind == RANDOM:
        first = outcome.determinism.message().splitlines()[0]
        assert outcome.determinism.operators[0].where.startswith("pipelines.py:") and "fn." in first, first
    else:  # one cause per mistake: nothing else is blamed
        assert outcome.kinds == {entry.kind, *entry.also}, outcome.named


def test_the_zoo_covers_the_deployment_bugs_users_report():
    assert len(BROKEN) >= 35 and len(CORRECT) >= 6
    kinds = {e.kind for e in BROKEN.values()}
    assert {"missing_normalization", "scaled_0_1", "wrong_normalization", "channel_order", "mean_std_channel_order",
            "resize_filter", "resize_edge", "size_rounding", "offset", "pad_side", "pad_value", "stretch", "layout",
            "dtype", "orientation", RANDOM} <= kinds
    assert sum(e.input_format == "encoded" for e in BROKEN.values()) >= 3
    assert sum(e.kind == RANDOM for e in BROKEN.values()) >= 4
    assert all(e.cite.startswith(("https://github.com/", "../shared/notes/PAINS.md #")) for e in BROKEN.values())


def test_the_zoo_page_lists_every_case_of_the_manifest():
    """docs/zoo.md is written by benchmarks/zoo_figures.py --markdown: it cannot fall behind the manifest."""
    page = (ROOT / "docs" / "zoo.md").read_text()
    assert cases_table() in page, "docs/zoo.md is behind fixtures/zoo/manifest.py: regenerate it (see the page)"
    measured = page.split("\n## Figures\n")[1].split("\n## Cases\n")[0]
    assert re.findall(r"^\| `(\w+)` \|", measured, re.M) == [*CORRECT, *BROKEN]
    assert re.search(rf"^\| {len(BROKEN)} \| {len(BROKEN)} \| .* \| {len(CORRECT)} \| 0 \|$", measured, re.M)


@st.composite
def photos(draw):
    """Images every correct pipeline reproduces exactly: square, or 3:4 portrait (the seed's canvas shape), of
    random size and content."""
    k = draw(st.integers(8, 120))
    h, w = draw(st.sampled_from([(4 * k, 3 * k), (3 * k, 3 * k)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    content = draw(st.sampled_from(["photo", "noise", "gradient", "flat"]))
    if content == "photo":
        from PIL import Image

        with Image.open(IMAGES / draw(st.sampled_from(["astronaut.png", "coffee.png", "rocket.png"]))) as photo:
            return np.asarray(photo.convert("RGB").resize((w, h), Image.BILINEAR))
    if content == "noise":
        return rng.integers(0, 256, (h, w, 3))
    if content == "flat":
        return np.broadcast_to(rng.integers(0, 256, 3), (h, w, 3))
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), rng.integers(0, 256) + 0 * x], -1)


_HARNESSES: dict = {}


def _harness(name: str, entry) -> Harness:
    if name not in _HARNESSES:
        _HARNESSES[name] = Harness(zoo_config(name, entry))
    return _HARNESSES[name]


@pytest.mark.slow
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(image=photos(), name=st.sampled_from(sorted(n for n, c in CORRECT.items() if not c.images)))
def test_no_false_alarm_on_random_images(tmp_path_factory, image, name):
    """Pipelines correct on any image (not those checked on their own images only: correct_imagenet_crop's
    fn.crop rounds the centre anchor unlike the reference's CenterCrop on odd sizes)."""
    path = save_rgb(tmp_path_factory.mktemp("zoo") / "drawn.png", np.ascontiguousarray(image))
    outcome = run_entry(name, CORRECT[name], [path], harness=_harness(name, CORRECT[name]))
    assert not outcome.detected, (outcome.named, outcome.determinism.message())


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(image=photos(), name=st.sampled_from(sorted(n for n, e in BROKEN.items() if not e.images)))
def test_no_cause_the_ground_truth_denies_on_random_images(tmp_path_factory, image, name):
    path = save_rgb(tmp_path_factory.mktemp("zoo") / "drawn.png", np.ascontiguousarray(image))
    outcome = run_entry(name, BROKEN[name], [path], harness=_harness(name, BROKEN[name]))
    assert not outcome.wrong, f"{name}: named causes its ground truth rules out: {outcome.wrong}"


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
        line = next(n for n, text in enumerate((ZOO / "pipelines.py").read_text().splitlines(), 1)
                    if "return fn.crop(images, crop=(512, 384)" in text)  # the zoo's _geometry helper
        assert cause.advice.where.startswith(f"pipelines.py:{line}: return fn.crop(") and fix in cause.advice.text, \
            cause.sentence


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
    assert "against DALI's own" in final.diagnosis.causes[0].evidence.model
    # the image's summary (CLI line, report row) names both mistakes, the first divergence's first
    assert result.cause_kinds[0] == result.first_failure.diagnosis.kinds[0] and set(kinds) <= set(result.cause_kinds)
