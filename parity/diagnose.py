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
    residual: float  # worst channel's residual RMS over that channel's standard deviation


def fit_channels(dali: np.ndarray, ref: np.ndarray) -> AffineFit:
    """Best per-channel affine map from reference (C,H,W) to DALI (C,H,W) over channel permutations."""
    channels = dali.shape[0]
    d = dali.reshape(channels, -1).astype(np.float64)
    r = ref.reshape(channels, -1).astype(np.float64)
    fits = []
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
        fits.append(AffineFit(tuple(perm), np.array(scales), np.array(offsets), float(max(residuals))))
    identity, best = fits[0], min(fits, key=lambda f: f.residual)
    # Images with few distinct colours fit many permutations: only leave the identity for a clearly better fit.
    if identity.residual <= _GOOD_FIT or best.residual > 0.5 * identity.residual:
        return identity
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


_HOW = "Normalize in DALI, e.g. fn.crop_mirror_normalize(mean=..., std=...) with the data_preprocessor's values."


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
    if _close(eff_std, 1.0, 0.05) and np.all(np.abs(eff_mean) < 2.0):
        return Cause("missing_normalization",
                     f"DALI output is the un-normalized image (values 0..255): it fits dali = ref * std + mean "
                     f"with std={_vec(a)}, mean={_vec(b)}, so no mean was subtracted and no std divided; "
                     f"{model}. {_HOW}", numbers)
    if _close(eff_std, 255.0, 0.05) and np.all(np.abs(eff_mean) < 2.0):
        return Cause("scaled_0_1",
                     f"DALI scales pixels to 0..1 (effective mean={_vec(eff_mean)}, std={_vec(eff_std)}), "
                     f"which is not the model's normalization: {model}. {_HOW}", numbers)
    if _close_mean(eff_mean, m[::-1]) and _close(eff_std, s[::-1]) and not _close(m, m[::-1]):
        return Cause("mean_std_channel_order",
                     f"DALI normalizes with the model's mean/std in reverse channel order (effective "
                     f"mean={_vec(eff_mean)}, std={_vec(eff_std)}); {model}.", numbers)
    if _close_mean(eff_mean, m / 255.0) and _close(eff_std * 255.0, s, 0.05):
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
    """Diagnose two same-shape (C,H,W) tensors; ``mean``/``std`` are the reference's normalization.

    Geometry is tested first, in the tensors' own values (padding placement, grayscale, mirroring); then a
    per-channel affine fit explains value differences; then a shift search; else an interpolation change.
    """
    if not np.isfinite(dali).all():
        return Diagnosis((Cause("nan_inf", f"DALI output holds {int((~np.isfinite(dali)).sum())} NaN/Inf values."),))
    for check in (_padding_cause, lambda d, r: _grayscale_cause(d, r, mean, std), _flip_cause):
        cause = check(dali, ref)
        if cause:
            return Diagnosis((cause,))
    fit = fit_channels(dali, ref)
    causes = _value_causes(fit, ref, mean, std, to_rgb)
    return Diagnosis(causes or tuple(_spatial_causes(dali, ref, fit)))


def diagnose_value_transform(dali: np.ndarray, ideals: list[np.ndarray], *, mean=None, std=None,
                             to_rgb: bool = False) -> tuple:
    """Only the per-channel value causes (normalization, channel order) of tensors with the same geometry
    by construction, e.g. DALI's model input against the model input that DALI's own last pixel stage
    should have given (one candidate per window it may have read; the best fit is taken): the value
    mistake, even where the geometry also diverged. Both come from DALI, so only an exact fit (float
    rounding) counts."""
    if not ideals:
        return ()
    fit, ideal = min(((fit_channels(dali, i), i) for i in ideals), key=lambda pair: pair[0].residual)
    return _value_causes(fit, ideal, mean, std, to_rgb, good_fit=1e-3)


def _value_causes(fit: AffineFit, ref, mean, std, to_rgb, good_fit: float = _GOOD_FIT) -> tuple:
    if fit.residual > good_fit:
        return ()
    channel = _channel_cause(fit.permutation, to_rgb)
    norm = _normalization_cause(fit, mean, std, float(np.abs(ref).max()))
    if channel and norm and norm.kind == "mean_std_channel_order":
        # mean/std sit in the right positions but the data does not: one mistake, the channel order
        norm = None
    return tuple(c for c in (norm, channel) if c is not None)  # the value error first: it is the larger


