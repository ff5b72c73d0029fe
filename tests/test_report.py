"""The pre-deploy report: one folder with the failing stage first, its pictures, numbers and causes."""

import re

import numpy as np
import pytest
from PIL import Image

from .conftest import IMAGES, ROOT, SEED, write_config, write_pipeline


def _picture(folder, page: str, alt: str, nth: int = 0) -> np.ndarray:
    """The ``nth`` picture titled ``alt`` on ``page``, cut from its file as the browser shows it (RGB)."""
    src, width, height, top = re.findall(rf"<img[^>]* src='([^']+)' width=(\d+) height=(\d+) "
                                         rf"style='object-fit:none;object-position:0 -(\d+)px' alt='{re.escape(alt)}'>",
                                         page)[nth]
    sheet = np.asarray(Image.open(folder / src).convert("RGB"))
    return sheet[int(top):int(top) + int(height), :int(width)]


def _section(page: str, anchor: str) -> str:
    """One image's part of the page, from its heading to the next image's."""
    start = page.index(f"<h2 id='{anchor}'>")
    end = page.find("<h2 id='img-", start + 1)
    return page[start:end if end > 0 else len(page)]


@pytest.mark.slow
def test_report_shows_every_stage_side_by_side_with_heatmaps_and_the_cause(seed_report):
    page = (seed_report / "index.html").read_text()
    assert "parity: parity_deployed.py" in page and "FAILED" in page
    for image in ("astronaut", "noise"):
        section = _section(page, f"img-{image}")
        # the decoded input is the same on both sides: drawn once, no heatmap
        assert section.count("alt='reference = DALI (drawn the same)'") == 1
        assert section.count("alt='reference'") == section.count("alt='DALI'") == 3
        assert section.count("alt='difference heatmap'") == 3
        # the failing stage alone also gets the mask of pixels over tolerance and the zoom on its worst pixel
        for alt in ("tolerance mask", "zoom reference", "zoom DALI", "zoom DALI - reference"):
            assert section.count(f"alt='{alt}'") == 1
    assert page.count("<td>missing_normalization, channel_order, layout</td>") == 8  # the cause, per image
    assert "Degenerate-output check <span class=failed>FAILED" in page
    assert "BGR data drawn as RGB, values as pixels" in page  # the captions say how colours were drawn
    # the DALI model input really is the un-normalized BGR image: its picture is the reference's with R and B swapped
    astronaut = _section(page, "img-astronaut")  # the failing stage comes first
    ref, dali = (_picture(seed_report, astronaut, alt).astype(int) for alt in ("reference", "DALI"))
    assert ref.shape == dali.shape == (300, 225, 3)  # a thumbnail of the 512 x 384 model input
    assert np.abs(dali[..., ::-1] - ref).mean() < 0.5 * np.abs(dali - ref).mean()


@pytest.mark.slow
def test_the_seed_report_stays_small_three_pictures_files_and_one_page_per_image(seed_report):
    """8 images at 512x384 (the figures in docs/report.md): 16.4 MB in 138 files when every picture was its own
    PNG; 2.31 MB in 35 files with the tensors as lossy thumbnails and the evidence packed into palette PNGs."""
    files = [p for p in seed_report.rglob("*") if p.is_file()]
    assert len(files) <= 40 and sum(p.stat().st_size for p in files) < 3_000_000
    names = {p.name for p in files}
    for image in ("astronaut", "noise"):
        assert {f"{image}-tensors.webp", f"{image}-heatmaps.png", f"{image}-evidence.png", f"f-{image}.html"} <= names
    assert {"index.html", "report.css", "parity-report.txt"} <= names


@pytest.mark.slow
def test_an_image_page_names_only_the_report_folder_s_files(seed_report):
    """A section page opens alone: its style sheet and pictures resolve from the report folder (its base), and its
    links lead into the index."""
    page = (seed_report / "sections" / "f-astronaut.html").read_text()
    assert "<base href='../'>" in page and "<link rel=stylesheet href=report.css>" in page
    sources = set(re.findall(r"src='([^']+)'", page))
    assert sources == {"astronaut-tensors.webp", "astronaut-heatmaps.png", "astronaut-evidence.png"}
    assert all((seed_report / s).is_file() for s in sources)
    assert set(re.findall(r"href='([^'#]*)#", page)) == {"index.html"}


@pytest.mark.slow
def test_the_failing_stage_comes_first_and_open_with_its_causes_as_a_numbered_list(seed_report):
    astronaut = _section((seed_report / "index.html").read_text(), "img-astronaut")
    stages = re.findall(r"<(section|details) class='?stage[^>]* id='img-astronaut-(\w+)'>", astronaut)
    assert stages == [("section", "model_input"), ("details", "input"), ("details", "resize"), ("details", "crop")]
    causes = re.search(r"<ol class=causes>(.*?)</ol>", astronaut).group(1)
    kinds = re.findall(r"<li><b><code>(\w+)</code></b> <small>\((?:fit|exact)\)</small>", causes)
    assert kinds == ["missing_normalization", "channel_order", "layout"]
    assert "0..255" in causes and "[58.4, 57.12, 57.38]" in causes  # each cause with its numbers
    assert causes.count("<span class=field>evidence: ") == 3
    # histograms per channel, each on its own axis: DALI's 0..255 would flatten the normalized reference
    assert astronaut.count("<svg") == 3 and "channel 0 (R) (own axes)" in astronaut


