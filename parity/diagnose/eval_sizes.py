"""The size arithmetic of timm's and torchvision's eval transform, where a DALI port parts from it, named
with the reference's own parameters: timm's crop_pct (the resize is floor(crop / crop_pct)), the long side
of a shorter-edge resize (torchvision truncates, DALI rounds) and the centre crop's half-pixel anchor
(torchvision rounds half to even, DALI away from zero). A generic size or offset cause becomes one of
these only where the arithmetic on the image's sizes reproduces what was measured."""

from __future__ import annotations

import dataclasses
import math

from parity.diagnose.causes import Advice, Cause, CauseKind

_LIBRARIES = ("timm", "torchvision")


def _eval_step(ref_step: dict | None, kind: str) -> bool:
    """Whether the reference's step is timm's or torchvision's ``kind`` (Resize, CenterCrop)."""
    return ref_step is not None and ref_step.get("library") in _LIBRARIES and ref_step.get("type") == kind


def _shorter_edge(ref_step: dict) -> int | None:
    """The short side a Resize gives (an int size, or a one-element list), None for a fixed (H, W)."""
    size = ref_step.get("size")
    size = size[0] if isinstance(size, (list, tuple)) and len(size) == 1 else size
    return size if isinstance(size, int) else None


def long_side_cause(cause: Cause, ref_step: dict | None, in_hw: tuple | None, where: str) -> Cause:
    """A one-pixel size difference at a shorter-edge Resize, when truncating (the reference) and rounding (DALI)
    the scaled long side are what the two sides did."""
    size = _shorter_edge(ref_step) if ref_step and _eval_step(ref_step, "Resize") else None
    params = cause.evidence.params if cause.evidence else {}
    dali, reference = params.get("dali"), params.get("reference")
    if cause.kind != CauseKind.SIZE_ROUNDING or size is None or not in_hw or not dali or not reference:
        return cause
    short, long = min(in_hw), max(in_hw)
    exact = size * long / short
    axis = 0 if in_hw[0] >= in_hw[1] else 1  # the long side's axis
    if reference[axis] != int(exact) or dali[axis] != math.floor(exact + 0.5) or dali[axis] == reference[axis]:
        return cause
    library = ref_step["library"]  # type: ignore[index]
    name = "height" if axis == 0 else "width"
    finding = (f"Long side: {library} resizes the short side to {size} and truncates the long side, {size} x {long} / "
               f"{short} = {exact:.2f} -> {int(exact)}; DALI rounds it to {dali[axis]} (the output {name} differs by "
               "one pixel)")
    advice = Advice(f"compute the long side as {library} does, ({size} * long) // short from the image's shape in "
                    "the graph, and pass resize_x/resize_y instead of resize_shorter (`parity suggest` writes it).",
                    "resize_x/resize_y", f"({size} * long) // short", where)
    return dataclasses.replace(cause, finding=finding, advice=advice)


COMMON_CROP_PCTS = (0.875, 0.9, 0.95, 0.96, 1.0, 0.85, 0.8, 0.765)  # timm's pretrained_cfg values


def crop_pct_cause(cause: Cause, ref_step: dict | None, dali_hw: tuple | None, where: str) -> Cause:
    """A shorter-edge resize to another size at timm's Resize: name the checkpoint's crop_pct, and the one
    DALI's size implies (floor(crop / crop_pct)) when a usual value gives it."""
    if cause.kind != CauseKind.SIZE or not _eval_step(ref_step, "Resize") or not dali_hw:
        return cause
    step = ref_step or {}
    scale, crop_pct, crop = _shorter_edge(step), step.get("crop_pct"), step.get("crop_size")
    if scale is None or not crop_pct or not crop or min(dali_hw) == scale:
        return cause
    theirs = min(dali_hw)
    test_size, test_pct = step.get("test_size"), step.get("test_crop_pct")
    if test_size and test_pct and theirs == math.floor(test_size / test_pct):
        return dataclasses.replace(cause, finding=(
            f"timm {step.get('checkpoint', '')}: the reference is its training size {crop} (Resize({scale}), crop_pct "
            f"{crop_pct:g}), as timm resolves it by default; DALI resizes the short side to {theirs}, floor({test_size} "
            f"/ {test_pct:g}): the test size"), advice=Advice(
            f"if the model is served at its test size, set reference.use_test_size=True (timm's "
            f"resolve_model_data_config(use_test_size=True)); else resize to {scale} and crop {crop}.",
            "reference.use_test_size", "True", where))
    implied = next((p for p in COMMON_CROP_PCTS if math.floor(crop / p) == theirs), None)
    finding = (f"timm {step.get('checkpoint', '')}: crop_pct {crop_pct:g} -> Resize({scale}) (floor({crop} / "
               f"{crop_pct:g})); DALI resizes the short side to {theirs}"
               + (f" (crop_pct {implied:g})" if implied else ""))
    advice = Advice(f"resize the short side to {scale}, floor(crop / crop_pct) with this checkpoint's crop_pct "
                    f"{crop_pct:g} (a crop_pct copied from another recipe changes what the crop keeps).",
                    "resize_shorter", str(scale), where)
    return dataclasses.replace(cause, finding=finding, advice=advice)


