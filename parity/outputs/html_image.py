"""One image's section of the HTML report: the failing stage first and open, with the pictures that make
a small bug visible (difference heatmap, mask of the pixels over tolerance, an x8 zoom on the worst
pixel, per-channel histograms) and its causes as a list; passing stages folded below it.

Pictures are drawn with numpy and PIL (histograms as inline SVG): no plotting library on the report's
path, so a report of many images stays fast. docs/report.md says what each picture means.
"""

from __future__ import annotations

import dataclasses
import html
from functools import cache
from pathlib import Path

import numpy as np

from parity.config.load import Tolerance
from parity.outputs.atlas import Atlas, thumbnail

IMAGE_CSS = """
.row{display:flex;gap:14px;flex-wrap:wrap;align-items:flex-start;margin:6px 0 14px}
figure{margin:0}figure img{border:1px solid #bbb;image-rendering:pixelated;max-width:none}
figure img.thumb{image-rendering:auto}
figcaption{font-size:12px;color:#555;max-width:300px}figure.wide{width:min-content;min-width:200px}
figure.wide figcaption{max-width:none}
.scale{position:relative;height:10px;margin:3px 0 1px;border:1px solid #bbb}
.scale i{position:absolute;top:-4px;bottom:-4px;width:2px;background:#00e5ff}
.stage{margin:10px 0 18px;padding:4px 12px 8px;border-left:4px solid #c62828;background:#fff}
details.stage{border-left-color:#9bc7a9}details.failed-stage{border-left-color:#e8a0a0}
details.stage>summary{cursor:pointer;font-weight:600;padding:4px 0}
.swatch{display:inline-block;width:10px;height:10px;border:1px solid #888;vertical-align:-1px;margin:0 3px 0 6px}
ol.causes{background:#fff4e5;border-left:4px solid #f0a020;padding:6px 10px 6px 34px;margin:8px 0}
ol.causes li{margin:4px 0}ol.causes .field{color:#444;font-size:13px;display:block}
ol.causes .fix{color:#1d1d1f;font-size:15px;display:block;margin:3px 0}
.cause{background:#fff4e5;border-left:4px solid #f0a020;padding:6px 10px}
"""

_THUMBNAIL = 300  # pixels a side of a tensor's picture, as shown
_POOL_TO = 512  # evidence pictures (heatmap, mask) are max-pooled to at most this many pixels a side and shown 1:1
_ZOOM_WINDOW = 24  # source pixels a side of the zoom
_ZOOM = 8  # nearest-neighbour magnification of the zoom
_MARK = (0, 229, 255)  # outline of the worst pixel in the zooms, the atol mark on the heatmap's scale
# mask colours: equal (drawn as a pale copy of the reference), differs within tolerance, over tolerance in
# the border the verdict ignores, over tolerance where judged
_WITHIN, _BORDER, _OVER = (255, 176, 0), (156, 110, 220), (215, 25, 28)
_REF_COLOUR, _DALI_COLOUR = "#1565c0", "#e65100"


@dataclasses.dataclass(frozen=True)
class _Statistic:
    """A stage's difference statistics, formatted once: the stage table and the heatmap caption print these."""

    max_abs: str
    mean_abs: str
    mismatched: str
    unit: str

    @classmethod
    def of(cls, r) -> _Statistic:
        if not r.total or r.status == "skipped":
            return cls("-", "-", "-", "")
        return cls(f"{r.max_abs:.4g}", f"{r.mean_abs:.4g}", f"{100 * r.mismatch_fraction:.2f}%",
                   r.tolerance.unit if r.tolerance else "")


def picture_files(stem: str) -> tuple[str, str, str]:
    """The files of the pictures of the image named ``stem`` (:func:`safe_name`): lossy thumbnails of the
    tensors; lossless heatmaps (a palette picture: one colour map), and masks with zooms."""
    return f"{stem}-tensors.webp", f"{stem}-heatmaps.png", f"{stem}-evidence.png"


