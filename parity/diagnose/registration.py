"""Registration: where DALI's window lies in the reference's image. A translation over the whole range the
two windows still overlap (phase correlation finds it in one FFT), and a uniform zoom about the centre (a
one-parameter search on smoothed images). Either is named only when undoing it leaves DALI within the
stage's tolerance of the reference where the two windows overlap.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from parity.config.load import Tolerance
from parity.diagnose.fits import Residual, residual_of

_MIN_OVERLAP = 0.25  # the least fraction of the stage two windows must share for a translation to be judged
_PEAKS = 4  # correlation peaks verified by their residual, best first
_ZOOMS = np.exp(np.linspace(np.log(0.25), np.log(4.0), 49))  # the zoom factors tried first (6% apart)


@dataclasses.dataclass(frozen=True)
class Translation:
    """DALI's (C,H,W) stage is the reference's moved by ``dy`` rows and ``dx`` columns: DALI's pixel (y, x) is
    the reference's (y - dy, x - dx) (its window starts ``-dy, -dx`` from the reference's). ``residual`` is
    judged where the windows overlap, ``overlap`` of the stage."""

    dy: int
    dx: int
    residual: Residual
    overlap: float
    before: float  # mean abs difference over the same pixels before the shift is undone


def _grey(x: np.ndarray) -> np.ndarray:
    g = x.astype(np.float32).mean(0)
    return g - g.mean()


def _peaks(dali: np.ndarray, ref: np.ndarray) -> list[tuple[int, int]]:
    """The shifts (dy, dx) at the highest peaks of the phase correlation of the two (C,H,W) stages, zero-padded
    so that a shift of any size within the stage is told apart from its wrap-around (in single precision: a
    peak's place, not its height, is what is read)."""
    from scipy import fft

    h, w = dali.shape[1:]
    size = (2 * h, 2 * w)
    cross = fft.rfft2(_grey(dali), size) * np.conj(fft.rfft2(_grey(ref), size))
    corr = fft.irfft2(cross / np.maximum(np.abs(cross), 1e-9), size)
    top = np.argpartition(corr, -_PEAKS, axis=None)[-_PEAKS:]
    shifts = []
    for flat in top[np.argsort(corr.ravel()[top])[::-1]]:
        y, x = np.unravel_index(flat, size)
        shifts.append((int(y - size[0] if y >= h else y), int(x - size[1] if x >= w else x)))
    return shifts


def windows(shape: tuple, dy: int, dx: int) -> tuple[tuple, tuple]:
    """The index of the overlap in DALI's stage and in the reference's, for DALI(y, x) = reference(y - dy, x - dx)."""
    h, w = shape[1:]
    d = (slice(None), slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0)))
    r = (slice(None), slice(max(-dy, 0), h + min(-dy, 0)), slice(max(-dx, 0), w + min(-dx, 0)))
    return d, r


def shifts(dali: np.ndarray, ref: np.ndarray) -> list[tuple[int, int]]:
    """The candidate translations (dy, dx) of DALI's (C,H,W) stage, best first: the phase correlation's peaks other
    than (0, 0) whose windows still share enough of the stage. Phase correlation weighs every frequency alike, so
    a colour change or a blur on top of the shift leaves its peak in place."""
    if dali.shape != ref.shape or dali.ndim != 3 or min(dali.shape[1:]) < 8 or not np.ptp(ref):
        return []
    h, w = dali.shape[1:]
    return [(dy, dx) for dy, dx in _peaks(dali, ref)
            if (dy, dx) != (0, 0) and (h - abs(dy)) * (w - abs(dx)) >= _MIN_OVERLAP * h * w]