def _flip_cause(dali: np.ndarray, ref: np.ndarray) -> Cause | None:
    base = np.abs(dali - ref).mean()
    for axis, name in ((2, "horizontally"), (1, "vertically")):
        if np.abs(dali - np.flip(ref, axis)).mean() < 0.25 * base:
            return Cause("flip", f"DALI's image is mirrored {name} relative to the reference (mirror/flip "
                                 "argument or a flip operator the reference does not apply).")
    return None


def _grayscale_cause(dali: np.ndarray, ref: np.ndarray, mean=None, std=None) -> Cause | None:
    """DALI channels equal in pixel space (after undoing the model's normalization) where the
    reference's are not: the image went through grayscale."""
    if dali.shape[0] != 3:
        return None
    if mean is not None and std is not None:
        m, s = np.asarray(mean, float)[:, None, None], np.asarray(std, float)[:, None, None]
        dali, ref = dali * s + m, ref * s + m
    spread = lambda x: float(np.abs(x - x.mean(0, keepdims=True)).mean())  # noqa: E731
    if spread(dali) < 0.5 and spread(ref) > 5.0 and float(dali.std()) > 5.0:
        return Cause("grayscale", f"DALI's three channels hold the same values (mean channel spread "
                                  f"{spread(dali):.3g} vs {spread(ref):.3g} in the reference): the image went "
                                  "through grayscale and was repeated to 3 channels.")
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


_CENTRE = "Use crop_pos_x/crop_pos_y=0.5 in fn.crop (or pad like the reference)."


def _padding_cause(dali: np.ndarray, ref: np.ndarray) -> Cause | None:
    """Same amount of constant padding on both sides, split differently: pad side or split rounding."""
    for axis, (lead, trail), what in ((1, ("above", "below"), "rows"), (2, ("left", "right"), "columns")):
        d, r = _pad_extents(dali, ref, axis)
        if sum(r) >= 4 and sum(d) == 0 or sum(d) >= 4 and sum(r) == 0:
            padded, filled = ("the reference", "DALI") if sum(r) else ("DALI", "the reference")
            p = r if sum(r) else d
            return Cause("stretch", f"{padded} letterboxes the image ({p[0]} {what} {lead}, {p[1]} {trail} of padding) "
                                    f"while {filled} fills the whole canvas: one side stretches the image instead of "
                                    "keeping its aspect ratio. Use mode='not_larger' and pad, like the reference.",
                         {"dali": d, "reference": r, "axis": what})
        # compare the split only when the same amount of padding exists (within one line of resampling)
        if d == r or abs(sum(d) - sum(r)) > 1 or max(sum(d), sum(r)) < 2:
            continue
        numbers = {"dali": d, "reference": r, "axis": what}
        if min(d) == 0 and min(r) > 0:
            return Cause("pad_side",
                         f"DALI pads only {trail if d[0] == 0 else lead} ({d[0]} {what} {lead}, {d[1]} {trail}); the "
                         f"reference centres the image ({r[0]} {lead}, {r[1]} {trail}). {_CENTRE}", numbers)
        if min(r) == 0 and min(d) > 0:
            return Cause("pad_side",
                         f"DALI centres the image ({d[0]} {what} {lead}, {d[1]} {trail}); the reference pads only "
                         f"{trail if r[0] == 0 else lead} ({r[0]} {lead}, {r[1]} {trail}). Use crop_pos_x/crop_pos_y=0 "
                         "to pad like the reference.", numbers)
        return Cause("offset",
                     f"The padding is split differently: DALI {d[0]} {what} {lead} and {d[1]} {trail}, the reference "
                     f"{r[0]} and {r[1]}: the crop/pad anchor is rounded or placed differently.", numbers)
    return None


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
    flip = _flip_cause(dali, mapped)
    if flip:
        return [flip]
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