def draw_image_section(folder: Path, result, anchor: str) -> str:
    """The HTML fragment for one image, its pictures written into ``folder`` (the three :func:`picture_files`)."""
    tensors, heatmaps, evidence = picture_files(safe_name(result.image))
    atlases = (Atlas(tensors, lossy=True), Atlas(heatmaps, lossy=False), Atlas(evidence, lossy=False))
    verdict = "passed" if result.passed else "failed"
    stats = {r.stage: _Statistic.of(r) for r in result.stages}
    parts = [f"<h2 id='{anchor}'>{html.escape(result.image)} <span class={verdict}>{verdict.upper()}</span></h2>"
             f"<p>{html.escape(str(result.path))}</p>",
             "<table><tr><th>stage</th><th>status</th><th>max abs</th><th>mean abs</th><th>mismatched</th>"
             "<th>DALI operator</th></tr>"]
    for r in result.stages:
        s = stats[r.stage]
        parts.append(f"<tr><td><a href='index.html#{anchor}-{safe_name(r.stage)}'>{html.escape(r.stage)}</a></td>"
                     f"<td class={r.status}>{r.status}</td><td>{s.max_abs}</td><td>{s.mean_abs}</td>"
                     f"<td>{s.mismatched}</td><td><code>{html.escape(r.dali_op)}</code></td></tr>")
    parts.append("</table>")
    # the first failing stage open, then the model's answers (folded when they follow from it), the later
    # failures and the passing stages, folded
    ordered = sorted(result.stages, key=lambda r: r.status != "failed")
    stages = [_stage(atlases, r, result.views.get(r.stage), stats[r.stage], anchor, i == 0)
              for i, r in enumerate(ordered)]
    for atlas in atlases:
        atlas.save(folder)
    diverged = result.first_failure is not None
    answers = [_answer(a, folded=diverged) for a in (result.model, result.triton) if a is not None]
    parts.extend(stages[:1] + answers + stages[1:] if diverged else answers + stages)
    return "\n".join(parts)


def _answer(answer, folded: bool) -> str:
    """The deployed model's (or Triton's) answer; folded under its first line when preprocessing diverged."""
    message = answer.message()
    status = f"{html.escape(answer.backend)} <span class={answer.status}>{answer.status}</span>"
    if not folded:
        return f"<h3>{status}</h3><pre>{html.escape(message)}</pre>"
    return (f"<details class='stage {answer.status}-stage'><summary>{status} <small>"
            f"{html.escape(message.splitlines()[0])}</small></summary><pre>{html.escape(message)}</pre></details>")


def _stage(atlases: tuple[Atlas, Atlas, Atlas], r, view, stat: _Statistic, anchor: str, first: bool) -> str:
    """One stage of the image whose section is ``anchor``: open when it is the first failure, else folded."""
    failed = r.status == "failed"
    title = (f"{html.escape(r.stage)} <span class={r.status}>{r.status}</span> "
             f"<small>vs reference {html.escape(r.reference.split(' (')[0])}"
             + (f"; max abs {stat.max_abs}, mean abs {stat.mean_abs}" if failed and not first else "") + "</small>")
    body = []
    if view is not None:
        body.append(_pictures(atlases, r, view, stat, detailed=failed))
    elif r.status != "skipped":
        body.append("<p><small>no pictures: the values are transformed at this point and only the shape is "
                    "compared</small></p>")
    if failed:
        body.append(_causes(r.diagnosis, anchor))
        body.append(f"<details><summary>full message</summary><pre>{html.escape(r.message())}</pre></details>")
    if failed and first:
        return f"<section class=stage id='{anchor}-{safe_name(r.stage)}'><h3>{title}</h3>{''.join(body)}</section>"
    if r.status == "skipped":
        body.append(f"<p>{html.escape(r.skip_reason)}</p>")
    return (f"<details class='stage {r.status}-stage' id='{anchor}-{safe_name(r.stage)}'><summary>{title}</summary>"
            f"{''.join(body)}</details>")


def _causes(diagnosis, anchor: str) -> str:
    """The causes as a numbered list, each from its fields: kind and confidence, what was measured, the fix,
    the fitted model with its numbers; then what no cause explains, or the earlier stage this one follows."""
    if diagnosis is None:
        return ""
    items = "".join(
        f"<li><b><code>{html.escape(str(c.kind))}</code></b> <small>({html.escape(str(c.confidence))})</small> "
        f"{html.escape(c.finding)}"
        + (f"<span class=fix>{html.escape(str(c.advice))}</span>" if c.advice else "")
        + (f"<span class=field>evidence: {html.escape(str(c.evidence))}</span>" if c.evidence else "") + "</li>"
        for c in diagnosis.causes)
    rest = "The rest" if items else "The difference"
    if diagnosis.unexplained is not None:
        rest = f"{rest} is {html.escape(str(diagnosis.unexplained))}."
    elif diagnosis.follows_from:
        stage = html.escape(diagnosis.follows_from)
        rest = f"{rest} follows from the divergence at stage <a href='index.html#{anchor}-{safe_name(stage)}'>{stage}</a>."
    else:
        rest = "" if items else html.escape(str(diagnosis))
    return (f"<ol class=causes>{items}</ol>" if items else "") + (f"<div class=cause>{rest}</div>" if rest else "")


