"""The seed example's report as a reviewer sees it: rendered by headless Chromium, failing stage on screen."""

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="needs Debian's chromium for a headless screenshot (.ci/run installs it)")
WIDTH, HEIGHT = 1400, 2400


@pytest.fixture(scope="module")
def seed_page(seed_report):
    return (seed_report / "index.html").as_uri()


def _chromium(tmp_path, *args) -> str:
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", *args],
                          check=True, timeout=120, capture_output=True, text=True)
    return done.stdout


def test_the_failing_stage_is_on_screen_with_its_pictures(seed_page, tmp_path):
    shot = tmp_path / "report.png"
    _chromium(tmp_path, f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}", seed_page)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    # not a blank page: the first image's pictures are drawn below the tables
    assert pixels[1400:].std() > 30
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    # the failing stage's section: a red bar down its left edge, for hundreds of pixels
    assert red[:, :60].sum(axis=0).max() > 600
    # its mask: the missing normalization puts every judged pixel over tolerance, a red block of ~384x512 pixels
    assert red[:, 60:].sum() > 100_000


def test_the_browser_reads_the_failing_stage_first_and_folds_the_passing_ones(seed_page, tmp_path):
    dom = _chromium(tmp_path, "--dump-dom", seed_page)
    first = dom.index('id="img-astronaut-model_input"')
    assert dom[dom.rindex("<", 0, first):first].startswith("<section")
    for stage in ("input", "resize", "crop"):
        assert f'<details class="stage passed-stage" id="img-astronaut-{stage}">' in dom
        assert dom.index(f'id="img-astronaut-{stage}"') > first