def attribute_causes(*, layout: str, expected_layout: str, dtype, expected_dtype, values: np.ndarray) -> list[Cause]:
    """Causes visible without comparing values: the layout and dtype the model receives."""
    causes = []
    if layout and expected_layout and layout != expected_layout:
        causes.append(Cause("layout", f"DALI emits {layout} but the model expects {expected_layout}: set "
                                      f"output_layout='{expected_layout}' in fn.crop_mirror_normalize or add "
                                      "fn.transpose."))
    if np.dtype(dtype) != np.dtype(expected_dtype):
        if np.issubdtype(np.dtype(dtype), np.integer):
            info = np.iinfo(np.dtype(dtype))
            clipped = float(np.mean((values <= info.min) | (values >= info.max)))
            causes.append(Cause("dtype", f"DALI emits {np.dtype(dtype)}, the model takes {np.dtype(expected_dtype)}: "
                                         f"normalized values are rounded and clipped to {info.min}..{info.max} "
                                         f"({100 * clipped:.1f}% of elements at a bound). Normalize in float "
                                         "(dtype=types.FLOAT).", {"clipped_fraction": clipped}))
        else:
            causes.append(Cause("dtype", f"DALI emits {np.dtype(dtype)}, the model takes {np.dtype(expected_dtype)}."))
    return causes


_DALI_INTERP = {0: "INTERP_NN", 1: "INTERP_LINEAR", 2: "INTERP_CUBIC", 3: "INTERP_LANCZOS3", 4: "INTERP_TRIANGULAR",
                5: "INTERP_GAUSSIAN"}
_REF_INTERP = {"nearest": "INTERP_NN", "bilinear": "INTERP_LINEAR", "bicubic": "INTERP_CUBIC",
               "lanczos": "INTERP_LANCZOS3", "area": "INTERP_LINEAR"}


def resize_filter_cause(dali_args: dict, ref_step: dict, in_hw: tuple | None = None,
                        out_hw: tuple | None = None) -> Cause | None:
    """Name the resize argument that differs: the filter, antialiasing (Pillow widens its filter when
    shrinking, OpenCV does not; DALI antialiases by default), or sub-pixel scaling (a size DALI computes,
    e.g. resize_shorter, is fractional: DALI keeps that exact scale, MMCV/Pillow stretch each axis onto
    the rounded size)."""
    if not ref_step.get("type", "").endswith(("Resize", "ResizeEdge")):
        return None
    backend = ref_step.get("backend", "cv2")
    want_interp = _REF_INTERP.get(ref_step.get("interpolation", "bilinear"))
    want_aa = backend == "pillow" or ref_step.get("interpolation") == "area"
    interp = _DALI_INTERP.get(int(dali_args.get("interp_type", dali_args.get("min_filter", 1))), "?")
    antialias = bool(dali_args.get("antialias", True))
    fixes = []
    if want_interp and interp != want_interp:
        fixes.append(f"interp_type=types.{want_interp} (DALI uses {interp})")
    if antialias != want_aa:
        fixes.append(f"antialias={want_aa} (DALI {'antialiases' if antialias else 'does not antialias'}"
                     f"{' by default' if 'antialias' not in dali_args else ''}; the reference's {backend} backend "
                     f"{'does' if want_aa else 'does not'})")
    computed = any(k in dali_args for k in ("resize_shorter", "resize_longer", "max_size")) or \
        dali_args.get("mode") in ("not_larger", "not_smaller") or 0 in list(dali_args.get("size", [1]))
    if computed and dali_args.get("subpixel_scale", True) and in_hw and out_hw:
        scale_h, scale_w = out_hw[0] / in_hw[0], out_hw[1] / in_hw[1]
        if abs(scale_h - scale_w) > 1e-4 * max(scale_h, scale_w):
            fixes.append(f"subpixel_scale=False (DALI keeps one exact scale for the fractional size it computes; "
                         f"the reference maps {in_hw[0]}x{in_hw[1]} onto {out_hw[0]}x{out_hw[1]}, scales "
                         f"{scale_h:.5g} and {scale_w:.5g})")
    if not fixes:
        return None
    return Cause("resize_filter", f"The resize differs from the reference's {ref_step['type']}"
                                  f"(backend='{backend}', interpolation='{ref_step.get('interpolation', 'bilinear')}'):"
                                  f" set {' and '.join(fixes)} in fn.resize.",
                 {"interp_type": interp, "antialias": antialias, "backend": backend})


