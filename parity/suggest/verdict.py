"""The one verdict on a generated pipeline, shared by `parity suggest` and scripts/suggest_coverage.py.

Both measure the same images: the bundled samples (whatever parity/samples holds), generated sizes from
MIN_SIDE px up to extreme aspect ratios, sizes that common pipelines scale by whole ratios (there an exact
resampler's taps land on whole source pixels, where float rounding picks one row or the next), a 1-px
checkerboard (the finest detail, where resampling kernels differ most), and large mosaics of the samples
(downscaled 10x and more). Images thinner than MIN_SIDE are measured and reported
separately, never in the verdict: there the 1-px border Pillow and DALI extend differently is most of the
image (a 4x586 image resized to 3x512 differs by a mean 0.86 level).
"""

from __future__ import annotations

import enum
import shutil
from dataclasses import dataclass, field
from pathlib import Path

MIN_SIDE = 16
GENERATED = [(16, 16), (16, 1200), (1200, 16), (224, 224), (257, 255), (333, 500), (500, 333), (1080, 1920),
             (1999, 1001)]
# whole ratios: 640x427 -> EfficientNetCenterCrop(240, crop_padding=16) crops 400 px, resized 5/3 down; 512 and
# 768 -> 256 (2x, 3x); 448 and 672 -> 224
WHOLE_RATIOS = [(427, 640), (640, 427), (512, 768), (768, 1152), (448, 672), (672, 672)]
CHECKERBOARDS = [(301, 199)]
LARGE = [(3024, 4032), (4032, 3024)]
BELOW_MINIMUM = [(1, 1), (3, 7), (7, 3), (12, 900), (900, 12), (15, 600)]


class Verdict(enum.Enum):
    EXACT = "exact"  # every verdict image within 1 uint8 level before normalization
    APPROXIMATE = "approximate"  # the default tolerances pass, or a wider share of elements (Verification.widened)
    MISMATCH = "mismatch"  # some verdict image fails otherwise: a mean, a shape, an error


@dataclass(frozen=True)
class Beyond:
    """The largest share of elements beyond the element threshold on a stage that failed only by that share."""

    fraction: float
    image: str
    stage: str


@dataclass(frozen=True)
class Widened:
    """The share of elements allowed past the default 0.5 %, with which the failing images were checked again.
    Only the share is widened: the mean gate (0.5 level), which real bugs fail by orders of magnitude
    (docs/tolerances.md), stays, and a mean within it bounds the share beyond 5 levels to 10 %."""

    max_mismatch: float
    measured: Beyond
    passes: bool  # the failing images pass with it: what `parity check` of the generated config gives

    @property
    def entries(self) -> dict:
        """The config's ``tolerances``: the pixel default, which the model input inherits divided by std."""
        return {"pixels": {"max_mismatch": self.max_mismatch}}


@dataclass
class Measured:
    """What the harness measured on one group of images."""

    name: str
    images: int = 0
    failed: list = field(default_factory=list)  # images failing the default tolerances
    failed_otherwise: list = field(default_factory=list)  # ...by more than a share of elements beyond the threshold
    beyond: Beyond | None = None  # the largest such share, where the failed images fail only by it
    reference_failed: dict = field(default_factory=dict)  # image name -> the reference's error: not measured
    pixel_max: float = 0.0  # worst difference in uint8 levels: last pixel stage, or the model input times std
    pixel_mean: float = 0.0  # worst per-image mean difference, likewise
    model_input_max: float = 0.0

    @property
    def verdict(self) -> Verdict:
        if self.failed_otherwise:
            return Verdict.MISMATCH
        return Verdict.EXACT if self.pixel_max <= 1.01 and not self.failed else Verdict.APPROXIMATE


