"""Fix advice: the DALI argument to change, at the operator's source line, for each cause kind.

Generic advice is given where the operator is not known (plain arrays); :mod:`parity.diagnose.stage`
replaces it with advice about the operator it found on the data path.
"""

from __future__ import annotations

import numpy as np

from parity.diagnose.causes import Advice, Cause, CauseKind, Evidence


def _exact(values) -> str:
    return "[" + ", ".join(f"{float(v):.6g}" for v in np.atleast_1d(values)) + "]"


def channel_advice() -> Advice:
    return Advice("convert with fn.color_space_conversion(image_type=types.BGR, output_type=types.RGB), or fix "
                  "what the client sends.", "image_type")


def grayscale_advice() -> Advice:
    return Advice("decode and convert to RGB (output_type=types.RGB), not GRAY.", "output_type", "types.RGB")


def layout_advice(expected: str) -> Advice:
    want = f"'{expected}'" if expected else "the model's layout"
    return Advice(f"set output_layout={want} in fn.crop_mirror_normalize or add fn.transpose.", "output_layout",
                  want)


def swapped_advice() -> Advice:
    return Advice("swap the two numbers: DALI sizes are (H, W), MMCV scales are (W, H).", "size")


def size_advice() -> Advice:
    return Advice("check the resize size arithmetic, the crop size and the padding against the reference's "
                  "(`parity suggest` writes them).", "size")


def stretch_advice() -> Advice:
    return Advice("keep the aspect ratio like the reference: fn.resize(mode='not_larger') and pad, or "
                  "resize_shorter/resize_longer.", "mode", "'not_larger'")


def keep_ratio_advice() -> Advice:
    return Advice("stretch like the reference: give fn.resize both sizes and no mode.", "mode")


def rounding_advice() -> Advice:
    return Advice("compute the size as the reference does (MMPretrain's ResizeEdge truncates int(scale * other / "
                  "edge); MMCV's rescale adds 0.5 then truncates; DALI rounds): see `parity suggest`.", "size")


def edge_advice() -> Advice:
    return Advice("check resize_shorter/resize_longer/mode against ResizeEdge(edge=...) or "
                  "Resize(keep_ratio=True).", "resize_shorter")


def flip_advice() -> Advice:
    return Advice("remove the mirror/flip argument or the flip operator the reference does not apply.", "mirror", "0")


def shift_advice() -> Advice:
    return Advice("place the crop window as the reference does (`parity suggest` computes its anchor per image).",
                  "crop_pos_x/crop_pos_y")


def filter_advice() -> Advice:
    return Advice("match the reference's resize filter, antialiasing and sub-pixel scaling in fn.resize.",
                  "interp_type")


def dtype_advice() -> Advice:
    return Advice("normalize in float (dtype=types.FLOAT).", "dtype", "types.FLOAT")


def anchor_advice(axis: str, reference_split: tuple, args: dict | None = None, where: str = "") -> Advice:
    """Where to put the crop anchor to split padding like the reference: 0 pads after the image, 1 before it,
    0.5 centres (MMPretrain's CenterCrop, torchvision). With the operator's ``args`` it says what it has."""
    name = "crop_pos_y" if axis == "rows" else "crop_pos_x"
    lead, trail = reference_split
    want, how = (0.0, "to pad after the image") if lead == 0 else (1.0, "to pad before it") if trail == 0 \
        else (0.5, "(or leave it out) to centre")
    if args is None:
        return Advice(f"set {name}={want:g} in fn.crop {how} like the reference.", name, f"{want:g}")
    value = float(args.get(name, 0.5))
    if value != want:
        return Advice(f"it has {name}={value:g}; set {name}={want:g} {how} like the reference.", name, f"{want:g}",
                      where)
    return Advice(f"it already has {name}={value:g}: DALI rounds the anchor differently for this size; "
                  "`parity suggest` computes the reference's anchor exactly.", name, f"{value:g}", where)


def window_advice(dy: int, dx: int, args: dict, where: str) -> Advice:
    """A crop window a few pixels off (no padding): the anchor DALI computes is rounded differently."""
    off = [f"{abs(n)} {what}" for n, what in ((dy, "row"), (dx, "column")) if n]
    names = [(k, float(args.get(k, 0.5))) for k, n in (("crop_pos_y", dy), ("crop_pos_x", dx)) if n]
    return Advice(f"its crop window is {' and '.join(off)} off the reference's: DALI turns "
                  f"{', '.join(f'{k}={v:g}' for k, v in names)} into a pixel anchor with other rounding for this "
                  "size; `parity suggest` computes the reference's anchor per image.", "/".join(k for k, _ in names),
                  where=where)