def crop_anchor_fix(cause: Cause, op: str, args: dict, where: str) -> Cause:
    """Point a padding-split cause found at a DALI crop at its crop_pos argument: 0.5 centres (as
    MMPretrain's CenterCrop and torchvision's do), 0 pads after the image, 1 before it."""
    if cause.kind not in ("pad_side", "offset") or op not in ("Crop", "CropMirrorNormalize") or \
            (op == "CropMirrorNormalize" and "crop" not in args):
        return cause
    if "dy" in cause.numbers:  # a shifted window (no padding): the anchor is rounded differently
        off = [f"{abs(n)} {what}" for n, what in ((cause.numbers["dy"], "row"), (cause.numbers["dx"], "column")) if n]
        names = [f"{k}={float(args.get(k, 0.5)):g}" for k, n in (("crop_pos_y", cause.numbers["dy"]),
                                                                  ("crop_pos_x", cause.numbers["dx"])) if n]
        fix = (f"Fix at {where}: its crop window is {' and '.join(off)} off the reference's: DALI turns "
               f"{', '.join(names)} into a pixel anchor with other rounding for this size; `parity suggest` "
               "computes the reference's anchor per image.")
        return Cause(cause.kind, f"{cause.sentence} {fix}", cause.numbers)
    name = "crop_pos_y" if cause.numbers.get("axis") == "rows" else "crop_pos_x"
    value = float(args.get(name, 0.5))
    lead, trail = cause.numbers.get("reference", (1, 1))
    want, how = (0.0, "to pad after the image") if lead == 0 else (1.0, "to pad before it") if trail == 0 \
        else (0.5, "(or leave it out) to centre")
    if value != want:
        fix = f"Fix at {where}: it has {name}={value:g}; set {name}={want:g} {how} like the reference."
    else:
        fix = (f"{where} already has {name}={value:g}: DALI rounds the anchor differently for this size; "
               "`parity suggest` computes the reference's anchor exactly.")
    return Cause(cause.kind, f"{cause.sentence.replace(' ' + _CENTRE, '')} {fix}", cause.numbers)


NORMALIZATION_KINDS = frozenset({"missing_normalization", "scaled_0_1", "mean_std_channel_order",
                                  "normalized_0_1_input", "double_normalization", "wrong_normalization"})


def _exact(values) -> str:
    return "[" + ", ".join(f"{float(v):.6g}" for v in np.atleast_1d(values)) + "]"


def normalization_fix(cause: Cause, normalizers: list, mean, std, model_channels: str, after: str = "") -> Cause:
    """Point a normalization cause at the DALI argument to change.

    ``normalizers`` are (op, where, args, channels) of the operators on the path to the output
    that normalize (CropMirrorNormalize, Normalize), ``channels`` being the order of the data they see;
    without one, ``after`` is where to add it (the last geometry operator's source line).
    """
    if cause.kind not in NORMALIZATION_KINDS or mean is None or std is None:
        return cause
    want = f"mean={_exact(mean)}, std={_exact(std)}"
    if not normalizers:
        fix = (f"No DALI operator on the path to the output normalizes: add fn.crop_mirror_normalize(dtype=types.FLOAT,"
               f" {want}) ({model_channels} order) after {after or 'the last crop'}.")
    else:
        op, where, args, channels = normalizers[-1]
        order = (f" for {model_channels} data (the data reaching it is {channels}: convert the channels first)"
                 if channels and channels != model_channels else f" ({model_channels} order)")
        if op == "CropMirrorNormalize":
            has_mean, has_std = np.atleast_1d(args.get("mean", 0.0)), np.atleast_1d(args.get("std", 1.0))
            if has_mean.shape == np.shape(mean) and np.allclose(has_mean, mean, rtol=1e-4) and \
                    has_std.shape == np.shape(std) and np.allclose(has_std, std, rtol=1e-4):
                return cause  # that operator is right: the extra arithmetic is elsewhere
            has = f"mean={_exact(has_mean)}, std={_exact(has_std)}"
            fix = f"Fix at {where}: it has {has}; set {want}{order}."
        else:
            has = f"mean {_exact(args.get('mean', 0.0))} and stddev {_exact(args.get('stddev', 1.0))}"
            fix = (f"Fix at {where}: it applies one {has} to every channel; replace it with "
                   f"fn.crop_mirror_normalize(dtype=types.FLOAT, {want}){order}.")
    return Cause(cause.kind, f"{cause.sentence.replace(' ' + _HOW, '')} {fix}", cause.numbers)


def spatial_size(shape: tuple, layout: str) -> tuple[int, int] | None:
    """(height, width) of a 3-d tensor in ``layout`` (guessed from the channel count when unknown)."""
    if len(shape) != 3:
        return None
    layout = layout if layout in ("HWC", "CHW") else ("HWC" if shape[-1] in (1, 3, 4) else "CHW")
    return (shape[0], shape[1]) if layout == "HWC" else (shape[1], shape[2])