def translation(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance, candidates=None) -> Translation | None:
    """The translation that explains DALI's stage on the pixels both windows show, if one does (never (0, 0));
    ``candidates``: :func:`shifts` of the pair, when already computed.

    A shift that merely moves a difference out of the overlap is not taken: the shift must also bring the mean
    difference over those pixels down to a third."""
    h, w = dali.shape[1:] if dali.ndim == 3 else (0, 0)
    for dy, dx in shifts(dali, ref) if candidates is None else candidates:
        d, r = windows(dali.shape, dy, dx)
        residual = residual_of(dali[d], ref[r], dataclasses.replace(tolerance, border=0))
        before = float(np.abs(dali[d].astype(np.float64) - ref[d]).mean())
        if residual.explained and residual.mean_abs <= before / 3:
            return Translation(dy, dx, residual, (h - abs(dy)) * (w - abs(dx)) / (h * w), before)
    return None


@dataclasses.dataclass(frozen=True)
class Zoom:
    """DALI's stage is the reference's magnified ``factor`` times about the centre (less than 1: DALI shows more
    of the image, smaller); ``residual`` compares both smoothed where DALI's window lies within the reference's."""

    factor: float
    residual: Residual
    before: float


def _warp(x: np.ndarray, factor: float) -> np.ndarray:
    """A (C,H,W) stage magnified ``factor`` times about its centre (bilinear; smoothed first when it shrinks, as
    an antialiasing resize is), NaN where it has no pixels; in single precision."""
    import cv2

    h, w = x.shape[1:]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    hwc = np.ascontiguousarray(np.moveaxis(x, 0, -1), dtype=np.float32)
    source = cv2.GaussianBlur(hwc, (0, 0), 0.5 / factor).reshape(hwc.shape) if factor < 1 else hwc
    matrix = np.array([[factor, 0, cx * (1 - factor)], [0, factor, cy * (1 - factor)]])
    nan = float("nan")
    out = cv2.warpAffine(source, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=(nan, nan, nan, nan))
    return np.moveaxis(out.reshape(h, w, -1), -1, 0)


def _pair(dali: np.ndarray, ref: np.ndarray, factor: float, onto_dali: bool = False) -> tuple[np.ndarray, np.ndarray,
                                                                                             tuple]:
    """Both sides in the coarser of their two frames (the magnified side shrunk onto the other; ``onto_dali``: the
    reference's moved onto DALI's frame, whichever it is), and the index of the rectangle where both have pixels."""
    moved, other = (_warp(dali, 1 / factor), ref) if factor >= 1 and not onto_dali else (_warp(ref, factor), dali)
    valid = np.isfinite(moved).all(0)
    rows, cols = np.flatnonzero(valid.any(1)), np.flatnonzero(valid.any(0))
    if rows.size < 3 or cols.size < 3:
        return moved, other, (slice(None), slice(0, 0), slice(0, 0))
    return moved, other, (slice(None), slice(rows[0] + 1, rows[-1]), slice(cols[0] + 1, cols[-1]))


def _zoom_error(dali: np.ndarray, ref: np.ndarray, factor: float) -> float:
    """The mean difference where both sides have pixels, once a gain and an offset fitted between them are undone
    (a brightness change on top of the zoom leaves its minimum in place)."""
    moved, other, inner = _pair(dali, ref, factor)
    x, y = moved[inner].ravel(), other[inner].ravel()
    if x.size <= _MIN_OVERLAP * moved.size / max(factor, 1 / factor) ** 2:
        return np.inf
    x, y = x - x.mean(), y - y.mean()
    gain = float(np.einsum("i,i", x, y)) / max(float(np.einsum("i,i", x, x)), 1e-12)
    return float(np.abs(y - gain * x).mean())