def crop_advice(cause: Cause, op: str, args: dict, where: str) -> Advice | None:
    """Advice about the crop operator at ``where`` for a padding split or shifted window found at its output
    (None when the operator does not crop)."""
    if cause.kind not in (CauseKind.PAD_SIDE, CauseKind.OFFSET) or op not in ("Crop", "CropMirrorNormalize") or \
            (op == "CropMirrorNormalize" and "crop" not in args):
        return None
    params = cause.numbers
    if "dy" in params:
        return window_advice(params["dy"], params["dx"], args, where)
    return anchor_advice(params["axis"], params["reference"], args, where)


def normalization_advice(normalizers: list, mean, std, model_channels: str, after: str = "") -> Advice | None:
    """The DALI argument to change for a normalization cause.

    ``normalizers`` are (op, where, args, channels) of the operators on the path to the output that
    normalize (CropMirrorNormalize, Normalize), ``channels`` being the order of the data they see; without
    one, ``after`` is where to add it (the last geometry operator's source line). Where the operator
    already has the model's values, the arithmetic that is wrong is elsewhere on the path: it says so.
    """
    want = f"mean={_exact(mean)}, std={_exact(std)}"
    if not normalizers:
        return Advice(f"No DALI operator on the path to the output normalizes: add "
                      f"fn.crop_mirror_normalize(dtype=types.FLOAT, {want}) ({model_channels} order) after "
                      f"{after or 'the last crop'}.", "mean/std", want)
    op, where, args, channels = normalizers[-1]
    order = (f" for {model_channels} data (the data reaching it is {channels}: convert the channels first)"
             if channels and channels != model_channels else f" ({model_channels} order)")
    if op == "CropMirrorNormalize":
        has_mean, has_std = np.atleast_1d(args.get("mean", 0.0)), np.atleast_1d(args.get("std", 1.0))
        if has_mean.shape == np.shape(mean) and np.allclose(has_mean, mean, rtol=1e-4) and \
                has_std.shape == np.shape(std) and np.allclose(has_std, std, rtol=1e-4):
            return Advice(f"it already has {want}: the arithmetic that differs is elsewhere on the path to the "
                          "output (another normalize, a scale or a cast before it).", "mean/std", want, where)
        return Advice(f"it has mean={_exact(has_mean)}, std={_exact(has_std)}; set {want}{order}.", "mean/std",
                      want, where)
    has = f"mean {_exact(args.get('mean', 0.0))} and stddev {_exact(args.get('stddev', 1.0))}"
    return Advice(f"it applies one {has} to every channel; replace it with "
                  f"fn.crop_mirror_normalize(dtype=types.FLOAT, {want}){order}.", "mean/std", want, where)


def values_advice(mean, std) -> Advice:
    """For tensors with no pipeline around them: the normalization the expected side went through."""
    want = f"mean={_exact(mean)}, std={_exact(std)}"
    return Advice(f"normalize with {want}, e.g. fn.crop_mirror_normalize(dtype=types.FLOAT, {want}).", "mean/std",
                  want)


_DALI_INTERP = {0: "INTERP_NN", 1: "INTERP_LINEAR", 2: "INTERP_CUBIC", 3: "INTERP_LANCZOS3", 4: "INTERP_TRIANGULAR",
                5: "INTERP_GAUSSIAN"}
_REF_INTERP = {"nearest": "INTERP_NN", "bilinear": "INTERP_LINEAR", "bicubic": "INTERP_CUBIC",
               "lanczos": "INTERP_LANCZOS3", "area": "INTERP_LINEAR"}