def _values(pixel: np.ndarray) -> str:
    """One pixel's channel values, 4 significant digits each."""
    return "[" + ", ".join(f"{v:.4g}" for v in pixel.tolist()) + "]"


def _pictures(atlases: tuple[Atlas, Atlas, Atlas], r, view, stat: _Statistic, detailed: bool) -> str:
    """Reference and DALI (one picture when they are drawn the same) and the heatmap (none when they are equal);
    for a failed stage also the mask, then the zoom and the histograms."""
    tensors, heatmaps, evidence = atlases
    # one display scale for both when their ranges are alike: scaling each to its own range would hide an offset
    ranges = [_finite_range(a) for a in (view.reference, view.dali)]
    shared = (min(r[0] for r in ranges), max(r[1] for r in ranges)) if _alike(*ranges) else None
    ref_rgb, ref_note = _to_display(view.reference, view.layout, view.channels, view.pixels, shared)
    dali_rgb, dali_note = _to_display(view.dali, view.layout, view.channels, view.pixels, shared)
    same = view.dali.shape == view.reference.shape
    if same and ref_note == dali_note and np.array_equal(ref_rgb, dali_rgb):
        first = [_figure(tensors, ref_rgb, "reference = DALI (drawn the same)", ref_note)]
    else:
        first = [_figure(tensors, ref_rgb, "reference" if same else f"reference {view.reference.shape}", ref_note),
                 _figure(tensors, dali_rgb, "DALI" if same else f"DALI {view.dali.shape}", dali_note)]
    if not same:
        first.append("<figure><figcaption>shapes differ: no difference map</figcaption></figure>")
        return _row(first)
    tol = r.tolerance or Tolerance(atol=0.0)
    dali, ref = _hwc(view.dali, view.layout), _hwc(view.reference, view.layout)
    with np.errstate(invalid="ignore"):  # a NaN or Inf in DALI's output differs by an infinite amount
        diff = np.abs(dali - ref)
    diff[~np.isfinite(diff)] = np.inf
    pixel_diff = diff.max(axis=-1)
    if not pixel_diff.any() and not detailed:
        first.append("<figure><figcaption>no heatmap: DALI equals the reference</figcaption></figure>")
    else:
        first.append(_heatmap(heatmaps, pixel_diff, tol.atol, stat))
    second = []
    if detailed:
        # the element threshold of compare_arrays, with its allowance for float32 rounding
        over = (diff > (tol.atol + tol.rtol * np.abs(ref)) * (1 + 1e-5)).any(axis=-1)
        judged = np.zeros(over.shape, bool)
        judged[tol.border:over.shape[0] - tol.border, tol.border:over.shape[1] - tol.border] = True
        judged |= not judged.any()
        rule = (f"The stage fails when more than {100 * tol.max_mismatch:.2g}% of values are over tolerance"
                + (f" or the mean abs exceeds {tol.mean_atol:.4g}" if tol.mean_atol is not None else "")
                + f": here {stat.mismatched} and mean abs {stat.mean_abs}.")
        first.append(_mask(evidence, ref_rgb, (pixel_diff > tol.atol / 10, over, judged),
                           tol.atol / 10, rule))
        second.append(_zoom(evidence, (ref_rgb, dali_rgb), (ref, dali), _worst_pixel(pixel_diff, judged),
                            view.channels))
    if detailed or r.stage == "model_input":
        second.append(_histograms(ref, dali, view.channels))
    return _row(first) + (_row(second) if second else "")


def _row(figures: list[str]) -> str:
    return f"<div class=row>{''.join(figures)}</div>"


def _hwc(array: np.ndarray, layout: str) -> np.ndarray:
    return (np.transpose(array, (1, 2, 0)) if layout == "CHW" else array).astype(np.float64)


def _worst_pixel(pixel_diff: np.ndarray, judged: np.ndarray) -> tuple[int, int]:
    """The largest difference where the verdict looks (the border is reported but not judged)."""
    flat = int(np.argmax(np.where(judged, pixel_diff, -1.0)))
    row, column = np.unravel_index(flat, pixel_diff.shape)
    return int(row), int(column)