def _pooled(x: np.ndarray, step: int) -> np.ndarray:
    """The grey level of a (C,H,W) stage averaged over ``step`` x ``step`` blocks, as (1, H/step, W/step)."""
    import cv2

    grey = x.astype(np.float32).mean(0)
    h, w = grey.shape
    return cv2.resize(grey, (w // step, h // step), interpolation=cv2.INTER_AREA)[None]


def zoom_factor(dali: np.ndarray, ref: np.ndarray) -> float | None:
    """The magnification about the centre that best maps the reference's (C,H,W) stage onto DALI's: searched on a
    coarse grid at quarter resolution (None when no factor halves the difference there, or the best is 1),
    refined at half resolution, then within 1% at full resolution (a strong shrink aliases at half)."""
    if dali.shape != ref.shape or dali.ndim != 3 or min(dali.shape[1:]) < 32 or not np.ptp(ref):
        return None
    d_q, r_q = _pooled(dali, 4), _pooled(ref, 4)
    errors = [_zoom_error(d_q, r_q, f) for f in _ZOOMS]
    best = int(np.argmin(errors))
    if errors[best] > errors[len(_ZOOMS) // 2] / 2:  # the grid's middle factor is 1
        return None
    bracket = _ZOOMS[max(best - 1, 0)], _ZOOMS[min(best + 1, len(_ZOOMS) - 1)]
    factor = _golden(_pooled(dali, 2), _pooled(ref, 2), *bracket, steps=9)  # to 0.2%
    grey_d, grey_r = dali.astype(np.float32).mean(0, keepdims=True), ref.astype(np.float32).mean(0, keepdims=True)
    factor = _vertex(grey_d, grey_r, factor * np.linspace(0.99, 1.01, 11))
    return None if abs(np.log(factor)) < 0.01 else float(factor)


def _vertex(dali: np.ndarray, ref: np.ndarray, factors: np.ndarray) -> float:
    """The vertex of the parabola fitted to the errors at ``factors``: the bottom of the basin, where resampling
    leaves narrow dips on the grid's alignments that a bracketing search falls into."""
    errors = np.array([_zoom_error(dali, ref, f) for f in factors])
    if not np.isfinite(errors).all():
        return float(factors[int(np.argmin(errors))])
    curve, slope, _ = np.polyfit(factors - factors.mean(), errors, 2)
    if curve <= 0:
        return float(factors[int(np.argmin(errors))])
    return float(np.clip(factors.mean() - slope / (2 * curve), factors[0], factors[-1]))


def _golden(dali: np.ndarray, ref: np.ndarray, lo: float, hi: float, *, steps: int) -> float:
    """The zoom factor of least error between ``lo`` and ``hi``, by golden-section search."""
    for _ in range(steps):
        a, b = lo + 0.382 * (hi - lo), lo + 0.618 * (hi - lo)
        if _zoom_error(dali, ref, a) < _zoom_error(dali, ref, b):
            hi = b
        else:
            lo = a
    return (lo + hi) / 2


def zoomed_pair(dali: np.ndarray, ref: np.ndarray, factor: float, onto_dali: bool = False) -> \
        tuple[np.ndarray, np.ndarray] | None:
    """DALI's and the reference's (C,H,W) stages in the coarser of their frames (``onto_dali``: in DALI's, its pixels
    untouched), where both have pixels (the magnified side shrunk back onto the other by ``factor``); None when
    too little is left."""
    moved, other, inner = _pair(dali.astype(np.float32), ref.astype(np.float32), factor, onto_dali)
    a, b = (moved[inner], other[inner]) if factor >= 1 and not onto_dali else (other[inner], moved[inner])
    return None if min(a.shape[1:]) < 16 else (a, b)


def zoom(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance, smooth, factor=None) -> Zoom | None:
    """The magnification about the centre that explains DALI's stage, if one does (``factor``: the
    :func:`zoom_factor` of the pair, when already computed), judged once at full resolution with both sides
    smoothed by ``smooth`` in the coarser frame (the two resamplings differ in fine detail)."""
    factor = zoom_factor(dali, ref) if factor is None else factor
    pair = None if factor is None else zoomed_pair(dali, ref, factor)
    if pair is None:
        return None
    elementwise = dataclasses.replace(tolerance, mean_atol=None, border=0)
    residual = residual_of(smooth(pair[0]), smooth(pair[1]), elementwise)
    before = float(np.abs(smooth(dali) - smooth(ref)).mean())
    if not residual.explained or residual.mean_abs > before / 3:
        return None
    return Zoom(float(factor), residual, before)
