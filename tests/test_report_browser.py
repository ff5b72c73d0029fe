"""The seed example's report as a reviewer sees it: rendered by headless Chromium, failing stage on screen,
each image's page readable when opened alone."""

import html
import json
import re
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


# Run in a copy of a page once it has loaded: what a reader of it gets, written into the page for --dump-dom.
PROBE = """<script>
window.addEventListener('load', () => {
  const rgb = c => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const luminance = c => rgb(c).map(v => v / 255).map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = e => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor;
    if (!c.startsWith('rgba') || !c.endsWith(', 0)')) return c; } return 'rgb(255, 255, 255)'; };
  const contrast = e => { const [a, b] = [luminance(getComputedStyle(e).color), luminance(background(e))];
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); };
  const root = document.documentElement;
  const probe = document.createElement('pre');
  probe.id = 'probe';
  probe.textContent = JSON.stringify({
    styled: getComputedStyle(document.querySelector('section.stage')).borderLeftStyle,
    pictures: [...document.images].map(i => [i.alt, i.complete && i.naturalWidth > 0]),
    fixes: [...document.querySelectorAll('.fix')].map(e => [parseFloat(getComputedStyle(e).fontSize), contrast(e)]),
    overflow: [root.scrollWidth, root.clientWidth],
  });
  document.body.append(probe);
});
</script>"""


def _probe(tmp_path, page) -> dict:
    """Open a copy of ``page`` (beside it) in a 1280-pixel window, with the probe run once it has loaded."""
    copy = page.with_name(f"probe-{page.name}")
    copy.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium(tmp_path, "--window-size=1280,900", "--virtual-time-budget=10000", "--dump-dom", copy.as_uri())
    return json.loads(html.unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1)))


def test_each_image_page_opened_alone_has_its_styles_and_pictures_a_legible_fix_and_nothing_off_the_page(
        seed_report, tmp_path):
    report = shutil.copytree(seed_report, tmp_path / "report")
    pages = sorted((report / "sections").glob("*.html"))
    assert len(pages) == 8
    for page in [*pages, report / "index.html"]:
        seen = _probe(tmp_path, page)
        assert seen["styled"] == "solid", page.name  # the style sheet resolved: the failing stage has its red bar
        assert len(seen["pictures"]) >= 9 and all(loaded for _, loaded in seen["pictures"]), (page.name, seen)
        # the fix of each cause: at least 14 px and WCAG AA contrast (4.5:1) against its background
        assert seen["fixes"] and all(size >= 14 and ratio >= 4.5 for size, ratio in seen["fixes"]), seen["fixes"]
        width, visible = seen["overflow"]
        assert width <= visible, f"{page.name}: {width} px wide in a {visible} px window"