def resize_arguments(dali_args: dict, ref_step: dict, in_hw: tuple | None = None,
                     out_hw: tuple | None = None) -> list[tuple[str, str, str]]:
    """(argument, value, why) of each fn.resize argument that differs from the reference's resize: the
    filter, antialiasing (Pillow widens its filter when shrinking, OpenCV does not; DALI antialiases by
    default), or sub-pixel scaling (a size DALI computes, e.g. resize_shorter, is fractional: DALI keeps
    that exact scale, MMCV/Pillow stretch each axis onto the rounded size)."""
    if not ref_step.get("type", "").endswith(("Resize", "ResizeEdge")):
        return []
    backend = ref_step.get("backend", "cv2")
    want_interp = _REF_INTERP.get(ref_step.get("interpolation", "bilinear"))
    want_aa = backend == "pillow" or ref_step.get("interpolation") == "area"
    interp = _DALI_INTERP.get(int(dali_args.get("interp_type", dali_args.get("min_filter", 1))), "?")
    antialias = bool(dali_args.get("antialias", True))
    fixes = []
    if want_interp and interp != want_interp:
        fixes.append(("interp_type", f"types.{want_interp}", f"DALI uses {interp}"))
    if antialias != want_aa:
        fixes.append(("antialias", str(want_aa),
                      f"DALI {'antialiases' if antialias else 'does not antialias'}"
                      f"{' by default' if 'antialias' not in dali_args else ''}; the reference's {backend} backend "
                      f"{'does' if want_aa else 'does not'}"))
    computed = any(k in dali_args for k in ("resize_shorter", "resize_longer", "max_size")) or \
        dali_args.get("mode") in ("not_larger", "not_smaller") or 0 in list(dali_args.get("size", [1]))
    if computed and dali_args.get("subpixel_scale", True) and in_hw and out_hw:
        scale_h, scale_w = out_hw[0] / in_hw[0], out_hw[1] / in_hw[1]
        if abs(scale_h - scale_w) > 1e-4 * max(scale_h, scale_w):
            fixes.append(("subpixel_scale", "False",
                          f"DALI keeps one exact scale for the fractional size it computes; the reference maps "
                          f"{in_hw[0]}x{in_hw[1]} onto {out_hw[0]}x{out_hw[1]}, scales {scale_h:.5g} and "
                          f"{scale_w:.5g}"))
    return fixes


def resize_filter_cause(dali_args: dict, ref_step: dict, in_hw: tuple | None = None, out_hw: tuple | None = None,
                        *, evidence: Evidence | None = None, where: str = "") -> Cause | None:
    """The resize cause naming each argument that differs (None when every argument matches)."""
    fixes = resize_arguments(dali_args, ref_step, in_hw, out_hw)
    if not fixes:
        return None
    backend, interpolation = ref_step.get("backend", "cv2"), ref_step.get("interpolation", "bilinear")
    change = " and ".join(f"{name}={value} ({why})" for name, value, why in fixes)
    return Cause(CauseKind.RESIZE_FILTER,
                 f"The resize differs from the reference's {ref_step['type']}(backend='{backend}', "
                 f"interpolation='{interpolation}') in {', '.join(name for name, _, _ in fixes)}",
                 Advice(f"set {change} in fn.resize.", "/".join(name for name, _, _ in fixes),
                        ", ".join(f"{name}={value}" for name, value, _ in fixes), where),
                 evidence)


def order_cause(zoom: Cause, in_hw: tuple, where: str, dali_hw: tuple | None = None,
                ref_hw: tuple | None = None) -> Cause:
    """A resize whose output (``dali_hw``) is the centre of the reference's (``ref_hw``; the same size unless given)
    magnified (factor > 1) enlarged a window of its input: the crop the reference applies after the resize is
    taken before it."""
    factor = float(zoom.numbers.get("factor", 1.0))
    if factor <= 1.02:
        return zoom
    dali_hw, ref_hw = dali_hw or in_hw, ref_hw or in_hw
    # DALI's output shows dali_hw / factor of the reference's output pixels, each in_hw / ref_hw input pixels
    window = tuple(round(d * i / (factor * r)) for d, i, r in zip(dali_hw, in_hw, ref_hw))
    centre = "the reference's" if tuple(dali_hw) == tuple(ref_hw) else "the centre of the reference's"
    finding = (f"The crop is taken before the resize: DALI's resize enlarges a {window[0]}x{window[1]} window of the "
               f"{in_hw[0]}x{in_hw[1]} image that the reference resizes whole (its output is {centre} "
               f"magnified {factor:.4g} times about the centre)")
    params = {**zoom.numbers, "window": window, "input": tuple(in_hw)}
    evidence = Evidence(zoom.evidence.model, params, zoom.evidence.residual_max, zoom.evidence.residual_mean,
                        zoom.evidence.residual_beyond, zoom.evidence.limit, zoom.evidence.allowed_beyond,
                        zoom.evidence.unit) if zoom.evidence else None
    return Cause(CauseKind.OPERATOR_ORDER, finding,
                 Advice("resize first, then crop, as the reference does: move the crop (fn.crop, or crop= in "
                        "fn.crop_mirror_normalize) after fn.resize.", "order", "", where), evidence, zoom.confidence)
