"""Geometry: shapes, padding, shifts, mirroring and resampling filters, each tested as a model of the error.

A geometric cause is named when undoing it (shifting back, mirroring back, smoothing away a filter's
high frequencies) leaves DALI within the stage's tolerance of the reference, or when sizes and padding
counts match the cause's arithmetic exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from parity.config.load import Tolerance
from parity.diagnose import advice
from parity.diagnose.causes import PIPELINE, Advice, Cause, CauseKind, Confidence, Evidence, Sides
from parity.diagnose.fits import Residual, residual_of

_FEW = 4  # a shift of at most this many pixels is a rounding, beyond it a window placed elsewhere


def spatial_size(shape: tuple, layout: str) -> tuple[int, int] | None:
    """(height, width) of a 3-d tensor in ``layout`` (guessed from the channel count when unknown)."""
    if len(shape) != 3:
        return None
    layout = layout if layout in ("HWC", "CHW") else ("HWC" if shape[-1] in (1, 3, 4) else "CHW")
    return (shape[0], shape[1]) if layout == "HWC" else (shape[1], shape[2])


def _sizes(params: dict, what: str) -> Evidence:
    return Evidence(f"{what} (exact arithmetic on sizes)", params)


def shape_causes(dali_shape: tuple, ref_shape: tuple, dali_layout: str, *, ref_layout: str = "",
                 input_hw: tuple | None = None, sides: Sides = PIPELINE, turned=None) -> tuple:
    """Explain a shape mismatch; ``input_hw`` (the decoded image's size) lets a resize difference be told
    as the rule each side applied: which edge was fitted, whether the aspect ratio was kept; ``turned()``
    says whether the pixels show an image turned by 90 degrees, where the sizes allow it. Nothing is
    named when no rule reproduces both sizes."""
    d, r = tuple(dali_shape), tuple(ref_shape)
    shapes = {"dali": d, "reference": r}
    if sorted(d) == sorted(r) and len(d) == 3 and d != r and (d == (r[1], r[2], r[0]) or d == (r[2], r[0], r[1])):
        return (Cause(CauseKind.LAYOUT, f"Layout differs: {sides.actual} {d} ({dali_layout or 'HWC'}) is "
                                        f"{sides.expected} {r} transposed (HWC vs CHW)", advice.layout_advice(""),
                      _sizes(shapes, "the same axes in another order"), Confidence.EXACT),)
    dhw, rhw = spatial_size(d, dali_layout), spatial_size(r, ref_layout)
    if not (dhw and rhw):
        return ()
    dc = d[-1] if (dali_layout or "HWC") == "HWC" else d[0]
    rc = r[-1] if (ref_layout or "HWC") == "HWC" else r[0]
    if dc == 1 and rc == 3 and dhw == rhw:
        return (Cause(CauseKind.GRAYSCALE, f"{sides.Actual} has 1 channel {d} where {sides.expected} has 3 {r}: the "
                                           "image was converted to grayscale", advice.grayscale_advice(),
                      _sizes(shapes, "same height and width, one channel instead of three"), Confidence.EXACT),)
    if dhw == rhw[::-1] and dhw != rhw:
        return (Cause(CauseKind.SIZE_SWAPPED, f"Height and width are swapped: {sides.actual} {dhw[0]}x{dhw[1]}, "
                                              f"{sides.expected} {rhw[0]}x{rhw[1]}", advice.swapped_advice(),
                      _sizes(shapes, "(H, W) read as (W, H)"), Confidence.EXACT),)
    if input_hw:
        cause = _resize_rule(dhw, rhw, tuple(input_hw), sides, turned or (lambda: False))
        if cause:
            return (cause,)
    return (Cause(CauseKind.SIZE, f"Output size differs: {sides.actual} {d}, {sides.expected} {r}",
                  advice.size_advice(),
                  _sizes(shapes, "different output sizes"), Confidence.EXACT),)


def swapped_size_cause(dali_args: dict, ref_step: dict | None, where: str = "") -> Cause | None:
    """fn.resize(size=...) given the reference's scale as written: MMCV's scale is (W, H), DALI's size (H, W)."""
    step = ref_step or {}
    size, scale = dali_args.get("size"), step.get("scale")
    if not isinstance(size, (list, tuple)) or not isinstance(scale, (list, tuple)) or len(size) != 2 or \
            len(scale) != 2 or [float(v) for v in size] != [float(v) for v in scale] or size[0] == size[1]:
        return None
    want = f"({scale[1]:g}, {scale[0]:g})"
    return Cause(CauseKind.SIZE_SWAPPED, f"fn.resize has size={tuple(size)}, the reference's {step.get('type')} "
                                         f"scale={tuple(scale)} copied as is: MMCV's scale is (W, H), DALI's size "
                                         "is (H, W)",
                 Advice(f"set size={want}.", "size", want, where),
                 _sizes({"size": tuple(size), "scale": tuple(scale)}, "the resize arguments of both sides"),
                 Confidence.EXACT)


def _resize_rule(dhw, rhw, in_hw, sides: Sides, turned_pixels) -> Cause | None:
    h0, w0 = in_hw
    sd, sr = (dhw[0] / h0, dhw[1] / w0), (rhw[0] / h0, rhw[1] / w0)
    kept = lambda s: abs(s[0] - s[1]) <= 0.02 * max(s) + 1.0 / min(h0, w0)  # noqa: E731
    evidence = _sizes({"input": in_hw, "dali": dhw, "reference": rhw, "dali_scale": sd, "reference_scale": sr},
                      "the scale each side applied to the input")
    desc = f"from {h0}x{w0}, {sides.actual} resizes to {dhw[0]}x{dhw[1]}, {sides.expected} to {rhw[0]}x{rhw[1]}"
    turned = (dhw[0] / w0, dhw[1] / h0)  # the scale had the input been turned by 90 degrees first
    # a stretch into a box of the transposed aspect has the same sizes: only the pixels tell them apart
    if h0 != w0 and kept(sr) and not kept(sd) and kept(turned) and turned_pixels():
        return Cause(CauseKind.ORIENTATION, f"{sides.Actual}'s image is turned by 90 degrees before it is resized "
                                            f"({desc}: {sides.actual}'s output has the input's aspect ratio transposed, "
                                            f"{w0}x{h0}): an operator rotates or transposes it (fn.rotate, "
                                            "fn.transpose, an HW layout read as WH)",
                     Advice("remove the rotation or transposition from the inference pipeline.", "angle"),
                     _sizes({**evidence.params, "turned_scale": turned}, "the scale of the input turned by 90 degrees"),
                     Confidence.EXACT)
    if kept(sr) and not kept(sd):
        return Cause(CauseKind.STRETCH, f"{sides.Actual} stretches the image ({desc}): the aspect ratio is not kept, "
                                        f"while {sides.expected} keeps it", advice.stretch_advice(), evidence,
                     Confidence.EXACT)
    if kept(sd) and not kept(sr):
        return Cause(CauseKind.STRETCH, f"{sides.Expected} stretches the image and {sides.actual} keeps the aspect "
                                        f"ratio ({desc})",
                     advice.keep_ratio_advice(), evidence, Confidence.EXACT)
    if all(abs(d - r) <= 1 for d, r in zip(dhw, rhw)):
        return Cause(CauseKind.SIZE_ROUNDING, f"The output size differs by one pixel ({desc}): the two sides round "
                                              "the scaled size differently", advice.rounding_advice(), evidence,
                     Confidence.EXACT)
    if kept(sd) and kept(sr):
        d_short, d_long, r_short, r_long = min(dhw), max(dhw), min(rhw), max(rhw)
        if d_long == r_short or d_short == r_long:
            return Cause(CauseKind.RESIZE_EDGE, f"The two sides fit a different edge to the same length ({desc}; "
                                                f"scale {sd[0]:.4g} vs {sr[0]:.4g}): one fits the short edge, the "
                                                "other the long edge", advice.edge_advice(), evidence, Confidence.EXACT)
        return Cause(CauseKind.SIZE, f"Both keep the aspect ratio but scale differently ({desc}; scale {sd[0]:.4g} "
                                     f"vs {sr[0]:.4g}): the resize target size differs", advice.size_advice(),
                     evidence, Confidence.EXACT)
    return None


def _edge_fills(x: np.ndarray, axis: int) -> list:
    """Candidate fills of a padded (C,H,W) tensor: its first and last lines along ``axis`` when constant."""
    fills = []
    for index in (0, -1):
        line = np.take(x, index, axis=axis)  # (C, L)
        if np.all(np.abs(line - line[:, :1]) <= 1e-6):
            fills.append(line[:, 0])
    return fills


def _pad_extents(dali: np.ndarray, ref: np.ndarray, axis: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Lines (axis=1 rows, 2 columns) of padding at the start and end of each (C,H,W) tensor.

    A fill both tensors show at an edge is the padding (an image that is flat near one edge is not);
    otherwise each tensor's own edge fill is taken, as when only one side normalizes.
    """
    d_fills, r_fills = _edge_fills(dali, axis), _edge_fills(ref, axis)
    shared = [f for f in d_fills if any(np.allclose(f, g, atol=1e-6) for g in r_fills)]
    d_fill = shared[0] if shared else (d_fills[0] if d_fills else None)
    r_fill = shared[0] if shared else (r_fills[0] if r_fills else None)
    return _pad_extent(dali, axis, d_fill), _pad_extent(ref, axis, r_fill)


def _pad_extent(x: np.ndarray, axis: int, fill) -> tuple[int, int]:
    if fill is None:
        return 0, 0
    lines = np.moveaxis(x, axis, 0).reshape(x.shape[axis], x.shape[0], -1)
    is_pad = np.all(np.abs(lines - fill.reshape(1, -1, 1)) <= 1e-6, axis=(1, 2))
    if is_pad.all():
        return 0, 0
    return int(np.argmin(is_pad)), int(np.argmin(is_pad[::-1]))


def padding_cause(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance, sides: Sides = PIPELINE) -> Cause | None:
    """Constant padding placed differently: one side letterboxes and the other fills the canvas (stretch),
    or the same padding is split differently (pad side, anchor rounding; checked by shifting back)."""
    for axis, (lead, trail), what in ((1, ("above", "below"), "rows"), (2, ("left", "right"), "columns")):
        d, r = _pad_extents(dali, ref, axis)
        params = {"dali": d, "reference": r, "axis": what}
        # one side letterboxes (4 lines of fill or more, other than the other side's: that side's own "fill"
        # may be the image's flat border): the model is the letterboxed image stretched onto the whole canvas
        if abs(sum(r) - sum(d)) >= 4:
            for reference_boxes in (True, False):
                cause = _stretch_cause(dali, ref, axis, r if reference_boxes else d, reference_boxes, tolerance,
                                       sides)
                if cause:
                    return cause
        fill = _pad_value_cause(dali, ref, axis, d, r, tolerance, sides)
        if fill:
            return fill
        # compare the split only when the same amount of padding exists (within one line of resampling)
        if d == r or abs(sum(d) - sum(r)) > 1 or max(sum(d), sum(r)) < 2:
            continue
        shift = (r[0] - d[0], 0) if axis == 1 else (0, r[0] - d[0])
        residual = residual_of(np.roll(dali, shift, axis=(1, 2)), ref, tolerance,
                               _inner(dali.shape, abs(sum(d) - sum(r)) + 1))
        if not residual.explained:
            continue
        evidence = residual.evidence(f"{sides.actual} shifted by the difference of the padding splits "
                                     f"({shift[0]} rows, {shift[1]} columns)", params)
        split = f"{sides.actual} {d[0]} {what} {lead} and {d[1]} {trail}, {sides.expected} {r[0]} and {r[1]}"
        if min(d) == 0 and min(r) > 0:
            kind, finding = CauseKind.PAD_SIDE, f"{sides.Actual} pads only {trail if d[0] == 0 else lead} while " \
                                                f"{sides.expected} centres the image ({split})"
        elif min(r) == 0 and min(d) > 0:
            kind, finding = CauseKind.PAD_SIDE, f"{sides.Actual} centres the image while {sides.expected} pads only " \
                                                f"{trail if r[0] == 0 else lead} ({split})"
        else:
            kind, finding = CauseKind.OFFSET, f"The padding is split differently ({split}): the crop/pad anchor " \
                                              "is rounded or placed differently"
        return Cause(kind, finding, advice.anchor_advice(what, r), evidence)
    return None


def _stretch_cause(dali, ref, axis: int, p: tuple, reference_boxes: bool, tolerance: Tolerance,
                   sides: Sides) -> Cause | None:
    if sum(p) < 4:
        return None
    boxed, full = (ref, dali) if reference_boxes else (dali, ref)
    bars = np.take(full - boxed, [*range(p[0]), *range(full.shape[axis] - p[1], full.shape[axis])], axis=axis)
    if np.abs(bars).mean() <= tolerance.atol:
        return None  # the other side shows the same fill there: no image was stretched over it
    residual = filter_residual(_stretched(boxed, axis, p), full, tolerance)
    if not residual.explained:
        return None
    what, (lead, trail) = ("rows", ("above", "below")) if axis == 1 else ("columns", ("left", "right"))
    padded, filled = (sides.Expected, sides.actual) if reference_boxes else (sides.Actual, sides.expected)
    fix = advice.stretch_advice() if reference_boxes else advice.keep_ratio_advice()
    return Cause(CauseKind.STRETCH, f"{padded} letterboxes the image ({p[0]} {what} {lead}, {p[1]} {trail} of "
                                    f"padding) while {filled} fills the whole canvas: one side stretches the image "
                                    "instead of keeping its aspect ratio", fix,
                 residual.evidence(f"the letterboxed image stretched over the {what} of the canvas, both sides "
                                   "smoothed by a 13x13 box", {"letterbox": p, "axis": what}))


def _pad_value_cause(dali, ref, axis: int, d: tuple, r: tuple, tolerance: Tolerance, sides: Sides) -> Cause | None:
    """The same padding lines filled with another value: DALI's fill replaced by the reference's matches."""
    if d != r or sum(d) < 2:
        return None
    d_fills, r_fills = _edge_fills(dali, axis), _edge_fills(ref, axis)
    if not d_fills or not r_fills or np.abs(d_fills[0] - r_fills[0]).max() <= tolerance.atol:
        return None
    lines = [*range(d[0]), *range(dali.shape[axis] - d[1], dali.shape[axis])]
    refilled = dali.astype(np.float64).copy()
    index: list[slice | list[int]] = [slice(None)] * 3
    index[axis] = lines
    refilled[tuple(index)] = np.expand_dims(r_fills[0], tuple(range(1, 3)))
    residual = residual_of(refilled, ref, tolerance)
    if not residual.explained:
        return None
    what = "rows" if axis == 1 else "columns"
    want = _fill_text(r_fills[0])
    return Cause(CauseKind.PAD_VALUE, f"{sides.Actual} pads with {_fill_text(d_fills[0])} where {sides.expected} pads "
                                      f"with {want} ({d[0]} + {d[1]} {what} of padding on both sides)",
                 Advice(f"set fill_values={want} (in this stage's units) in the operator that pads.", "fill_values",
                        want),
                 residual.evidence(f"{sides.actual}'s padding refilled with {sides.expected}'s value",
                                   {"dali_fill": d_fills[0], "reference_fill": r_fills[0], "axis": what}))


def _fill_text(values) -> str:
    return "[" + ", ".join(f"{float(v):.6g}" for v in np.atleast_1d(values)) + "]"


TURNS = {"rotated 90 degrees clockwise": lambda x: np.rot90(x, 1, (1, 2)),  # each turns a (C,H,W) image back
         "rotated 90 degrees counter-clockwise": lambda x: np.rot90(x, 3, (1, 2)),
         "rotated 180 degrees": lambda x: np.rot90(x, 2, (1, 2)),
         "transposed": lambda x: np.swapaxes(x, 1, 2),
         "anti-transposed": lambda x: np.rot90(np.swapaxes(x, 1, 2), 2, (1, 2))}


def orientation_cause(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance, sides: Sides = PIPELINE, *,
                      decoder: bool = True) -> Cause | None:
    """DALI's image is the reference's rotated or transposed: turned back, it matches. At a decoder, EXIF
    orientation applied on one side only; elsewhere an operator that turns the image."""
    for name, turn in TURNS.items():
        back = turn(dali)
        if back.shape != ref.shape:
            continue
        residual = residual_of(back, ref, tolerance)
        if residual.explained:
            return turned(name, residual.evidence(f"{sides.actual} turned back ({name})"), sides, decoder=decoder)
    return None


def turned(name: str, evidence: Evidence, sides: Sides, *, decoder: bool) -> Cause:
    """DALI's image is the reference's turned as ``name`` says (a key of :data:`TURNS`)."""
    if not decoder:
        return Cause(CauseKind.ORIENTATION, f"{sides.Actual}'s image is {sides.expected}'s {name}: an operator "
                                            "turns it (fn.rotate, fn.transpose, fn.flip on both axes, or an "
                                            "HW layout read as WH)",
                     Advice("remove the rotation or transposition from the inference pipeline.", "angle"), evidence)
    return Cause(CauseKind.ORIENTATION, f"{sides.Actual}'s image is {sides.expected}'s {name}: the EXIF "
                                        "orientation is applied on one side only",
                 Advice("apply the EXIF orientation when decoding (fn.decoders.image(..., "
                        "adjust_orientation=True), DALI's default).", "adjust_orientation", "True"), evidence)


def _stretched(x: np.ndarray, axis: int, pad: tuple) -> np.ndarray:
    """The image inside ``pad`` lines of padding along ``axis`` of a (C,H,W) tensor, resized (bilinear) to
    fill the whole tensor."""
    import cv2

    content = np.take(x, range(pad[0], x.shape[axis] - pad[1]), axis=axis)
    hwc = np.ascontiguousarray(np.moveaxis(content, 0, -1), dtype=np.float32)
    resized = cv2.resize(hwc, (x.shape[2], x.shape[1]), interpolation=cv2.INTER_LINEAR)
    return np.moveaxis(resized.reshape(x.shape[1], x.shape[2], -1), -1, 0).astype(np.float64)


def _inner(shape: tuple, reach: int) -> tuple:
    """The index of a (C,H,W) tensor without ``reach`` lines at each spatial edge (all when too small)."""
    return (slice(None),) + tuple(slice(reach, n - reach) if n > 2 * reach + 2 else slice(None) for n in shape[1:])


MIRRORS = {"horizontally": lambda x: np.flip(x, 2), "vertically": lambda x: np.flip(x, 1)}


def flip_cause(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance, sides: Sides = PIPELINE) -> Cause | None:
    for name, mirror in MIRRORS.items():
        residual = residual_of(mirror(dali), ref, tolerance)
        if residual.explained:
            return mirrored(name, residual.evidence(f"{sides.actual} mirrored back {name}"), sides)
    return None


def mirrored(name: str, evidence: Evidence, sides: Sides) -> Cause:
    return Cause(CauseKind.FLIP, f"{sides.Actual}'s image is mirrored {name} relative to {sides.expected}",
                 advice.flip_advice(), evidence)


def shift_cause(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance, sides: Sides = PIPELINE,
                candidates=None) -> Cause | None:
    """A window moved by any whole number of pixels the two windows still overlap over (a crop anchor rounded or
    placed differently), found by phase correlation (``candidates``: its shifts, when already computed) and judged
    where the windows overlap."""
    from parity.diagnose.registration import translation

    moved = translation(dali, ref, tolerance, candidates)
    if moved is None:
        return None
    evidence = moved.residual.evidence(f"{sides.actual} shifted back by ({-moved.dy}, {-moved.dx}), judged where "
                                       f"both windows overlap ({100 * moved.overlap:.0f}% of the stage)",
                                       {"dy": moved.dy, "dx": moved.dx})
    return shifted(moved.dy, moved.dx, moved.before, evidence, sides)


def shifted(dy: int, dx: int, before: float, evidence: Evidence, sides: Sides, also: str = "") -> Cause:
    """DALI's window moved by (dy, dx) from the reference's; ``before``: the mean error over the overlap before the
    shift is undone, ``evidence`` what is left after (params dy, dx), ``also`` what else was undone for it."""
    small = max(abs(dy), abs(dx)) <= _FEW
    why = "a crop offset or padding split rounded differently" if small else "the crop window is placed elsewhere"
    undone = f"shifted back and {also}" if also else "shifted back"
    return Cause(CauseKind.OFFSET, f"{sides.Actual}'s image is shifted by {dy} rows and {dx} columns from "
                                   f"{sides.expected} (mean error {before:.3g} falls to {evidence.residual_mean:.3g} "
                                   f"when {undone}): {why}", advice.shift_advice(), evidence)


def zoom_cause(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance, sides: Sides, factor: float | None) -> \
        Cause | None:
    """A uniform zoom about the centre by ``factor`` (``registration.zoom_factor`` of the pair): the magnified side
    shrunk back onto the other matches, both smoothed."""
    from parity.diagnose.registration import zoom

    found = zoom(dali, ref, tolerance, smoothed, factor)
    if found is None:
        return None
    return zoomed(found.factor, found.residual.evidence(f"{ZOOM_UNDONE} by {found.factor:.4g} about the centre, both "
                                                        "smoothed by a 13x13 box", {"factor": found.factor}), sides)


ZOOM_UNDONE = "the magnified side shrunk back onto the other"


def zoomed(f: float, evidence: Evidence, sides: Sides) -> Cause:
    """DALI's image is the reference's magnified ``f`` times about the centre."""
    shows = (f"{sides.actual} shows the central {100 / f:.0f}% of {sides.expected}'s width and height, enlarged"
             if f > 1 else f"{sides.actual} shows {100 / f:.0f}% of {sides.expected}'s width and height, reduced")
    return Cause(CauseKind.ZOOM, f"{sides.Actual}'s image is {sides.expected}'s magnified {f:.4g} times about the "
                                 f"centre ({shows}): a crop or resize of another size, or in another order",
                 advice.size_advice(), evidence)


def smoothed(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``x`` through the 13x13 box that judges resampled pixels (see :func:`filter_residual`), widened ``scale``
    times for pixels magnified that much."""
    return _smooth(x, round(_SMOOTH * scale))


def centre_window(x: np.ndarray, hw: tuple) -> np.ndarray:
    """The (C, hw) window of a (C,H,W) image about its exact centre (bilinear where the centre falls between
    pixels)."""
    import cv2

    hwc = np.ascontiguousarray(np.moveaxis(x, 0, -1), dtype=np.float32)
    centre = ((x.shape[2] - 1) / 2, (x.shape[1] - 1) / 2)
    window = cv2.getRectSubPix(hwc, (int(hw[1]), int(hw[0])), centre)
    return np.moveaxis(window.reshape(int(hw[0]), int(hw[1]), -1), -1, 0).astype(np.float64)


def _smooth(x: np.ndarray, radius: int) -> np.ndarray:
    """A (2r+1)-box mean over each channel (edges clamped): what survives of an image after a resampling
    filter's own high frequencies are removed. In single precision unless ``x`` is in double."""
    import cv2

    k = 2 * radius + 1
    hwc = np.ascontiguousarray(np.moveaxis(x, 0, -1), dtype=np.result_type(x.dtype, np.float32))
    out = cv2.blur(hwc, (k, k), borderType=cv2.BORDER_REPLICATE).reshape(hwc.shape)
    return np.moveaxis(out, -1, 0)


_SMOOTH = 6  # box radius: 13x13 pixels


def filter_residual(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance) -> Residual:
    """The difference left once both sides are smoothed with a 13x13 box: two resampling filters differ only
    in fine detail, so what a different filter, antialiasing or sub-pixel scale causes vanishes here; a
    shift, a scale or a value error does not. Judged per element (atol, max_mismatch): the stage's mean
    criterion measures fine detail, which smoothing removes by construction."""
    elementwise = dataclasses.replace(tolerance, mean_atol=None)
    return residual_of(_smooth(dali, _SMOOTH), _smooth(ref, _SMOOTH), elementwise, _inner(dali.shape, _SMOOTH))


def _within_local_contrast(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance) -> bool:
    """Two interpolating filters applied to the same image differ by at most the image's own variation
    around each pixel (the range of its 5x5 neighbourhood): a difference on a flat region is no filter's."""
    from scipy import ndimage

    size = (1, 5, 5)
    contrast = ndimage.maximum_filter(ref, size=size) - ndimage.minimum_filter(ref, size=size)
    beyond = np.abs(dali.astype(np.float64) - ref) > contrast + tolerance.atol
    return float(np.count_nonzero(beyond)) / beyond.size <= tolerance.max_mismatch


def interpolation_cause(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance) -> Cause | None:
    residual = filter_residual(dali, ref, tolerance)
    if not residual.explained or not _within_local_contrast(dali, ref, tolerance):
        return None
    before = float(np.abs(dali.astype(np.float64) - ref)[_inner(dali.shape, _SMOOTH)].mean())
    return Cause(CauseKind.INTERPOLATION, f"The values differ only in fine detail (mean abs {before:.3g}, within "
                                          "tolerance once both are smoothed): a different resize filter, "
                                          "antialiasing or sub-pixel scale", advice.filter_advice(),
                 residual.evidence("both sides smoothed by a 13x13 box (a filter difference leaves no residual; "
                                   "every difference within the image's local 5x5 range)",
                                   {"mean_abs_before": before}))


_PIL_FILTERS = {0: "NEAREST", 1: "BILINEAR", 2: "BICUBIC", 3: "LANCZOS", 4: "BILINEAR"}
_CV2_FILTERS = {0: "INTER_NEAREST_EXACT", 1: "INTER_LINEAR", 2: "INTER_CUBIC", 3: "INTER_LANCZOS4"}


def resampled(image: np.ndarray, out_hw: tuple, dali_args: dict) -> np.ndarray | None:
    """An (H,W,C) uint8 image resized to ``out_hw`` with fn.resize's filter and antialiasing as written:
    Pillow for an antialiasing resize (its filters widen when shrinking, as DALI's do), OpenCV without.
    None for a filter neither reproduces."""
    interp = int(dali_args.get("interp_type", dali_args.get("min_filter", 1)))
    antialias = bool(dali_args.get("antialias", True))
    if image.ndim != 3 or image.dtype != np.uint8 or image.shape[-1] not in (1, 3):
        return None
    if antialias or interp == 0:
        from PIL import Image

        if interp not in _PIL_FILTERS:
            return None
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        out = np.asarray(pil.resize((out_hw[1], out_hw[0]), getattr(Image.Resampling, _PIL_FILTERS[interp])))
        return out.reshape(out_hw[0], out_hw[1], image.shape[-1])
    import cv2

    if interp not in _CV2_FILTERS:
        return None
    out = cv2.resize(image, (out_hw[1], out_hw[0]), interpolation=getattr(cv2, _CV2_FILTERS[interp]))
    return out.reshape(out_hw[0], out_hw[1], image.shape[-1])


def resize_as_written(dali: np.ndarray, resize_input: np.ndarray, dali_args: dict,
                      tolerance: Tolerance) -> Residual | None:
    """The resize's input, resized as fn.resize's arguments say, against DALI's (C,H,W) output: explained when
    the arguments as written reproduce DALI's output (the reference uses another filter)."""
    simulated = resampled(resize_input, dali.shape[1:], dali_args)
    if simulated is None:
        return None
    return residual_of(np.moveaxis(simulated, -1, 0).astype(np.float64), dali, tolerance)


def crop_windows(pixels: np.ndarray, shape: tuple, op: str, args: dict) -> list[np.ndarray]:
    """The (C,H,W) windows of ``pixels`` that a final operator of output ``shape`` may have read: the
    whole tensor, or for a cropping crop_mirror_normalize its window with the anchor rounded either way;
    crop_mirror_normalize(mirror=1) flips what it reads horizontally."""
    if pixels.shape == shape:
        windows = [pixels]
    elif op != "CropMirrorNormalize" or "crop" not in args or pixels.shape[0] != shape[0] or \
            pixels.shape[1] < shape[1] or pixels.shape[2] < shape[2]:
        return []
    else:
        anchors = [sorted({int(np.floor(v)), int(np.ceil(v))}) for v in (
            (pixels.shape[1] - shape[1]) * float(args.get("crop_pos_y", 0.5)),
            (pixels.shape[2] - shape[2]) * float(args.get("crop_pos_x", 0.5)))]
        windows = [pixels[:, y:y + shape[1], x:x + shape[2]] for y in anchors[0] for x in anchors[1]]
    if op == "CropMirrorNormalize" and args.get("mirror"):
        windows = [w[:, :, ::-1] for w in windows]
    return windows
