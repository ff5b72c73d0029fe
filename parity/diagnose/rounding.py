"""The roundings where torchvision's eval transform (timm's too) and DALI part, named with the reference's
own numbers: the long side of a shorter-edge resize (torchvision truncates, DALI rounds) and the centre
crop's half-pixel anchor (torchvision rounds half to even, DALI away from zero). A generic size or offset
cause becomes one of these only where the arithmetic on the image's sizes reproduces what was measured."""

from __future__ import annotations

import dataclasses
import math

from parity.diagnose.causes import Advice, Cause, CauseKind

_LIBRARIES = ("timm", "torchvision")


def _eval_step(ref_step: dict | None, kind: str) -> int | None:
    """The size of a timm/torchvision Resize or CenterCrop step (None for any other step)."""
    if not ref_step or ref_step.get("library") not in _LIBRARIES or ref_step.get("type") != kind:
        return None
    size = ref_step.get("size")
    size = size[0] if isinstance(size, (list, tuple)) and len(size) == 1 else size
    return size if isinstance(size, int) else None


def long_side_cause(cause: Cause, ref_step: dict | None, in_hw: tuple | None, where: str) -> Cause:
    """A one-pixel size difference at a shorter-edge Resize, when truncating (the reference) and rounding (DALI)
    the scaled long side are what the two sides did."""
    size = _eval_step(ref_step, "Resize")
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


def _half_to_even(slack: int) -> int:
    return int(round(slack / 2))  # Python's round: a .5 goes to the even integer, as torchvision's center_crop


def crop_anchor_cause(cause: Cause, ref_step: dict | None, in_hw: tuple | None, out_hw: tuple | None,
                      where: str) -> Cause:
    """A one-pixel shift at a CenterCrop whose offset is a half pixel: torchvision's anchor rounds half to
    even, DALI's ``crop_pos`` anchor away from zero."""
    size = _eval_step(ref_step, "CenterCrop")
    params = cause.evidence.params if cause.evidence else {}
    if cause.kind != CauseKind.OFFSET or size is None or not in_hw or not out_hw:
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