def _pool(array: np.ndarray) -> tuple[np.ndarray, int]:
    """Max-pool the first two axes by the smallest integer factor that fits ``_POOL_TO``: a downscaled view
    that keeps every hot pixel (a browser shrinking the picture would drop single-pixel lines)."""
    k = -(-max(array.shape[:2]) // _POOL_TO)
    if k == 1:
        return array, 1
    h, w = array.shape[:2]
    pad = [(0, -h % k), (0, -w % k)] + [(0, 0)] * (array.ndim - 2)
    padded = np.pad(array, pad)
    blocks = padded.reshape(padded.shape[0] // k, k, padded.shape[1] // k, k, *array.shape[2:])
    return blocks.max(axis=(1, 3)), k


@cache
def _inferno() -> np.ndarray:
    from matplotlib import colormaps

    return np.round(colormaps["inferno"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def _heatmap(heatmaps: Atlas, pixel_diff: np.ndarray, atol: float, stat: _Statistic) -> str:
    """|DALI - reference|, max over channels, from 0 to max(max abs, 2 atol) on a square-root colour scale:
    one bright outlier (a specular highlight one pixel off) leaves the edges of a small shift visible."""
    vmax = max(_finite_range(pixel_diff)[1], 2 * atol, 1e-12)
    pooled, k = _pool(pixel_diff)
    lut = _inferno()
    rgb = lut[np.clip(np.round(np.sqrt(pooled / vmax) * 255), 0, 255).astype(np.uint8)]
    stops = ",".join(f"rgb{tuple(int(v) for v in lut[i])} {100 * i / 255:.0f}%" for i in range(0, 256, 32))
    mark = f"<i style='left:{100 * np.sqrt(atol / vmax):.1f}%'></i>" if atol else ""
    unit = html.escape(stat.unit or "difference")
    pooled_note = f"; {k}x{k} max-pooled" if k > 1 else ""
    return (f"<figure class=wide>{heatmaps.add(rgb, 'difference heatmap')}"
            f"<figcaption>|DALI - reference| (max over channels{pooled_note})<br>"
            f"max abs {stat.max_abs}, mean abs {stat.mean_abs} {unit}"
            f"<div class=scale style='background:linear-gradient(to right,{stops})'>{mark}</div>"
            f"0 &rarr; {vmax:.4g} {unit}, square-root scale (mid-bar {vmax / 4:.3g})"
            + (f"; <span style='color:#0097a7'>|</span> atol {atol:.4g}" if atol else "")
            + "</figcaption></figure>")


def _mask(evidence: Atlas, ref_rgb: np.ndarray, masks: tuple, faint: float, rule: str) -> str:
    """Each pixel classed: equal (pale reference), differs within tolerance, over tolerance (judged or in the
    ignored border); pooled so that the strongest class of each block shows. Classes are tinted over the pale
    reference so the picture still says where they are."""
    differs, over, judged = masks
    classes = differs.astype(np.uint8)
    classes[over & ~judged] = 2
    classes[over & judged] = 3
    pooled, k = _pool(classes)
    pale = ref_rgb.mean(axis=-1)[::k, ::k]
    # 16 grey levels: enough to orient by, and the mask stays a small palette picture
    pale = np.repeat((170 + np.floor(pale / 16) * (85 / 15))[..., None], 3, axis=-1)
    rgb = pale.copy()
    for code, colour in ((1, _WITHIN), (2, _BORDER), (3, _OVER)):
        rgb[pooled == code] = 0.3 * pale[pooled == code] + 0.7 * np.array(colour)
    n = over.size
    counts = (f"<span class=swatch style='background:rgb{_OVER}'></span>{int((over & judged).sum())} over tolerance"
              f"<span class=swatch style='background:rgb{_BORDER}'></span>{int((over & ~judged).sum())} over in the "
              f"unjudged border<span class=swatch style='background:rgb{_WITHIN}'></span>"
              f"{int((differs & ~over).sum())} differ by more than {faint:.4g} (atol/10) but within tolerance, "
              f"of {n} pixels")
    pooled_note = f" ({k}x{k} blocks, strongest class shown)" if k > 1 else ""
    return (f"<figure class=wide>{evidence.add(np.round(rgb).astype(np.uint8), 'tolerance mask')}<figcaption>pixels over tolerance{pooled_note}<br>{counts}. {html.escape(rule)}"
            "</figcaption></figure>")


def _zoom(evidence: Atlas, shown: tuple, values: tuple, worst: tuple[int, int], channels) -> str:
    """Reference, DALI and DALI - reference around the worst pixel, x8 nearest neighbour, side by side
    (``shown``: the two pictures as drawn; ``values``: the two HWC tensors as compared)."""
    (ref_rgb, dali_rgb), (ref, dali) = shown, values
    h, w = ref.shape[:2]
    y, x = worst
    size_y, size_x = min(_ZOOM_WINDOW, h), min(_ZOOM_WINDOW, w)
    y0, x0 = min(max(y - size_y // 2, 0), h - size_y), min(max(x - size_x // 2, 0), w - size_x)
    window = (slice(y0, y0 + size_y), slice(x0, x0 + size_x))
    with np.errstate(invalid="ignore"):
        d = np.nan_to_num(dali[window] - ref[window], nan=np.inf, posinf=np.inf, neginf=-np.inf)
    # per pixel, the channel that differs most, with its sign
    d = np.take_along_axis(d, np.abs(d).argmax(axis=-1)[..., None], axis=-1)[..., 0]
    scale = max(_finite_range(np.abs(d))[1], 1e-12)
    t = np.clip(d / scale, -1.0, 1.0)[..., None]
    white = np.full(d.shape + (3,), 255.0)
    diff_rgb = np.where(t > 0, white * (1 - t) + np.array(_OVER) * t, white * (1 + t) + np.array((33, 102, 172)) * -t)
    figures = []
    at = f"({y}, {x}): DALI {_values(dali[y, x])} vs reference {_values(ref[y, x])}" + (f" ({channels})" if channels else "")
    for caption, rgb in (("reference", ref_rgb[window]), ("DALI", dali_rgb[window]),
                         ("DALI - reference", np.round(diff_rgb).astype(np.uint8))):
        big = np.repeat(np.repeat(rgb, _ZOOM, axis=0), _ZOOM, axis=1)
        _outline(big, (y - y0) * _ZOOM, (x - x0) * _ZOOM)
        figures.append(f"<figure>{evidence.add(big, f'zoom {caption}')}<figcaption>{caption}</figcaption></figure>")
    return ("<figure class=wide><div class=row style='margin:0;gap:4px;flex-wrap:nowrap'>" + "".join(figures) + "</div><figcaption>"
            f"x{_ZOOM} on rows {y0}..{y0 + size_y - 1}, columns {x0}..{x0 + size_x - 1}; worst pixel outlined, at "
            f"{html.escape(at)}. Difference of the channel that differs most: red DALI higher, blue lower, full "
            f"colour at &plusmn;{scale:.4g}</figcaption></figure>")


def _outline(big: np.ndarray, top: int, left: int) -> None:
    bottom, right = top + _ZOOM - 1, left + _ZOOM - 1
    big[top, left:right + 1] = big[bottom, left:right + 1] = _MARK
    big[top:bottom + 1, left] = big[top:bottom + 1, right] = _MARK


def _histograms(ref: np.ndarray, dali: np.ndarray, channels: str | None) -> str:
    """Per channel, the reference's and DALI's value histograms over that channel's own range (inline SVG)."""
    count = ref.shape[-1]
    names = channels if channels and len(channels) == count else "".join(map(str, range(count)))
    panels = [_histogram(ref[..., c].ravel(), dali[..., c].ravel(), f"channel {c} ({names[c]})")
              for c in range(count)]
    return ("<figure class=wide><div class=row style='margin:0;flex-wrap:nowrap'>" + "".join(panels) + "</div><figcaption>"
            "per-channel histograms (square-root counts), each on its channel's own range: reference (blue), "
            "DALI (orange); where their ranges differ widely each has its own axis, DALI's on top"
            "</figcaption></figure>")


def _histogram(ref: np.ndarray, dali: np.ndarray, title: str, width=260, height=100, bins=64) -> str:
    """One channel: the reference's and DALI's histograms with square-root counts (a padding spike leaves the
    rest visible), on one axis when their ranges are alike, else each on its own: the reference's below, DALI's
    above (a missing normalization then shows as the same shape on two scales)."""
    ref, dali = ref[np.isfinite(ref)], dali[np.isfinite(dali)]
    ranges = [_finite_range(a) for a in (ref, dali)]
    shared = _alike(*ranges)
    if shared:
        ranges = [(min(r[0] for r in ranges), max(r[1] for r in ranges))] * 2
    ranges = [(a, b if b > a else a + 1.0) for a, b in ranges]
    counts = [np.sqrt(np.histogram(a, bins=bins, range=r)[0]) for a, r in zip((ref, dali), ranges)]
    top = max(float(c.max()) for c in counts) or 1.0
    paths = []
    for c, colour in zip(counts, (_REF_COLOUR, _DALI_COLOUR)):
        points = " ".join(f"L{width * i / bins:.1f},{height - height * v / top:.1f} "
                          f"L{width * (i + 1) / bins:.1f},{height - height * v / top:.1f}" for i, v in enumerate(c))
        paths.append(f"<path d='M0,{height} {points} L{width},{height} Z' fill='{colour}' fill-opacity='.35' "
                     f"stroke='{colour}' stroke-width='1'/>")
    ticks = _ticks(ranges[0], height + 12, "#333" if shared else _REF_COLOUR, width)
    if not shared:
        ticks += _ticks(ranges[1], -3, _DALI_COLOUR, width)
    note = "" if shared else " (own axes)"
    return (f"<svg width='{width}' height='{height + 48}' viewBox='0 -30 {width} {height + 48}' "
            f"font-size='10' font-family='sans-serif'><title>{html.escape(title + note)}</title>"
            f"<text x='0' y='-18'>{html.escape(title + note)}</text>"
            f"<rect x='0' y='0' width='{width}' height='{height}' fill='#fff' stroke='#bbb'/>{''.join(paths)}{ticks}"
            "</svg>")


def _alike(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two value ranges are alike enough to share an axis: spans within 2x of each other, and together
    at most 1.5x the larger (not, say, -2..2.6 against 0..255)."""
    spans = (a[1] - a[0], b[1] - b[0])
    return min(spans) >= 0.5 * max(spans) and max(a[1], b[1]) - min(a[0], b[0]) <= 1.5 * max(spans)


def _ticks(value_range: tuple[float, float], y: float, colour: str, width: int) -> str:
    lo, hi = value_range
    return "".join(f"<text x='{x}' y='{y}' fill='{colour}' text-anchor='{anchor}'>{v:.4g}</text>"
                   for x, v, anchor in ((0, lo, "start"), (width / 2, (lo + hi) / 2, "middle"), (width, hi, "end")))


def _to_display(array: np.ndarray, layout: str, channels: str | None, pixels: bool, shared=None):
    """HWC uint8 RGB for a compared tensor, and how its values were mapped (onto ``shared``, the (lo, hi)
    value range of both sides, when given; else onto the tensor's own range)."""
    hwc = np.transpose(array, (1, 2, 0)) if layout == "CHW" else array
    hwc = hwc.astype(np.float64)
    if channels == "BGR" and hwc.shape[-1] == 3:
        hwc = hwc[..., ::-1]
    lo, hi = _finite_range(hwc)
    if pixels and lo >= -0.5 and hi <= 255.5:
        note = "values as pixels"
    else:
        lo, hi = shared or (lo, hi)
        hwc = (hwc - lo) / (hi - lo or 1.0) * 255.0
        note = f"scaled for display from {lo:.3g}..{hi:.3g}" + (" (both sides' range)" if shared else "")
    if hwc.shape[-1] == 1:
        hwc = np.repeat(hwc, 3, axis=-1)
    elif channels in ("BGR", "RGB"):  # why a BGR stage and the RGB one after it look alike
        note = f"{channels} data{' drawn as RGB' if channels == 'BGR' else ''}, {note}"
    bad = int(np.count_nonzero(~np.isfinite(hwc)))
    if bad:
        note = f"{note}; {bad} NaN or Inf values drawn white"
    return np.clip(np.round(np.nan_to_num(hwc, nan=255.0, posinf=255.0, neginf=255.0)), 0, 255).astype(np.uint8), note


def _finite_range(array: np.ndarray) -> tuple[float, float]:
    """(min, max) of the finite values, (0, 0) when there are none."""
    finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)


def _figure(tensors: Atlas, rgb: np.ndarray, caption: str, note: str) -> str:
    """A tensor as a picture: a lossy thumbnail, at most ``_THUMBNAIL`` pixels a side (its numbers are in the
    table; the evidence pictures are exact)."""
    return (f"<figure class=wide>{tensors.add(thumbnail(rgb, _THUMBNAIL), caption, 'thumb')}"
            f"<figcaption>{html.escape(caption)}<br>{html.escape(note)}</figcaption></figure>")


def safe_name(name: str) -> str:
    """``name`` as a file name and URL fragment, one to one: ASCII letters, digits, '.' and '_' kept, any other
    character spelled ``-<hex>-`` ('a+b' is 'a-2b-b', so it never shares a file with 'a_b')."""
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._") else f"-{ord(ch):x}-" for ch in name)