@dataclass
class Verification:
    groups: list  # Measured, in the verdict
    below_minimum: Measured  # reported, not in the verdict
    stage_lines: list
    widened: Widened | None = None  # when some verdict image fails the default tolerances only by a share

    @property
    def overall(self) -> Measured:
        total = Measured("all")
        for g in self.groups:
            total.images += g.images
            total.failed += g.failed
            total.failed_otherwise += g.failed_otherwise
            if g.beyond and (total.beyond is None or g.beyond.fraction > total.beyond.fraction):
                total.beyond = g.beyond
            total.pixel_max = max(total.pixel_max, g.pixel_max)
            total.pixel_mean = max(total.pixel_mean, g.pixel_mean)
            total.model_input_max = max(total.model_input_max, g.model_input_max)
        return total

    @property
    def default_gate(self) -> bool:
        """Whether `parity check` with the default tolerances passes every verdict image."""
        return not self.overall.failed

    @property
    def verdict(self) -> Verdict:
        if self.widened is not None and not self.widened.passes:
            return Verdict.MISMATCH
        return self.overall.verdict


def _noisy_gradient(h: int, w: int, rng):
    import numpy as np

    y, x = np.mgrid[0:h, 0:w]
    smooth = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 127 // max(h + w, 1)], -1)
    return np.clip(smooth + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def _checkerboard(h: int, w: int):
    import numpy as np

    y, x = np.mgrid[0:h, 0:w]
    return np.repeat((((x + y) % 2) * 255).astype(np.uint8)[..., None], 3, -1)


def _mosaic(photos: list, h: int, w: int):
    """The sample photos pasted at their own size, row after row (no resampling of their content)."""
    import numpy as np

    canvas = np.zeros((h, w, 3), np.uint8)
    y = i = 0
    while y < h:
        x, row_h = 0, 0
        while x < w:
            p = photos[i % len(photos)]
            i += 1
            ph, pw = min(p.shape[0], h - y), min(p.shape[1], w - x)
            canvas[y:y + ph, x:x + pw] = p[:ph, :pw]
            x, row_h = x + pw, max(row_h, ph)
        y += row_h
    return canvas


def verdict_images(folder: Path, samples: Path, random_sizes: int = 0, seed: int = 0) -> tuple[dict, list]:
    """Write the generated images into ``folder``: ({group: [paths]} for the verdict, [below-minimum paths])."""
    import numpy as np
    from PIL import Image

    from parity.config.load import resolve_images

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def save(name: str, array) -> Path:
        path = folder / f"{name}_{array.shape[0]}x{array.shape[1]}.png"
        Image.fromarray(array, "RGB").save(path, compress_level=1)
        return path

    (folder / "bundled").mkdir(exist_ok=True)  # a copy: the verdict's images stay fixed while it runs
    bundled = [Path(shutil.copy(p, folder / "bundled" / p.name)) for p in resolve_images(folder / "x.py", [str(samples)])]
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in bundled]
    sizes = GENERATED + WHOLE_RATIOS + [tuple(int(v) for v in rng.integers(MIN_SIDE, 1200, 2))
                                        for _ in range(random_sizes)]
    groups = {"bundled": bundled,
              "generated": [save("generated", _noisy_gradient(h, w, rng)) for h, w in sizes]
              + [save("checkerboard", _checkerboard(h, w)) for h, w in CHECKERBOARDS],
              "large": [save("large", _mosaic(photos, h, w)) for h, w in LARGE]}
    below = [save("below", _noisy_gradient(h, w, rng)) for h, w in BELOW_MINIMUM]
    return groups, below