@pytest.mark.slow
def test_the_heatmap_caption_and_the_stage_table_print_the_same_statistic(seed_report):
    astronaut = _section((seed_report / "index.html").read_text(), "img-astronaut")
    for stage in ("resize", "crop", "model_input"):
        max_abs, mean_abs = re.search(rf"img-astronaut-{stage}'>{stage}</a></td><td class=\w+>\w+</td>"
                                      r"<td>([^<]+)</td><td>([^<]+)</td>", astronaut).groups()
        assert f"max abs {max_abs}, mean abs {mean_abs} " in astronaut
    assert "max abs 252.8, mean abs 86.44 normalized units" in astronaut


SMALL_BUGS = """
    images = fn.external_source(name="INPUT")
    images = fn.resize(images, resize_shorter=384, max_size=512, subpixel_scale=False)
    images = fn.crop(images, crop=(512, 384), crop_pos_x={x}, crop_pos_y=0.499, out_of_bounds_policy="pad")
    images = fn.color_space_conversion(images, image_type=types.BGR, output_type=types.RGB)
    return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW",
                                    mean=[m + {levels} for m in [123.675, 116.28, 103.53]],
                                    std=[58.395, 57.12, 57.375])
"""


def _small_bug_report(folder, name, **bug):
    """The report of the seed's corrected pipeline with one small mistake, on a landscape image (cropped
    across its width), and the stages that failed."""
    from parity import Harness, load_config
    from parity.outputs.html import HtmlReport

    spec = write_pipeline(folder, SMALL_BUGS.format(**{"x": 0.499, "levels": 0, **bug}), name)
    cfg = write_config(folder, pipeline=spec, input_format="BGR", output_layout="CHW",
                       images=[str(ROOT / "fixtures" / "landscape" / "chelsea_wide.png")])
    report = HtmlReport(folder / "report", title=name)
    [result] = Harness(load_config(cfg)).run(keep_views=report.wants_views)
    report.add(result)
    _publish(report, [result])
    return folder / "report", [r.stage for r in result.stages if r.status == "failed"]


def _publish(report, results) -> str:
    """Write the report's index from the results' records, as the CLI does; the page's text."""
    from parity.results.recorder import RunRecorder
    from parity.results.records import image_record

    with RunRecorder() as recorder:
        for result in results:
            recorder.add(image_record(result))
        return report.write(recorder.records(), recorder.summary).read_text()


def _mask_classes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the mask is drawn as over tolerance (red) and as differing within tolerance (amber)."""
    r, g, b = (mask[..., i].astype(int) for i in range(3))
    red = (r > 150) & (g < 100) & (b < 100)
    amber = (r > 200) & (g > 120) & (g < 215) & (b < 110)
    return red, amber


def test_two_levels_off_everywhere_fails_on_the_mean_and_shows_in_the_mask_and_the_zoom(tmp_path):
    """No element is over atol (5 levels), so only the mean fails: the mask still paints every pixel that
    differs, and the zoom's difference is blue (DALI lower) wherever the reference is not padding."""
    report, failed = _small_bug_report(tmp_path, "two_levels", levels=2)
    assert failed == ["model_input"]
    page = (report / "index.html").read_text()
    red, amber = _mask_classes(_picture(report, page, "tolerance mask"))
    assert not red.any() and amber.mean() > 0.9
    diff = _picture(report, page, "zoom DALI - reference").astype(int)
    bluish = diff[..., 2] > diff[..., 0] + 20
    assert bluish.mean() > 0.5 and not (diff[..., 0] > diff[..., 2] + 20).any()
    assert "0 over tolerance" in page and "the mean abs exceeds 0.008754" in page


@pytest.mark.slow
def test_a_one_pixel_crop_offset_shows_as_red_edges_in_the_mask_and_a_two_signed_zoom(tmp_path):
    """The crop window moves by one column: edges differ by much more than atol, flat areas hardly at all."""
    report, failed = _small_bug_report(tmp_path, "one_column", x=0.51)
    assert failed[0] == "crop"
    page = (report / "index.html").read_text()  # the crop comes first, with its mask and zoom
    red, _ = _mask_classes(_picture(report, page, "tolerance mask"))
    assert 0.005 < red.mean() < 0.5
    diff = _picture(report, page, "zoom DALI - reference").astype(int)
    assert (diff[..., 0] > diff[..., 2] + 60).any() and (diff[..., 2] > diff[..., 0] + 60).any()
    assert diff.shape == (24 * 8, 24 * 8, 3)  # x8 nearest neighbour on a 24-pixel window
    # the later failures follow from the crop: folded below it, with their statistics in the heading
    assert re.findall(r"<(section|details) class=(?:stage|'stage failed-stage') id='img-chelsea_wide-(\w+)'>", page) == [
        ("section", "crop"), ("details", "color_space_conversion"), ("details", "model_input")]


