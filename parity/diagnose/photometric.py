"""Colour changes fitted in pixel space: a per-channel gain and offset clipped to 0..255 (brightness and
contrast), or a 3x3 colour matrix (saturation, or any other linear colour transform). Tried where the
per-channel affine fit of :mod:`parity.diagnose.fits` leaves the difference unexplained: clipping at 255,
or channels that mix, are what it cannot express. As everywhere, a cause is named only when undoing it
leaves a residual within the stage's tolerance."""

from __future__ import annotations

import numpy as np

from parity.config.load import Tolerance
from parity.diagnose.causes import PIPELINE, Advice, Cause, CauseKind, Sides, fmt
from parity.diagnose.fits import SLACK, residual_of

_LUMA = np.array([0.299, 0.587, 0.114])  # the weights DALI's fn.saturation/fn.hsv keep (YIQ's Y), in RGB order
_MIN_PIXELS = 256  # unclipped pixels needed to fit a 3x3 matrix and an offset
_FILTER_LEAVES = 0.25  # the most of the difference's energy (grey level) a filter may leave to be judged


def _pixels(x: np.ndarray, mean, std) -> np.ndarray:
    if mean is None or std is None:
        return x.astype(np.float64)
    return x.astype(np.float64) * np.asarray(std, float)[:, None, None] + np.asarray(mean, float)[:, None, None]


def _values(pixels: np.ndarray, mean, std) -> np.ndarray:
    if mean is None or std is None:
        return pixels
    return (pixels - np.asarray(mean, float)[:, None, None]) / np.asarray(std, float)[:, None, None]


