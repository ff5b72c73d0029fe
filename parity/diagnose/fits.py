"""Value fits: which per-channel map takes the reference's values to DALI's, and what it leaves unexplained.

For every channel permutation a per-channel affine map ``dali = a * reference + b`` is fitted by least
squares. Knowing the reference's mean/std, ``a`` and ``b`` give the mean/std DALI effectively used. A fit
names a cause only when undoing it leaves a residual within the stage's tolerance (:func:`residual_of`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from parity.config.load import Tolerance
from parity.diagnose import advice
from parity.diagnose.causes import PIPELINE, Cause, CauseKind, Confidence, Evidence, Sides, Unexplained, fmt

_CLOSE = 0.03  # relative closeness for "this parameter equals that one"
# A fitted model is judged with the stage's tolerance, its limits widened by this much: fitted parameters
# carry estimation error that a correct pipeline's output does not.
SLACK = 1.05


@dataclass(frozen=True)
class Residual:
    """What remains after a model is undone, judged like the stage: ``explained`` when within tolerance."""

    max_abs: float
    mean_abs: float
    mismatch_fraction: float
    explained: bool
    limit: float
    allowed: float  # the fraction of elements allowed beyond ``limit``
    unit: str

    def evidence(self, model: str, params: dict | None = None) -> Evidence:
        return Evidence(model, params or {}, self.max_abs, self.mean_abs, self.mismatch_fraction, self.limit,
                        self.allowed, self.unit)


def residual_of(corrected: np.ndarray, expected: np.ndarray, tolerance: Tolerance, inner=None) -> Residual:
    """Judge ``corrected`` (DALI with the model's error undone) against ``expected`` as the stage is judged,
    over ``inner`` (an index; the border the stage does not judge is left out too).

    Every fourth row and column is judged first: a model that leaves ten times the allowed fraction beyond
    the limit there explains nothing, and is answered with that sample's figures (most models tried fail)."""
    if inner is None and tolerance.border and corrected.ndim == 3 and \
            min(corrected.shape[1:]) > 2 * tolerance.border + 2:
        b = tolerance.border
        inner = (slice(None), slice(b, -b), slice(b, -b))
    c, e = (corrected[inner], expected[inner]) if inner is not None else (corrected, expected)
    if c.ndim == 3 and min(c.shape[1:]) >= 64:
        sample = _judge(c[:, ::4, ::4], e[:, ::4, ::4], tolerance)
        if sample.mismatch_fraction > 10 * tolerance.max_mismatch + 0.01:
            return sample
    return _judge(c, e, tolerance)


def _judge(c: np.ndarray, e: np.ndarray, tolerance: Tolerance) -> Residual:
    judged = np.abs(c.astype(np.float64) - e)
    if not judged.size or not np.isfinite(judged).all():
        return Residual(float("inf"), float("inf"), 1.0, False, tolerance.atol, tolerance.max_mismatch, tolerance.unit)
    threshold = (tolerance.atol + tolerance.rtol * np.abs(e.astype(np.float64))) * SLACK if tolerance.rtol else \
        tolerance.atol * SLACK
    fraction = float(np.count_nonzero(judged > threshold)) / judged.size
    mean = float(judged.mean())
    ok = fraction <= tolerance.max_mismatch and (tolerance.mean_atol is None or mean <= tolerance.mean_atol * SLACK)
    return Residual(float(judged.max()), mean, fraction, ok, tolerance.atol, tolerance.max_mismatch, tolerance.unit)


def unexplained(diff: np.ndarray, tried=()) -> Unexplained:
    diff = np.abs(diff.astype(np.float64))
    finite = diff[np.isfinite(diff)]
    if not finite.size:
        return Unexplained(float("inf"), float("inf"), float("inf"), tuple(tried))
    return Unexplained(float(finite.max()), float(finite.mean()), float(np.percentile(finite, 99)), tuple(tried))


def _close_mean(a, b) -> bool:
    """Means in pixel levels: the fit recovers them to a fraction of a level, whatever their size."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return bool(np.all(np.abs(a - b) <= 0.5 + _CLOSE * np.abs(b)))


def _close(a, b, tol=_CLOSE) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return bool(np.all(np.abs(a - b) <= tol * np.maximum(np.abs(b), 1.0)))


@dataclass(frozen=True)
class AffineFit:
    permutation: tuple  # DALI channel c holds reference channel permutation[c]
    scale: np.ndarray
    offset: np.ndarray
    relative: float  # worst channel's residual RMS over that channel's standard deviation

    @property
    def is_identity(self) -> bool:
        return self.permutation == tuple(range(len(self.permutation))) and _close(self.scale, 1.0, 0.02)

    def undo(self, dali: np.ndarray) -> np.ndarray:
        """DALI's (C,H,W) tensor mapped back to the reference's values and channel order."""
        with np.errstate(divide="ignore", invalid="ignore"):
            mapped = (dali.astype(np.float64) - self.offset[:, None, None]) / self.scale[:, None, None]
        return mapped[np.argsort(self.permutation)]


def fit_channels(dali: np.ndarray, ref: np.ndarray) -> AffineFit:
    """Best per-channel affine map from reference (C,H,W) to DALI (C,H,W) over channel permutations.

    Every permutation's fits come from one cross-covariance matrix of the two sides' channels."""
    channels = dali.shape[0]
    d = dali.reshape(channels, -1).astype(np.float64)
    r = ref.reshape(channels, -1).astype(np.float64)
    d_mean, r_mean = d.mean(1), r.mean(1)
    dc, rc = d - d_mean[:, None], r - r_mean[:, None]
    # cross[c, s]: covariance of DALI channel c with reference channel s (einsum, as every product over a stage's
    # pixels in diagnose/: BLAS would start threads that, on a shared machine, spin for no gain)
    cross = np.einsum("in,jn->ij", dc, rc) / d.shape[1]
    r_var, d_var = np.einsum("ij,ij->i", rc, rc) / d.shape[1], np.einsum("ij,ij->i", dc, dc) / d.shape[1]
    fits = []
    perms = itertools.permutations(range(channels)) if channels <= 4 else [tuple(range(channels))]
    for perm in perms:
        scales, offsets, residuals = [], [], []
        for c, src in enumerate(perm):
            a = cross[c, src] / r_var[src] if r_var[src] > 0 else 0.0
            b = d_mean[c] - a * r_mean[src]
            # the residual's mean square, var(y) - a cov(x, y), from the same moments
            spread = max(float(np.sqrt(d_var[c])), 1e-12)
            residuals.append(np.sqrt(max(d_var[c] - a * cross[c, src], 0.0)) / spread)
            scales.append(a)
            offsets.append(b)
        fits.append(AffineFit(tuple(perm), np.array(scales), np.array(offsets), float(max(residuals))))
    identity, best = fits[0], min(fits, key=lambda f: f.relative)
    # Images with few distinct colours fit many permutations: only leave the identity for a clearly better fit.
    if identity.relative <= 0.02 or best.relative > 0.5 * identity.relative:
        return identity
    return best


def _channel_cause(perm: tuple, to_rgb: bool, evidence: Evidence, confidence: Confidence, s: Sides) -> Cause | None:
    if perm == tuple(range(len(perm))):
        return None
    if perm == tuple(reversed(range(len(perm)))):
        expected = "RGB" if to_rgb else f"{s.expected}'s order"
        why = " (data_preprocessor to_rgb=True converts cv2's BGR)" if to_rgb else ""
        return Cause(CauseKind.CHANNEL_ORDER,
                     f"{s.Actual}'s channels are in reverse order (BGR vs RGB): {s.actual} channel 0 is {s.target}'s "
                     f"channel {perm[0]}; {s.target} expects {expected}{why}", advice.channel_advice(), evidence,
                     confidence)
    return Cause(CauseKind.CHANNEL_ORDER, f"{s.Actual}'s channels are permuted: {s.actual} channel c holds "
                                          f"{s.target}'s channel {list(perm)}[c]", advice.channel_advice(), evidence,
                 confidence)


def _normalization_cause(fit: AffineFit, mean, std, value_range: float, evidence_of, confidence,
                         sides: Sides) -> Cause | None:
    """Explain scale/offset as the mean/std DALI effectively applied, given the model's mean/std."""
    a, b = fit.scale, fit.offset
    if _close(a, 1.0, 0.02) and np.all(np.abs(b) <= 0.02 * max(1.0, value_range)):
        return None  # the identity, up to resampling noise
    if mean is None or std is None:
        return Cause(CauseKind.VALUE_SCALE, f"{sides.Actual}'s values are a * {sides.expected} + b per channel with "
                                            f"a={fmt(a)}, "
                                            f"b={fmt(b)}", None, evidence_of({"scale": a, "offset": b}), confidence)
    # Work in the model's channel order: DALI channel c carries model channel permutation[c].
    order = np.argsort(fit.permutation)
    a, b = a[order], b[order]
    m, s = np.asarray(mean, float), np.asarray(std, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        eff_std = s / a
        eff_mean = m - b * eff_std
    evidence = evidence_of({"effective_mean": eff_mean, "effective_std": eff_std, "mean": m, "std": s})
    expects = f"{sides.target} expects mean={fmt(m)}, std={fmt(s)}"
    effective = f"effective mean={fmt(eff_mean)}, std={fmt(eff_std)}"
    if _close(eff_std, 1.0, 0.05) and np.all(np.abs(eff_mean) < 2.0):
        kind, finding = CauseKind.MISSING_NORMALIZATION, (
            f"{sides.Actual} output is the un-normalized image (values 0..255): {effective} where {expects}")
    elif _close(eff_std, 255.0, 0.05) and np.all(np.abs(eff_mean) < 2.0):
        kind, finding = CauseKind.SCALED_0_1, f"{sides.Actual} scales pixels to 0..1 ({effective}) where {expects}"
    elif _close_mean(eff_mean, m[::-1]) and _close(eff_std, s[::-1]) and not _close(m, m[::-1]):
        kind, finding = CauseKind.MEAN_STD_CHANNEL_ORDER, (
            f"{sides.Actual} normalizes with {sides.target}'s mean/std in reverse channel order ({effective}) "
            f"where {expects}")
    elif _close_mean(eff_mean, m / 255.0) and _close(eff_std * 255.0, s, 0.05):
        kind, finding = CauseKind.NORMALIZED_0_1_INPUT, (
            f"{sides.Actual} applies mean/std meant for 0..1 input to 0..255 pixels ({effective}) where {expects}")
    elif np.all(eff_std > 0) and _close(eff_std, s * s, 0.05):
        kind, finding = CauseKind.DOUBLE_NORMALIZATION, (
            f"{sides.Actual} normalizes twice (effective std={fmt(eff_std)} is {sides.target}'s std squared) "
            f"where {expects}")
    else:
        kind, finding = CauseKind.WRONG_NORMALIZATION, f"{sides.Actual} normalizes with {effective} where {expects}"
    return Cause(kind, finding, None, evidence, confidence)


def value_causes(fit: AffineFit, residual: Residual, *, mean, std, to_rgb: bool, value_range: float,
                 measured_from: str = "", sides: Sides = PIPELINE) -> tuple:
    """The normalization and channel-order causes a fit explains (none unless ``residual.explained``).

    ``measured_from`` names DALI's own stage the fit was made against, when not the reference."""
    if not residual.explained:
        return ()
    affine = f"{sides.actual} = a * {sides.expected} + b per channel"
    model = f"{affine}, fitted against {measured_from}" if measured_from else affine
    exact = residual.max_abs <= 1e-3 * max(1.0, residual.limit)
    confidence = Confidence.EXACT if exact else Confidence.FIT
    permutation = {"permutation": fit.permutation} if fit.permutation != tuple(range(len(fit.permutation))) else {}
    evidence_of = lambda params: residual.evidence(model, {**params, **permutation})  # noqa: E731
    channel = _channel_cause(fit.permutation, to_rgb, evidence_of({}), confidence, sides)
    norm = _normalization_cause(fit, mean, std, value_range, evidence_of, confidence, sides)
    if channel and norm and norm.kind == CauseKind.MEAN_STD_CHANNEL_ORDER:
        # mean/std sit in the right positions but the data does not: one mistake, the channel order
        norm = None
    return tuple(c for c in (norm, channel) if c is not None)  # the value error first: it is the larger


def grayscale_cause(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance, mean=None, std=None,
                    sides: Sides = PIPELINE) -> Cause | None:
    """DALI's channels equal in pixel space (after undoing the model's normalization) where the reference's
    are not, and a weighted sum of the reference's channels: the image went through grayscale."""
    if dali.shape[0] != 3:
        return None
    d, r = dali.astype(np.float64), ref.astype(np.float64)
    if mean is not None and std is not None:
        m, s = np.asarray(mean, float)[:, None, None], np.asarray(std, float)[:, None, None]
        d, r = d * s + m, r * s + m
    spread = lambda x: float(np.abs(x - x.mean(0, keepdims=True)).mean())  # noqa: E731
    if spread(d[:, ::4, ::4]) > 1.0:  # a sample's channels already differ: no grayscale
        return None
    if not (spread(d) < 0.5 and spread(r) > 5.0 and float(d.std()) > 5.0):
        return None
    # the grey level as a least-squares weighted sum of the reference's channels (BT.601 or any other weights)
    design = np.concatenate([r.reshape(3, -1), np.ones((1, r[0].size))]).T
    weights, *_ = np.linalg.lstsq(design, d.mean(0).ravel(), rcond=None)
    grey = (design @ weights).reshape(r.shape[1:])
    predicted = np.broadcast_to(grey, d.shape)
    if mean is not None and std is not None:
        predicted = (predicted - m) / s
    residual = residual_of(predicted, dali, tolerance)
    if not residual.explained:
        return None
    return Cause(CauseKind.GRAYSCALE, f"{sides.Actual}'s three channels hold the same values (mean channel "
                                      f"spread {spread(d):.3g} vs {spread(r):.3g} in {sides.expected}): the image went "
                                      "through grayscale and was repeated to 3 channels", advice.grayscale_advice(),
                 residual.evidence(f"every {sides.actual} channel = w . {sides.expected} channels + c",
                                   {"weights": weights[:3], "offset": float(weights[3])}))
