"""The pre-deploy report: one folder with the stages side by side, heatmaps and the diagnosis."""

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from parity.cli import main

from .conftest import IMAGES, SEED

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def seed_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    assert main(["check", str(SEED / "parity_deployed.py"), "--report", str(folder), "-q"]) == 1
    return folder


def test_report_shows_every_stage_side_by_side_with_heatmaps_and_the_cause(seed_report):
    page = (seed_report / "index.html").read_text()
    assert "parity: parity_deployed.py" in page and "FAILED" in page
    for image in ("astronaut", "noise"):
        for stage in ("input", "resize", "crop", "model_input"):
            for side in ("ref", "dali", "diff"):
                assert (seed_report / f"{image}-{stage}-{side}.png").is_file()
        assert (seed_report / f"{image}-model_input-hist.png").is_file()
    assert page.count("<td>missing_normalization, channel_order, layout</td>") == 8  # the cause, per image
    assert "Degenerate-output check <span class=failed>FAILED" in page
    assert "DALI output is the un-normalized image (values 0..255)" in page
    assert "BGR data drawn as RGB, values as pixels" in page  # the captions say how colours were drawn
    # the DALI model input really is the un-normalized BGR image: its picture is the reference's with R and B swapped
    ref = np.asarray(Image.open(seed_report / "astronaut-model_input-ref.png")).astype(int)
    dali = np.asarray(Image.open(seed_report / "astronaut-model_input-dali.png")).astype(int)
    assert np.abs(dali[..., ::-1] - ref).mean() < 0.5 * np.abs(dali - ref).mean()


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium for a headless screenshot (.ci/run installs it)")
def test_report_renders_in_a_real_headless_browser(seed_report, tmp_path):
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1300,2400",
                    f"--screenshot={shot}", (seed_report / "index.html").as_uri()],
                   check=True, timeout=120, capture_output=True)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (2400, 1300)
    # not a blank page: the pictures of the first image are drawn below the tables
    assert pixels[1500:].std() > 30
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    assert red.sum() > 200  # the red FAILED verdicts are rendered


def test_report_keeps_pictures_for_failures_first(tmp_path):
    from parity import Harness, load_config
    from parity.html import HtmlReport

    harness = Harness(load_config(SEED / "parity_corrected.py"))
    report = HtmlReport(tmp_path, title="t", max_images=2)
    for result in harness.run([IMAGES / "astronaut.png", IMAGES / "noise.png", IMAGES / "flat.png"],
                              keep_views=report.wants_views):
        report.add(result)
    report.write()
    assert report.drawn == 2 and len(report.rows) == 3
    assert not (tmp_path / "flat-input-ref.png").exists()