def colour_cause(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance, mean=None, std=None,
                 sides: Sides = PIPELINE, judged=None) -> Cause | None:
    """DALI's (C,H,W) stage as ``clip(M @ reference + b, 0, 255)`` in pixel space (after undoing the model's
    normalization, ``mean``/``std``, where the stage is normalized); ``judged``: a map both the model and DALI's
    stage go through before they are compared (the smoothing a resampled pair is judged through)."""
    if dali.shape != ref.shape or dali.ndim != 3 or dali.shape[0] != 3:
        return None
    d, r = _pixels(dali, mean, std), _pixels(ref, mean, std)
    # fitted where no channel is clipped (on every other row and column of a large stage); judged on every pixel
    step = 2 if min(r.shape[1:]) >= 64 else 1
    sample_r, sample_d = r[:, ::step, ::step].reshape(3, -1), d[:, ::step, ::step].reshape(3, -1)
    inside = np.all((sample_d > 0.5) & (sample_d < 254.5), axis=0)
    if np.count_nonzero(inside) < _MIN_PIXELS or float(sample_r.std()) < 1.0:
        return None
    fit_r, fit_d = sample_r[:, inside], sample_d[:, inside]
    flat_r = r.reshape(3, -1)
    fitted = None
    for matrix, offset in (_per_channel(fit_r, fit_d), _full(fit_r, fit_d)):  # the simpler model first
        if np.allclose(matrix, np.eye(3), atol=0.02) and np.all(np.abs(offset) < 1.0):
            return None  # the identity: the difference is not a colour change
        if judged is None and _hopeless(np.clip(np.einsum("ij,jn->in", matrix, sample_r) + offset[:, None], 0, 255),
                                        sample_d, tolerance, mean, std):
            continue
        raw = np.einsum("ij,jn->in", matrix, flat_r) + offset[:, None]
        model = _values(np.clip(raw, 0, 255).reshape(r.shape), mean, std)
        residual = residual_of(model, dali, tolerance) if judged is None else \
            residual_of(judged(model), judged(dali), tolerance)
        if residual.explained:
            fitted = matrix, offset, raw, residual
            break
    if fitted is None:
        return None
    matrix, offset, raw, residual = fitted
    clipped = float(np.mean((raw < -0.5) | (raw > 255.5)))  # the reference's values all lie in 0..255
    clipping = f", clipped to 0..255 ({100 * clipped:.1f}% of values)" if clipped > 0.001 else ""
    off_diagonal = np.abs(matrix - np.diag(np.diag(matrix))).max()  # 0 for the per-channel model
    advice = Advice("remove the colour operator left in the inference pipeline (fn.brightness_contrast, "
                    "fn.saturation, fn.hsv, fn.color_twist: training augmentations), or give it the reference's "
                    "values.", "brightness/contrast/saturation")
    params = {"matrix": matrix, "offset": offset, "newly_clipped": clipped}
    if off_diagonal == 0:
        gains = np.diag(matrix)
        return Cause(CauseKind.BRIGHTNESS_CONTRAST,
                     f"{sides.Actual}'s pixels are {sides.expected}'s x {fmt(gains)} + {fmt(offset)} per channel"
                     f"{clipping}: a brightness/contrast change",
                     advice, residual.evidence(f"{sides.actual} = clip(gain * {sides.expected} + offset, 0, 255) per "
                                               "channel, in pixel levels", params))
    hue = _hue(matrix)
    if hue is not None:
        angle, saturation = hue
        scaled = f" and saturation x {saturation:.3g}" if abs(saturation - 1) > 0.03 else ""
        return Cause(CauseKind.COLOR_TRANSFORM,
                     f"{sides.Actual}'s colours are {sides.expected}'s with the hue rotated by {angle:.3g} degrees"
                     f"{scaled} (the luma kept){clipping}: a hue change",
                     advice, residual.evidence(f"{sides.actual} = clip(M @ {sides.expected} + b, 0, 255), M a rotation "
                                               "of the chroma plane (YIQ) by the hue angle",
                                               {**params, "hue": angle, "saturation": saturation}))
    picked = _channel_selection(matrix, offset)
    if picked is not None:
        return Cause(CauseKind.COLOR_TRANSFORM,
                     f"{sides.Actual}'s channels hold {sides.expected}'s channels {list(picked)} (channel c is "
                     f"{sides.expected}'s channel {list(picked)}[c]): a channel copied over another",
                     Advice("fix the channel indices where the channels are sliced, concatenated or converted.",
                            "channels"),
                     residual.evidence(f"{sides.actual} channel c = {sides.expected} channel p[c]",
                                       {**params, "channels": picked}))
    named = _saturation(matrix)
    if named is not None:
        saturation, order = named
        return Cause(CauseKind.COLOR_TRANSFORM,
                     f"{sides.Actual}'s colours are {sides.expected}'s with saturation x {saturation:.3g} (the luma "
                     f"weights of {order} channels kept){clipping}: a saturation change",
                     advice, residual.evidence(f"{sides.actual} = clip(M @ {sides.expected} + b, 0, 255), M = W + s (I - "
                                               "W) for luma weights W", {**params, "saturation": saturation}))
    return Cause(CauseKind.COLOR_TRANSFORM,
                 f"{sides.Actual}'s colours are a 3x3 colour transform of {sides.expected}'s (rows {fmt(matrix[0])}, "
                 f"{fmt(matrix[1])}, {fmt(matrix[2])}; offset {fmt(offset)}){clipping}: hue, saturation or a "
                 "colour twist",
                 advice, residual.evidence(f"{sides.actual} = clip(M @ {sides.expected} + b, 0, 255)", params))


def _hopeless(model: np.ndarray, d: np.ndarray, tolerance: Tolerance, mean, std) -> bool:
    """A colour model that leaves ten times the allowed fraction beyond the limit on the (3, N) pixels it was
    fitted on (and those it clips): not worth judging on every pixel."""
    if mean is not None and std is not None:  # the limit is in the stage's units
        m, s = np.asarray(mean, float)[:, None], np.asarray(std, float)[:, None]
        model, d = (model - m) / s, (d - m) / s
    beyond = np.abs(model - d) > (tolerance.atol + tolerance.rtol * np.abs(d)) * SLACK
    return float(np.count_nonzero(beyond)) / beyond.size > 10 * tolerance.max_mismatch + 0.01


