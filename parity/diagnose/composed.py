"""Two mistakes at once: a geometric one (a mirror image, a turn, a window placed elsewhere) and a photometric one
(a colour transform, a blur or sharpening) on top of it. Tried where no single model explains a stage: the
geometry is registered on what a photometric change leaves alone (the grey level's structure), undone, and the
photometric models are fitted on what remains. Both are named only when undoing both leaves a residual within the
stage's tolerance, which is the evidence of each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np

from parity.config.load import Tolerance
from parity.diagnose import geometry, photometric, registration
from parity.diagnose.causes import Cause, CauseKind, Evidence, Sides

_STRUCTURE = 0.9  # the least correlation of the two grey levels, geometry undone, for a photometric fit to be tried
_WHAT = {CauseKind.BRIGHTNESS_CONTRAST: "brightness change", CauseKind.COLOR_TRANSFORM: "colour change",
         CauseKind.SPATIAL_FILTER: "filter"}


@dataclass(frozen=True)
class _Undone:
    """A geometric mistake undone: ``undo`` maps DALI's (C,H,W) stage (or its grey level) back onto the reference's
    pixels at ``ref_index``."""

    undo: Callable[[np.ndarray], np.ndarray]
    ref_index: tuple
    tolerance: Tolerance
    how: str  # how it was undone, for the evidence
    params: dict
    cause: Callable[[Evidence, str], Cause]  # the geometric cause, given the evidence of both undone and the other
    whole: bool  # the whole image (a window's overlap has edges a filter would see differently)


def _registrations(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance, sides: Sides, decoder: bool,
                   shifts: list) -> Iterator[_Undone]:
    whole = (slice(None),) * 3
    for name, mirror in geometry.MIRRORS.items():
        yield _Undone(mirror, whole, tolerance, f"mirrored back {name}", {}, partial(_mirrored, name, sides), True)
    for name, turn in geometry.TURNS.items():
        if turn(dali[:1]).shape[1:] == ref.shape[1:]:
            yield _Undone(turn, whole, tolerance, f"turned back ({name})", {}, partial(_turned, name, sides, decoder),
                          True)
    for dy, dx in shifts[:1]:
        d, r = registration.windows(dali.shape, dy, dx)
        before = float(np.abs(dali[d].astype(np.float64) - ref[d]).mean())
        yield _Undone(partial(_window, d), r, dataclasses.replace(tolerance, border=0),
                      f"shifted back by ({-dy}, {-dx}), judged where both windows overlap", {"dy": dy, "dx": dx},
                      partial(_shifted, dy, dx, before, sides), False)


def _window(index: tuple, x: np.ndarray) -> np.ndarray:
    return x[index]


def _mirrored(name: str, sides: Sides, evidence: Evidence, also: str) -> Cause:
    return geometry.mirrored(name, evidence, sides)


def _turned(name: str, sides: Sides, decoder: bool, evidence: Evidence, also: str) -> Cause:
    return geometry.turned(name, evidence, sides, decoder=decoder)


def _shifted(dy: int, dx: int, before: float, sides: Sides, evidence: Evidence, also: str) -> Cause:
    return geometry.shifted(dy, dx, before, evidence, sides, also)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """The correlation of two (1,H,W) grey levels (sampled every other row and column)."""
    x, y = a[0, ::2, ::2].ravel(), b[0, ::2, ::2].ravel()
    x, y = x - x.mean(), y - y.mean()
    scale = float(np.sqrt((x @ x) * (y @ y)))
    return float(x @ y) / scale if scale > 0 else 0.0


def composed_causes(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance, mean=None, std=None, *, sides: Sides,
                    decoder: bool, filters: bool, shifts=None) -> tuple[Cause, Cause] | None:
    """(the geometric cause, the photometric one) when undoing both explains DALI's (C,H,W) stage; ``filters``:
    whether a blur or sharpening may be named here (see ``StageDiagnoser._filter_allowed``), ``shifts``: the
    pair's :func:`registration.shifts`, when already computed."""
    if dali.shape != ref.shape or dali.ndim != 3 or dali.shape[0] != 3:
        return None
    shifts = registration.shifts(dali, ref) if shifts is None else shifts
    grey_d, grey_r = dali.mean(0, keepdims=True, dtype=np.float32), ref.mean(0, keepdims=True, dtype=np.float32)
    for undone in _registrations(dali, ref, tolerance, sides, decoder, shifts):
        if _correlation(undone.undo(grey_d), grey_r[undone.ref_index]) < _STRUCTURE:
            continue
        fits = [photometric.colour_cause] + ([photometric.spatial_filter_cause] if filters and undone.whole else [])
        back, target = undone.undo(dali), ref[undone.ref_index]
        for fit in fits:
            found = fit(back, target, undone.tolerance, mean, std, sides)
            if found is not None and found.evidence is not None:
                model = f"{sides.actual} {undone.how}, then {found.evidence.model}"
                geometric = undone.cause(dataclasses.replace(found.evidence, model=model, params=undone.params),
                                         f"the {_WHAT[found.kind]} undone")
                return (geometric,
                        dataclasses.replace(found, evidence=dataclasses.replace(found.evidence, model=model)))
    return None