def diagnose_shapes(dali_shape: tuple, ref_shape: tuple, dali_layout: str, *, ref_layout: str = "",
                    input_hw: tuple | None = None) -> Diagnosis:
    """Explain a shape mismatch between DALI's tensor and the reference's.

    With ``input_hw`` (the decoded image's height and width) a resize difference is described as the
    rule each side applied: which edge was fitted, whether the aspect ratio was kept.
    """
    d, r = tuple(dali_shape), tuple(ref_shape)
    if sorted(d) == sorted(r) and len(d) == 3 and d != r:
        if d == (r[1], r[2], r[0]) or d == (r[2], r[0], r[1]):
            return Diagnosis((Cause("layout", f"Layout differs: DALI {d} ({dali_layout}) is the reference {r} "
                                              "transposed (HWC vs CHW). Set output_layout in "
                                              "fn.crop_mirror_normalize or add fn.transpose."),))
    dhw, rhw = spatial_size(d, dali_layout), spatial_size(r, ref_layout)
    if dhw and rhw:
        dc = d[-1] if (dali_layout or "HWC") == "HWC" else d[0]
        rc = r[-1] if (ref_layout or "HWC") == "HWC" else r[0]
        if dc == 1 and rc == 3 and dhw == rhw:
            return Diagnosis((Cause("grayscale", f"DALI has 1 channel {d} where the reference has 3 {r}: the image "
                                                 "was converted to grayscale."),))
        if dhw == rhw[::-1] and dhw != rhw:
            return Diagnosis((Cause("size_swapped", f"Height and width are swapped: DALI {dhw[0]}x{dhw[1]}, reference "
                                                    f"{rhw[0]}x{rhw[1]}. DALI sizes are (H, W); MMCV scales are "
                                                    "(W, H)."),))
        if input_hw:
            cause = _resize_rule(dhw, rhw, tuple(input_hw))
            if cause:
                return Diagnosis((cause,))
    return Diagnosis((Cause("size", f"Output size differs: DALI {d}, reference {r}: resize size arithmetic, "
                                    "crop size or padding differ."),))


def _resize_rule(dhw, rhw, in_hw) -> Cause | None:
    h0, w0 = in_hw
    sd, sr = (dhw[0] / h0, dhw[1] / w0), (rhw[0] / h0, rhw[1] / w0)
    kept = lambda s: abs(s[0] - s[1]) <= 0.02 * max(s) + 1.0 / min(h0, w0)  # noqa: E731
    numbers = {"input": in_hw, "dali": dhw, "reference": rhw}
    desc = f"from {h0}x{w0}, DALI resizes to {dhw[0]}x{dhw[1]}, the reference to {rhw[0]}x{rhw[1]}"
    if kept(sr) and not kept(sd):
        return Cause("stretch", f"DALI stretches the image ({desc}): the aspect ratio is not kept, while the "
                                "reference keeps it (and letterboxes/pads or crops). Use mode='not_larger' or "
                                "resize_shorter/resize_longer.", numbers)
    if kept(sd) and not kept(sr):
        return Cause("stretch", f"The reference stretches the image and DALI keeps the aspect ratio ({desc}).",
                     numbers)
    if all(abs(d - r) <= 1 for d, r in zip(dhw, rhw)):
        return Cause("size_rounding", f"The output size differs by one pixel ({desc}): the two sides round the "
                                      "scaled size differently (MMPretrain's ResizeEdge truncates int(scale * "
                                      "other / edge); MMCV's rescale adds 0.5 then truncates; DALI rounds). "
                                      "Compute the size as the reference does (see `parity suggest`).", numbers)
    if kept(sd) and kept(sr):
        d_short, d_long, r_short, r_long = min(dhw), max(dhw), min(rhw), max(rhw)
        if d_long == r_short or d_short == r_long:
            return Cause("resize_edge", f"The two sides fit a different edge to the same length ({desc}; scale "
                                        f"{sd[0]:.4g} vs {sr[0]:.4g}): one fits the short edge, the other the long "
                                        "edge. Check resize_shorter/resize_longer/mode against "
                                        "ResizeEdge(edge=...) or Resize(keep_ratio=True).", numbers)
        return Cause("size", f"Both keep the aspect ratio but scale differently ({desc}; scale {sd[0]:.4g} vs "
                             f"{sr[0]:.4g}): the resize target size differs.", numbers)
    return None