def _per_channel(r: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A gain and an offset per channel, fitted by least squares: a diagonal matrix."""
    r_mean, d_mean = r.mean(1), d.mean(1)
    rc = r - r_mean[:, None]
    variance = np.einsum("ij,ij->i", rc, rc)
    gains = np.einsum("ij,ij->i", rc, d - d_mean[:, None]) / np.maximum(variance, 1e-12)
    return np.diag(gains), d_mean - gains * r_mean


def _full(r: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 3x3 matrix and an offset, fitted by least squares (the normal equations of the centred channels)."""
    r_mean, d_mean = r.mean(1), d.mean(1)
    rc = r - r_mean[:, None]
    moments = np.einsum("in,jn->ij", rc, rc), np.einsum("in,jn->ij", rc, d - d_mean[:, None])
    matrix = np.linalg.lstsq(*moments, rcond=None)[0].T
    return matrix, d_mean - matrix @ r_mean


def _saturation(matrix: np.ndarray) -> tuple[float, str] | None:
    """``(s, 'RGB'|'BGR')`` when ``matrix`` is ``W + s (I - W)`` with W's rows the luma weights: the colours
    scaled towards their grey level, as fn.saturation does (on RGB, or on BGR data taken for RGB)."""
    best = None
    for order, weights in (("RGB", _LUMA), ("BGR", _LUMA[::-1])):
        grey = np.ones((3, 1)) @ weights[None, :]
        basis = np.eye(3) - grey
        s = float(np.sum((matrix - grey) * basis) / np.sum(basis * basis))
        error = float(np.abs(matrix - (grey + s * basis)).max())
        if error < 0.03 and (best is None or error < best[2]):
            best = (s, order, error)
    return None if best is None else (best[0], best[1])


# RGB -> YIQ, the space fn.hsv turns the hue in (its rows: Y, I, Q)
_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]])
_RGB = np.linalg.inv(_YIQ)


def _hue(matrix: np.ndarray) -> tuple[float, float] | None:
    """``(degrees, saturation)`` when ``matrix`` keeps the luma and turns (and scales) the chroma plane, as
    fn.hsv(hue=...) does; None for a plain saturation change (no turn) or anything else."""
    yiq = _YIQ @ matrix @ _RGB
    chroma = yiq[1:, 1:]
    scale = float(np.sqrt(max(np.linalg.det(chroma), 0.0)))
    angle = float(np.degrees(np.arctan2(chroma[0, 1] - chroma[1, 0], chroma[0, 0] + chroma[1, 1])))  # fn.hsv's sign
    turn = -np.radians(angle)
    rotation = scale * np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    keeps_luma = np.abs(yiq[0] - [1, 0, 0]).max() < 0.03 and np.abs(yiq[1:, 0]).max() < 0.03
    if not keeps_luma or np.abs(chroma - rotation).max() > 0.03 or abs(angle) < 2:
        return None
    return angle, scale


def _channel_selection(matrix: np.ndarray, offset: np.ndarray) -> tuple[int, ...] | None:
    """The source channel of each channel when every row of ``matrix`` picks one channel (a copy, no mixing)."""
    picked = tuple(int(i) for i in np.argmax(matrix, axis=1))
    if np.abs(matrix - np.eye(3)[list(picked)]).max() > 0.03 or np.abs(offset).max() > 2:
        return None
    return picked


def _gaussian(hwc: np.ndarray, sigma: float) -> np.ndarray:
    """A float32 (H,W) or (H,W,C) image through a Gaussian of ``sigma`` (radius round(3 sigma), mirrored edges:
    fn.gaussian_blur's)."""
    import cv2

    k = 2 * int(3 * sigma + 0.5) + 1
    return cv2.GaussianBlur(hwc, (k, k), sigma, borderType=cv2.BORDER_REFLECT_101).reshape(hwc.shape)


