"""Name the likely cause of a mismatch, with numbers: what was fitted, not only that values differ.

The model-input diagnosis fits, for every channel permutation, a per-channel affine map
``dali = a * reference + b`` by least squares. A good fit means the geometry is right and only values
are off; knowing the reference's mean/std, ``a`` and ``b`` give the mean/std DALI effectively used.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

_GOOD_FIT = 0.02  # residual RMS relative to the DALI channel's spread: below this the map explains it
_CLOSE = 0.03  # relative closeness for "this parameter equals that one"


@dataclass(frozen=True)
class Cause:
    """One named cause: ``kind`` is a stable identifier, ``sentence`` says it with numbers."""

    kind: str
    sentence: str
    numbers: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Diagnosis:
    causes: tuple = ()

    @property
    def kinds(self) -> tuple:
        return tuple(c.kind for c in self.causes)

    def __bool__(self) -> bool:
        return bool(self.causes)

    def __str__(self) -> str:
        if not self.causes:
            return "Likely cause: not identified (no channel order, normalization, shift or flip explains it)."
        if len(self.causes) == 1:
            return f"Likely cause: {self.causes[0].sentence}"
        return "Likely causes:\n" + "\n".join(f"  {i + 1}. {c.sentence}" for i, c in enumerate(self.causes))


def _vec(values) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def _close(a, b, tol=_CLOSE) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return bool(np.all(np.abs(a - b) <= tol * np.maximum(np.abs(b), 1.0)))


@dataclass(frozen=True)
class AffineFit:
    permutation: tuple  # DALI channel c holds reference channel permutation[c]
    scale: np.ndarray
    offset: np.ndarray
    residual: float  # worst channel's residual RMS over that channel's standard deviation


def fit_channels(dali: np.ndarray, ref: np.ndarray) -> AffineFit:
    """Best per-channel affine map from reference (C,H,W) to DALI (C,H,W) over channel permutations."""
    channels = dali.shape[0]
    d = dali.reshape(channels, -1).astype(np.float64)
    r = ref.reshape(channels, -1).astype(np.float64)
    best = None
    perms = itertools.permutations(range(channels)) if channels <= 4 else [tuple(range(channels))]
    for perm in perms:
        scales, offsets, residuals = [], [], []
        for c, src in enumerate(perm):
            x, y = r[src], d[c]
            var = x.var()
            a = ((x - x.mean()) * (y - y.mean())).mean() / var if var > 0 else 0.0
            b = y.mean() - a * x.mean()
            spread = max(y.std(), 1e-12)
            residuals.append(np.sqrt(np.mean((a * x + b - y) ** 2)) / spread)
            scales.append(a)
            offsets.append(b)
        fit = AffineFit(tuple(perm), np.array(scales), np.array(offsets), float(max(residuals)))
        if best is None or fit.residual < best.residual - 1e-9:
            best = fit
    return best


def _channel_cause(perm: tuple, to_rgb: bool) -> Cause | None:
    if perm == tuple(range(len(perm))):
        return None
    if perm == tuple(reversed(range(len(perm)))):
        expected = "RGB" if to_rgb else "the reference's order"
        return Cause("channel_order",
                     f"DALI's channels are in reverse order (BGR vs RGB): DALI channel 0 is the model's channel "
                     f"{perm[0]}. The model expects {expected}"
                     + (" (data_preprocessor to_rgb=True converts cv2's BGR)" if to_rgb else "")
                     + ". Convert with fn.color_space_conversion(image_type=types.BGR, output_type=types.RGB), "
                       "or fix what the client sends.", {"permutation": perm})
    return Cause("channel_order", f"DALI's channels are permuted: DALI channel c holds the model's channel "
                                  f"{list(perm)}[c].", {"permutation": perm})


def _normalization_cause(fit: AffineFit, mean, std, value_range: float) -> Cause | None:
    """Explain scale/offset as the mean/std DALI effectively applied, given the model's mean/std."""
    a, b = fit.scale, fit.offset
    if _close(a, 1.0, 0.02) and np.all(np.abs(b) <= 0.02 * max(1.0, value_range)):
        return None  # the identity, up to resampling noise
    if mean is None or std is None:
        return Cause("value_scale", f"DALI = a * reference + b per channel with a={_vec(a)}, b={_vec(b)}.",
                     {"scale": a, "offset": b})
    # Work in the model's channel order: DALI channel c carries model channel permutation[c].
    order = np.argsort(fit.permutation)
    a, b = a[order], b[order]
    m, s = np.asarray(mean, float), np.asarray(std, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        eff_std = s / a
        eff_mean = m - b * eff_std
    numbers = {"effective_mean": eff_mean, "effective_std": eff_std, "mean": m, "std": s}
    model = f"the model expects mean={_vec(m)}, std={_vec(s)} (in the model's channel order)"
    how = "Normalize in DALI, e.g. fn.crop_mirror_normalize(mean=..., std=...) with the data_preprocessor's values."
    if _close(eff_std, 1.0, 0.05) and np.all(np.abs(eff_mean) < 2.0):
        return Cause("missing_normalization",
                     f"DALI output is the un-normalized image (values 0..255): it fits dali = ref * std + mean "
                     f"with std={_vec(a)}, mean={_vec(b)}, so no mean was subtracted and no std divided; "
                     f"{model}. {how}", numbers)
    if _close(eff_std, 255.0, 0.05) and np.all(np.abs(eff_mean) < 2.0):
        return Cause("scaled_0_1",
                     f"DALI scales pixels to 0..1 (effective mean={_vec(eff_mean)}, std={_vec(eff_std)}), "
                     f"which is not the model's normalization: {model}. {how}", numbers)
    if _close(eff_mean, m[::-1]) and _close(eff_std, s[::-1]) and not _close(m, m[::-1]):
        return Cause("mean_std_channel_order",
                     f"DALI normalizes with the model's mean/std in reverse channel order (effective "
                     f"mean={_vec(eff_mean)}, std={_vec(eff_std)}); {model}.", numbers)
    if _close(eff_mean * 255.0, m, 0.05) and _close(eff_std * 255.0, s, 0.05):
        return Cause("normalized_0_1_input",
                     f"DALI applies mean/std scaled for 0..1 input (effective mean={_vec(eff_mean)}, "
                     f"std={_vec(eff_std)}) to 0..255 pixels; {model}.", numbers)
    if np.all(eff_std > 0) and _close(eff_std, s * s, 0.05):
        return Cause("double_normalization",
                     f"DALI normalizes twice: effective std={_vec(eff_std)} is std² of the model's; {model}.",
                     numbers)
    return Cause("wrong_normalization",
                 f"DALI normalizes with effective mean={_vec(eff_mean)}, std={_vec(eff_std)}; {model}.", numbers)


def diagnose_values(dali: np.ndarray, ref: np.ndarray, *, mean=None, std=None, to_rgb: bool = False) -> Diagnosis:
    """Diagnose two same-shape (C,H,W) tensors; ``mean``/``std`` are the reference's normalization."""
    causes = []
    if not np.isfinite(dali).all():
        causes.append(Cause("nan_inf", f"DALI output holds {int((~np.isfinite(dali)).sum())} NaN/Inf values."))
        return Diagnosis(tuple(causes))
    fit = fit_channels(dali, ref)
    if fit.residual <= _GOOD_FIT:
        value_range = float(np.abs(ref).max())
        for cause in (_channel_cause(fit.permutation, to_rgb), _normalization_cause(fit, mean, std, value_range)):
            if cause is not None:
                causes.append(cause)
        if causes:
            return Diagnosis(tuple(causes))
    causes.extend(_spatial_causes(dali, ref, fit))
    return Diagnosis(tuple(causes))


def _spatial_causes(dali: np.ndarray, ref: np.ndarray, fit: AffineFit) -> list[Cause]:
    """Same shape, but no per-channel affine map: look for a shift or flip, else an interpolation change."""
    # Test geometry alone: compare with the reference as is, and mapped into DALI's value space by the
    # best channel fit (a shifted image fits an affine map poorly, so the fit alone can mislead).
    fitted = fit.scale[:, None, None] * ref[list(fit.permutation)] + fit.offset[:, None, None]
    mapped = min((ref, fitted), key=lambda m: _best_shift(dali, m)[0])
    base = np.abs(dali - mapped).mean()
    best = _best_shift(dali, mapped)
    if best[1] != (0, 0) and best[0] < 0.25 * base:
        dy, dx = best[1]
        return [Cause("offset", f"DALI's image is shifted by {dy} rows and {dx} columns from the reference "
                                f"(mean error {base:.3g} falls to {best[0]:.3g} when shifted back): a crop offset or "
                                "padding split rounded differently.", {"dy": dy, "dx": dx})]
    for axis, name in ((2, "horizontally"), (1, "vertically")):
        if np.abs(dali - np.flip(mapped, axis)).mean() < 0.25 * base:
            return [Cause("flip", f"DALI's image is mirrored {name} relative to the reference.")]
    return [Cause("interpolation",
                  f"Values differ without a shift, flip or per-channel scale explaining them (mean abs {base:.3g}): "
                  "most likely a different resize filter, antialiasing or size rounding.")]


def _best_shift(dali: np.ndarray, mapped: np.ndarray, reach: int = 4) -> tuple[float, tuple]:
    """(mean abs error, (dy, dx)) of the best shift within ``reach`` pixels, borders excluded."""
    if min(dali.shape[1:]) <= 2 * reach + 2:
        return float(np.abs(dali - mapped).mean()), (0, 0)
    inner = (slice(None), slice(reach, -reach), slice(reach, -reach))
    best = (float(np.abs(dali - mapped)[inner].mean()), (0, 0))
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            err = float(np.abs(dali - np.roll(mapped, (dy, dx), axis=(1, 2)))[inner].mean())
            if err < best[0]:
                best = (err, (dy, dx))
    return best


def diagnose_shapes(dali_shape: tuple, ref_shape: tuple, dali_layout: str) -> Diagnosis:
    """Explain a shape mismatch between an HWC/CHW DALI tensor and the reference's."""
    d, r = tuple(dali_shape), tuple(ref_shape)
    if sorted(d) == sorted(r) and len(d) == 3:
        if d == (r[1], r[2], r[0]) or d == (r[2], r[0], r[1]):
            return Diagnosis((Cause("layout", f"Layout differs: DALI {d} ({dali_layout}) is the reference {r} "
                                              "transposed (HWC vs CHW). Set output_layout in "
                                              "fn.crop_mirror_normalize or add fn.transpose."),))
        if d[-1] == r[-1] and d[:2] == r[:2][::-1] or d[0] == r[0] and d[1:] == r[1:][::-1]:
            return Diagnosis((Cause("size_swapped", f"Height and width are swapped: DALI {d}, reference {r}. "
                                                    "DALI sizes are (H, W); MMCV scales are (W, H)."),))
    return Diagnosis((Cause("size", f"Output size differs: DALI {d}, reference {r}: resize size arithmetic, "
                                    "crop size or padding differ."),))
