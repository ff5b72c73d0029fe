"""Colour changes fitted in pixel space: a per-channel gain and offset clipped to 0..255 (brightness and
contrast), or a 3x3 colour matrix (saturation, or any other linear colour transform). Tried where the
per-channel affine fit of :mod:`parity.diagnose.fits` leaves the difference unexplained: clipping at 255,
or channels that mix, are what it cannot express. As everywhere, a cause is named only when undoing it
leaves a residual within the stage's tolerance."""

from __future__ import annotations

import numpy as np

from parity.config.load import Tolerance
from parity.diagnose.causes import PIPELINE, Advice, Cause, CauseKind, Sides, fmt
from parity.diagnose.fits import residual_of

_LUMA = np.array([0.299, 0.587, 0.114])  # the weights DALI's fn.saturation/fn.hsv keep (YIQ's Y), in RGB order
_MIN_PIXELS = 256  # unclipped pixels needed to fit a 3x3 matrix and an offset


def _pixels(x: np.ndarray, mean, std) -> np.ndarray:
    if mean is None or std is None:
        return x.astype(np.float64)
    return x.astype(np.float64) * np.asarray(std, float)[:, None, None] + np.asarray(mean, float)[:, None, None]


def _values(pixels: np.ndarray, mean, std) -> np.ndarray:
    if mean is None or std is None:
        return pixels
    return (pixels - np.asarray(mean, float)[:, None, None]) / np.asarray(std, float)[:, None, None]


def colour_cause(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance, mean=None, std=None,
                 sides: Sides = PIPELINE) -> Cause | None:
    """DALI's (C,H,W) stage as ``clip(M @ reference + b, 0, 255)`` in pixel space (after undoing the model's
    normalization, ``mean``/``std``, where the stage is normalized)."""
    if dali.shape != ref.shape or dali.ndim != 3 or dali.shape[0] != 3:
        return None
    d, r = _pixels(dali, mean, std), _pixels(ref, mean, std)
    inside = np.all((d > 0.5) & (d < 254.5), axis=0).ravel()  # clipped on no channel
    if np.count_nonzero(inside) < _MIN_PIXELS or float(r.std()) < 1.0:
        return None
    flat_r, flat_d = r.reshape(3, -1), d.reshape(3, -1)
    fitted = None
    for matrix, offset in (_per_channel(flat_r[:, inside], flat_d[:, inside]),  # the simpler model first
                           _full(flat_r[:, inside], flat_d[:, inside])):
        if np.allclose(matrix, np.eye(3), atol=0.02) and np.all(np.abs(offset) < 1.0):
            return None  # the identity: the difference is not a colour change
        raw = matrix @ flat_r + offset[:, None]
        residual = residual_of(_values(np.clip(raw, 0, 255).reshape(r.shape), mean, std), dali, tolerance)
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


def _per_channel(r: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A gain and an offset per channel, fitted by least squares: a diagonal matrix."""
    gains, offsets = [], []
    for x, y in zip(r, d):
        design = np.vstack([x, np.ones_like(x)]).T
        (gain, offset), *_ = np.linalg.lstsq(design, y, rcond=None)
        gains.append(gain)
        offsets.append(offset)
    return np.diag(gains), np.array(offsets)


def _full(r: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 3x3 matrix and an offset, fitted by least squares."""
    coef, *_ = np.linalg.lstsq(np.vstack([r, np.ones((1, r.shape[1]))]).T, d.T, rcond=None)
    return coef[:3].T, coef[3]


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