def _blurred(x: np.ndarray, sigma: float) -> np.ndarray:
    """A (C,H,W) image through fn.gaussian_blur's Gaussian of ``sigma``."""
    hwc = np.ascontiguousarray(np.moveaxis(x, 0, -1), dtype=np.float32)
    return np.moveaxis(_gaussian(hwc, sigma), -1, 0).astype(np.float64)


_SIGMAS = (0.3, 6.0)  # the range of sigma searched, in pixels


def _sigma(r: np.ndarray, d: np.ndarray) -> tuple[float, float]:
    """The sigma whose unsharp model ``r + a (r - G_sigma r)`` (``a`` by least squares) best fits ``d`` on the
    grey level (the model is linear: the grey of the filtered image is the filtered grey), found by a bounded
    Brent search on log sigma; and the fraction of ``d - r``'s energy the model leaves."""
    from scipy.optimize import minimize_scalar

    grey_r = np.ascontiguousarray(r.mean(0), dtype=np.float32)
    change = (d.mean(0) - r.mean(0)).astype(np.float32).ravel()
    energy = max(float(np.einsum("i,i", change, change)), 1e-12)

    def left(log_sigma: float) -> float:
        detail = (grey_r - _gaussian(grey_r, float(np.exp(log_sigma)))).ravel()
        along = float(np.einsum("i,i", detail, change))
        return 1 - along * along / max(float(np.einsum("i,i", detail, detail)), 1e-12) / energy

    best = minimize_scalar(left, bounds=np.log(_SIGMAS), method="bounded", options={"xatol": 0.01})
    return float(np.exp(best.x)), float(best.fun)


def _unsharp(r: np.ndarray, d: np.ndarray, sigma: float) -> tuple[float, np.ndarray]:
    """The amount ``a`` of ``r + a (r - G_sigma r)`` fitted to ``d`` by least squares, and the model."""
    detail = r - _blurred(r, sigma)
    amount = float((detail * (d - r)).sum() / max(float((detail * detail).sum()), 1e-12))
    return amount, np.clip(r + amount * detail, 0, 255)


def spatial_filter_cause(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance, mean=None, std=None,
                         sides: Sides = PIPELINE) -> Cause | None:
    """DALI's (C,H,W) stage as the reference's through a linear spatial filter, ``r + a (r - G_sigma r)`` in pixel
    levels: a Gaussian blur (a = -1), a partial blur (-1 < a < 0) or an unsharp-mask sharpening (a > 0), with
    sigma and a fitted. Sigma is searched on the grey level; the model is judged once, on every channel, only
    when it accounts for most of the difference there."""
    if dali.shape != ref.shape or dali.ndim != 3 or min(dali.shape[1:]) < 16 or not np.ptp(ref):
        return None
    d, r = _pixels(dali, mean, std), _pixels(ref, mean, std)
    sigma, left = _sigma(r, d)
    if left > _FILTER_LEAVES:
        return None
    amount, model = _unsharp(r, d, sigma)
    if abs(amount) < 0.05:
        return None
    residual = residual_of(_values(model, mean, std), dali, tolerance)
    if not residual.explained:
        return None
    if abs(amount + 1) <= 0.1:
        what = f"blurred with a Gaussian of sigma {sigma:.3g} pixels"
    elif amount < 0:
        what = f"partly blurred (a Gaussian of sigma {sigma:.3g} pixels, {100 * -amount:.0f}% of the way)"
    else:
        what = f"sharpened (an unsharp mask of sigma {sigma:.3g} pixels, amount {amount:.3g})"
    return Cause(CauseKind.SPATIAL_FILTER, f"{sides.Actual}'s image is {sides.expected}'s {what}: a filter the "
                                           "reference does not apply",
                 Advice("remove the blur or sharpening operator (fn.gaussian_blur, fn.filter, a training "
                        "augmentation) from the inference pipeline, or give it the reference's parameters.", "sigma"),
                 residual.evidence(f"{sides.actual} = clip({sides.expected} + a ({sides.expected} - G_sigma * "
                                   f"{sides.expected}), 0, 255), in pixel levels", {"sigma": sigma, "amount": amount}))