@pytest.mark.slow
def test_one_wrong_pixel_of_a_large_photograph_survives_the_reduction_of_heatmap_and_mask(tmp_path):
    """A browser shrinking a 2000-pixel picture to fit drops single pixels; the report max-pools instead."""
    from parity.compare.arrays import compare_arrays
    from parity.config.load import Tolerance
    from parity.outputs.html_image import draw_image_section
    from parity.run.harness import ImageResult, StageView

    reference = np.random.default_rng(0).integers(0, 256, (1500, 2000, 3), dtype=np.uint8)
    dali = reference.copy()
    dali[700, 1001] ^= 0x80  # one pixel, 128 levels off
    stage = compare_arrays(dali, reference, Tolerance(atol=5.0), image="big", stage="input", dali_op="deploy.py:3",
                           reference="LoadImageFromFile", channel_axis=2)
    result = ImageResult("big", tmp_path / "big.png", [stage], {"input": StageView(dali, reference, "HWC", "RGB", True)})
    page = draw_image_section(tmp_path, result, "img-astronaut")
    assert "4x4 max-pooled" in page and "1 over tolerance" in page
    mask = _picture(tmp_path, page, "tolerance mask")
    red, _ = _mask_classes(mask)
    assert mask.shape[:2] == (375, 500) and red.sum() == 1 and red[175, 250]
    heat = _picture(tmp_path, page, "difference heatmap").astype(int).sum(axis=-1)
    assert np.unravel_index(heat.argmax(), heat.shape) == (175, 250)
    assert "(700, 1001): DALI" in page  # the zoom is on it


def test_nan_in_the_dali_output_is_drawn_counted_and_zoomed_on(tmp_path):
    from parity.compare.arrays import compare_arrays
    from parity.config.load import Tolerance
    from parity.outputs.html_image import draw_image_section
    from parity.run.harness import ImageResult, StageView

    reference = np.random.default_rng(0).normal(size=(3, 64, 48)).astype(np.float32)
    dali = reference.copy()
    dali[:, 10, 12] = np.nan
    stage = compare_arrays(dali, reference, Tolerance(atol=0.08), image="nan", stage="model_input",
                           dali_op="deploy.py:9", reference="model_input")
    view = StageView(dali, reference, "CHW", "RGB", False)
    page = draw_image_section(tmp_path, ImageResult("nan", tmp_path / "nan.png", [stage], {"model_input": view}), "i")
    assert "3 NaN or Inf values drawn white" in page and "1 over tolerance" in page
    assert "at (10, 12): DALI [nan, nan, nan]" in page
    red, _ = _mask_classes(_picture(tmp_path, page, "tolerance mask"))
    assert red.sum() == 1 and red[10, 12]


@pytest.mark.slow
def test_report_keeps_pictures_for_failures_first(tmp_path):
    from parity import Harness, load_config
    from parity.outputs.html import HtmlReport

    harness = Harness(load_config(SEED / "parity_corrected.py"))
    report = HtmlReport(tmp_path, title="t", max_images=2)
    results = []
    for result in harness.run([IMAGES / "astronaut.png", IMAGES / "noise.png", IMAGES / "flat.png"],
                              keep_views=report.wants_views):
        report.add(result)
        results.append(result)
    page = _publish(report, results)
    rows = re.findall(r"<tr><td>(?:<a href='#img-\w+'>)?(\w+)(?:</a>)?</td><td class=\w+>(?:PASSED|FAILED)</td>", page)
    assert len(report.drawn) == 2 and rows == ["astronaut", "noise", "flat"]  # every image has its row
    assert not (tmp_path / "flat-tensors.webp").exists()


def test_a_failure_drawn_in_place_of_a_passing_image_removes_that_image_s_page_and_pictures(tmp_path):
    from parity.compare.arrays import compare_arrays
    from parity.config.load import Tolerance
    from parity.outputs.html import ImagePictures
    from parity.run.harness import ImageResult, StageView

    def image(name: str, shift: int) -> ImageResult:
        reference = np.random.default_rng(0).integers(0, 200, (32, 48, 3), dtype=np.uint8)
        dali = reference + np.uint8(shift)
        stage = compare_arrays(dali, reference, Tolerance(atol=2.0), image=name, stage="input", dali_op="deploy.py:3",
                               reference="LoadImageFromFile", channel_axis=2)
        return ImageResult(name, tmp_path / f"{name}.png", [stage], {"input": StageView(dali, reference, "HWC", "RGB", True)})

    pictures = ImagePictures(tmp_path / "report", max_images=1)
    pictures.add(image("calm", 1))
    assert sorted(p.name for p in (tmp_path / "report").rglob("*.*")) == [
        "calm-heatmaps.png", "calm-tensors.webp", "p-calm.html"]  # within tolerance: no mask, no zoom
    pictures.add(image("storm", 9))
    assert sorted(p.name for p in (tmp_path / "report").rglob("*.*")) == [
        "f-storm.html", "storm-evidence.png", "storm-heatmaps.png", "storm-tensors.webp"]