def verify(config, groups: dict, below: list, source: str = "") -> Verification:
    """Run the harness on a parity config whose DALI pipeline is the generated one, group by group. Images
    the reference itself cannot process are not measured (``reference_failed``); when that is every verdict
    image the config cannot be verified at all: a ParityReferenceError naming ``source`` (a usage error)."""
    from parity.errors import ParityReferenceError
    from parity.run.harness import Harness

    harness = Harness(config)
    pixel_pairs = [p.label for p in harness.pairs if not p.final and p.pixels and p.ref_index is not None]
    last_pixel = pixel_pairs[-1] if pixel_pairs else None
    per_stage: dict[str, list] = {}
    ref_std = harness.reference.std  # in uint8 levels: the data preprocessor's, or timm's/torchvision's x 255
    std = [float(v) for v in (ref_std if ref_std is not None else (1.0, 1.0, 1.0))]

    def measure(name: str, paths: list) -> Measured:
        m = Measured(name)
        for result in harness.run([Path(p) for p in paths]):
            if result.error and _reference_fails(harness, result.path):
                m.reference_failed[result.path.name] = result.error.replace(str(result.path), result.path.name)
                continue
            m.images += 1
            if not result.passed:
                m.failed.append(result.path.name)
                share = _failed_share(result)
                if share is None:
                    m.failed_otherwise.append(result.path.name)
                elif m.beyond is None or share.fraction > m.beyond.fraction:
                    m.beyond = share
            for r in result.stages:
                if r.status == "skipped" or not r.total:
                    continue
                per_stage.setdefault(r.stage, []).append(r)
                if r.stage == last_pixel:
                    m.pixel_max, m.pixel_mean = max(m.pixel_max, r.max_abs), max(m.pixel_mean, r.mean_abs)
                if r.stage == "model_input":  # also in levels: the last pixel stage may not be paired
                    m.model_input_max = max(m.model_input_max, r.max_abs)
                    channel_std = std[r.max_abs_index[-3]] if len(r.max_abs_index) >= 3 else max(std)
                    m.pixel_max = max(m.pixel_max, round(r.max_abs * channel_std, 3))
                    m.pixel_mean = max(m.pixel_mean, round(r.mean_abs * min(std), 3))
        return m

    measured = [measure(name, paths) for name, paths in groups.items() if paths]
    if not sum(m.images for m in measured):
        error = next((e for m in measured for e in m.reference_failed.values()), "no image measured")
        raise ParityReferenceError(f"{source or config.reference_source}: the reference cannot run this config: "
                                   f"{without_source(error)}")
    widened = _widen(config, groups, measured) if any(m.failed for m in measured) else None
    lines = []
    for stage, rows in per_stage.items():
        failed_n = sum(r.status == "failed" for r in rows)
        lines.append(f"{stage:<24} max {max(r.max_abs for r in rows):8.4g}  mean {max(r.mean_abs for r in rows):8.4g}"
                     f"  {'FAILED on ' + str(failed_n) if failed_n else 'passed'} ({len(rows)} images)")
    return Verification(measured, measure("below_minimum", below), lines, widened)


def _failed_share(result) -> Beyond | None:
    """The largest share of elements beyond the threshold among an image's failing stages, when that share is
    all they fail by (no shape or dtype problem, no error, the mean within its limit); else None."""
    failing = [r for r in result.stages if r.status == "failed"]
    if result.error or not failing or any(r.problems or r.tolerance is None or (
            r.tolerance.mean_atol is not None and r.mean_abs > r.tolerance.mean_atol) for r in failing):
        return None
    worst = max(failing, key=lambda r: r.mismatch_fraction)
    return Beyond(worst.mismatch_fraction, result.path.name, worst.stage)


def _widen(config, groups: dict, measured: list) -> Widened | None:
    """The share that lets the failing images pass, checked by running them again with it: the measured
    share (outer ring included) and a quarter more, in whole 0.1 % (the verdict leaves the ring out)."""
    import dataclasses
    import math

    from parity.run.harness import Harness

    if any(m.failed_otherwise for m in measured):
        return None
    beyond = max((m.beyond for m in measured if m.beyond), key=lambda b: b.fraction)
    share = min(math.ceil(beyond.fraction * 1.25 * 1000) / 1000, 1.0)
    failed = {name for m in measured for name in m.failed}
    paths = [Path(p) for paths in groups.values() for p in paths if Path(p).name in failed]
    widened = Widened(share, beyond, passes=False)
    harness = Harness(dataclasses.replace(config, tolerances=config.tolerances.with_entries(widened.entries)))
    return dataclasses.replace(widened, passes=all(r.passed for r in harness.run(paths)))


def _reference_fails(harness, path: Path) -> bool:
    """Whether an image's error is the reference's own (MMPretrain raises on it), not the DALI pipeline's."""
    from parity.errors import ParityUsageError

    try:
        harness.reference.run(path)
    except ParityUsageError:
        return True
    return False


def without_source(error: str) -> str:
    """'cfg.py (...): reference transform Resize failed on a.png: error: ...' -> 'Resize failed on a.png: ...'."""
    return " ".join(error.partition("reference transform ")[2].split()) or " ".join(error.split())