def _half_to_even(slack: int) -> int:
    return int(round(slack / 2))  # Python's round: a .5 goes to the even integer, as torchvision's center_crop


def crop_anchor_cause(cause: Cause, ref_step: dict | None, in_hw: tuple | None, out_hw: tuple | None,
                      where: str) -> Cause:
    """A one-pixel shift at a CenterCrop whose offset is a half pixel: torchvision's anchor rounds half to
    even, DALI's ``crop_pos`` anchor away from zero."""
    params = cause.evidence.params if cause.evidence else {}
    if cause.kind != CauseKind.OFFSET or not _eval_step(ref_step, "CenterCrop") or not in_hw or not out_hw:
        return cause
    shifts = (params.get("dy", 0), params.get("dx", 0))
    lines = []
    for axis, (name, shift) in enumerate(zip(("row", "column"), shifts)):
        slack = in_hw[axis] - out_hw[axis]
        ours, dali = _half_to_even(slack), math.floor(slack / 2 + 0.5)
        if shift == 0:
            continue
        if abs(shift) != 1 or slack % 2 == 0 or ours == dali:
            return cause
        lines.append(f"{name} offset ({in_hw[axis]} - {out_hw[axis]}) / 2 = {slack / 2:g}: {ref_step['library']} "  # type: ignore[index]
                     f"rounds half to even ({ours}), DALI's crop anchor away from zero ({dali})")
    if not lines:
        return cause
    finding = "Centre crop " + "; ".join(lines)
    advice = Advice("give fn.crop the reference's anchor: crop_pos = round_half_even(slack / 2) / slack per image, "
                    "from the image's shape in the graph (DALI's rounding then gives that anchor back; `parity "
                    "suggest` writes it).", "crop_pos_x/crop_pos_y", "round_half_even(slack / 2) / slack", where)
    return dataclasses.replace(cause, finding=finding, advice=advice)


def _centre_crop_hw(ref_step: dict | None) -> tuple[int, int] | None:
    """(height, width) of the reference's centre crop: MMPretrain's crop_size (W, H) or torchvision's size (H, W)."""
    if ref_step is None or ref_step.get("type") not in ("CenterCrop", "torchvision/CenterCrop"):
        return None
    size = ref_step.get("size", ref_step.get("crop_size"))
    if isinstance(size, int):
        return size, size
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return (int(size[0]), int(size[1])) if "size" in ref_step else (int(size[1]), int(size[0]))
    return None


def crop_window_cause(cause: Cause, ref_step: dict | None, in_hw: tuple | None, out_hw: tuple | None, op: str,
                      args: dict, where: str) -> Cause:
    """A crop window moved by more than a rounding at the reference's centre crop: both anchors, and the crop_pos
    that gives the reference's."""
    params = cause.evidence.params if cause.evidence else {}
    crop = _centre_crop_hw(ref_step)
    shift = (int(params.get("dy", 0)), int(params.get("dx", 0)))
    if cause.kind != CauseKind.OFFSET or crop is None or not in_hw or tuple(out_hw or ()) != crop or \
            max(map(abs, shift)) <= 1 or op not in ("Crop", "CropMirrorNormalize"):
        return cause
    slack = (in_hw[0] - crop[0], in_hw[1] - crop[1])
    ref_anchor = (int(round(slack[0] / 2)), int(round(slack[1] / 2)))
    dali_anchor = (ref_anchor[0] - shift[0], ref_anchor[1] - shift[1])
    if min(slack) < 0 or not all(0 <= a <= s for a, s in zip(dali_anchor, slack)):
        return cause
    want = [a / s if s else 0.5 for a, s in zip(ref_anchor, slack)]
    has = [float(args.get(k, 0.5)) for k in ("crop_pos_y", "crop_pos_x")]
    finding = (f"DALI crops its {crop[0]}x{crop[1]} window at {dali_anchor} (row, column) of the {in_hw[0]}x{in_hw[1]} "
               f"image where the reference's centre crop takes it at {ref_anchor}: {cause.finding}")
    fix = Advice(f"it has crop_pos_y={has[0]:g}, crop_pos_x={has[1]:g}; set crop_pos_y={want[0]:.4g}, "
                 f"crop_pos_x={want[1]:.4g} (0.5: centred) like the reference.", "crop_pos_x/crop_pos_y",
                 f"crop_pos_y={want[0]:.4g}, crop_pos_x={want[1]:.4g}", where)
    evidence = dataclasses.replace(cause.evidence, params={**params, "dali_anchor": dali_anchor,
                                                           "reference_anchor": ref_anchor}) if cause.evidence else None
    return dataclasses.replace(cause, finding=finding, advice=fix, evidence=evidence)
