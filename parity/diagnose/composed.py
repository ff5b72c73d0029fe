"""Two mistakes at once: a geometric one (a mirror image, a turn, a window placed elsewhere, a zoom) and a
photometric one (a colour transform, a blur or sharpening) on top of it. Tried where no single model explains a
stage: the geometry is registered on what a photometric change leaves alone (the grey level's structure), undone,
and the photometric models are fitted on what remains. Both are named only when undoing both leaves a residual
within the stage's tolerance, which is the evidence of each.
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
_SLIGHT_GAIN, _SLIGHT_OFFSET = 0.05, 5.0  # a colour change judged through a zoom's smoothing must exceed one of these
_WHAT = {CauseKind.BRIGHTNESS_CONTRAST: "brightness change", CauseKind.COLOR_TRANSFORM: "colour change",
         CauseKind.SPATIAL_FILTER: "filter"}


@dataclass(frozen=True)
class _Undone:
    """A geometric mistake undone: ``pair`` maps DALI's and the reference's (C,H,W) stages (or their grey levels)
    onto the pixels they then both show."""

    pair: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    tolerance: Tolerance
    how: str  # how it was undone, for the evidence
    params: dict
    cause: Callable[[Evidence, str], Cause]  # the geometric cause, given the evidence of both undone and the other
    whole: bool  # the whole image (a window's overlap has edges a filter would see differently)
    judged: Callable[[np.ndarray], np.ndarray] | None = None  # what both sides go through before they are compared


def _registrations(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance, sides: Sides, decoder: bool,
                   shifts: list, zoom: float | None) -> Iterator[_Undone]:
    for name, mirror in geometry.MIRRORS.items():
        yield _Undone(partial(_first, mirror), tolerance, f"{sides.actual} mirrored back {name}", {},
                      partial(_mirrored, name, sides), True)
    for name, turn in geometry.TURNS.items():
        if turn(dali[:1]).shape[1:] == ref.shape[1:]:
            yield _Undone(partial(_first, turn), tolerance, f"{sides.actual} turned back ({name})", {},
                          partial(_turned, name, sides, decoder), True)
    for dy, dx in shifts[:1]:
        d, r = registration.windows(dali.shape, dy, dx)
        before = float(np.abs(dali[d].astype(np.float64) - ref[d]).mean())
        yield _Undone(partial(_windows, d, r), dataclasses.replace(tolerance, border=0),
                      f"{sides.actual} shifted back by ({-dy}, {-dx}), judged where both windows overlap",
                      {"dy": dy, "dx": dx}, partial(_shifted, dy, dx, before, sides), False)
    if zoom is not None:  # judged as the zoom is (both smoothed, element by element), but in DALI's finer frame
        yield _Undone(partial(_zoomed, zoom), dataclasses.replace(tolerance, mean_atol=None, border=0),
                      f"{sides.expected} magnified by {zoom:.4g} about the centre onto {sides.actual}'s frame",
                      {"factor": zoom}, partial(_zoom_cause, zoom, sides), False, partial(_box, zoom))


def _first(undo: Callable[[np.ndarray], np.ndarray], dali: np.ndarray, ref: np.ndarray) -> tuple:
    return undo(dali), ref


def _windows(d: tuple, r: tuple, dali: np.ndarray, ref: np.ndarray) -> tuple:
    return dali[d], ref[r]


def _zoomed(factor: float, dali: np.ndarray, ref: np.ndarray) -> tuple:
    pair = registration.zoomed_pair(dali, ref, factor, onto_dali=True)  # DALI's clipping left as it is
    return (dali[:, :0, :0], ref[:, :0, :0]) if pair is None else pair


def _box(factor: float, x: np.ndarray) -> np.ndarray:
    """The zoom's judge in DALI's frame: the 13x13 box of the coarser frame, magnified with it."""
    return geometry.smoothed(x, max(factor, 1.0))


def _zoom_cause(factor: float, sides: Sides, evidence: Evidence, also: str) -> Cause:
    return geometry.zoomed(factor, evidence, sides)


def _mirrored(name: str, sides: Sides, evidence: Evidence, also: str) -> Cause:
    return geometry.mirrored(name, evidence, sides)


def _turned(name: str, sides: Sides, decoder: bool, evidence: Evidence, also: str) -> Cause:
    return geometry.turned(name, evidence, sides, decoder=decoder)


def _shifted(dy: int, dx: int, before: float, sides: Sides, evidence: Evidence, also: str) -> Cause:
    return geometry.shifted(dy, dx, before, evidence, sides, also)


def _slight(colour: Cause) -> bool:
    """A colour transform within 5 % and 5 levels of the identity: judged through a zoom's smoothing, that is what a
    blur or a finer resampling leaves (a lower contrast), and so not evidence of a colour change."""
    params = colour.evidence.params if colour.evidence is not None else {}
    matrix, offset = params.get("matrix"), params.get("offset")
    return matrix is not None and offset is not None and bool(
        np.allclose(matrix, np.eye(3), atol=_SLIGHT_GAIN) and np.all(np.abs(offset) <= _SLIGHT_OFFSET))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """The correlation of two (1,H,W) grey levels (sampled every other row and column)."""
    x, y = a[0, ::2, ::2].ravel(), b[0, ::2, ::2].ravel()
    if not x.size:
        return 0.0
    x, y = x - x.mean(), y - y.mean()
    scale = float(np.sqrt(np.einsum("i,i", x, x) * np.einsum("i,i", y, y)))
    return float(np.einsum("i,i", x, y)) / scale if scale > 0 else 0.0


def composed_causes(dali: np.ndarray, ref: np.ndarray, tolerance: Tolerance, mean=None, std=None, *, sides: Sides,
                    decoder: bool, filters: bool, shifts: list, zoom: float | None) -> tuple[Cause, Cause] | None:
    """(the geometric cause, the photometric one) when undoing both explains DALI's (C,H,W) stage; ``filters``:
    whether a blur or sharpening may be named here (see ``StageDiagnoser._filter_allowed``); ``shifts`` and
    ``zoom``: the pair's :func:`registration.shifts` and :func:`registration.zoom_factor`."""
    if dali.shape != ref.shape or dali.ndim != 3 or dali.shape[0] != 3:
        return None
    grey_d, grey_r = dali.mean(0, keepdims=True, dtype=np.float32), ref.mean(0, keepdims=True, dtype=np.float32)
    for undone in _registrations(dali, ref, tolerance, sides, decoder, shifts, zoom):
        if _correlation(*undone.pair(grey_d, grey_r)) < _STRUCTURE:
            continue
        back, target = undone.pair(dali, ref)
        found = photometric.colour_cause(back, target, undone.tolerance, mean, std, sides, undone.judged)
        if found is not None and undone.judged is not None and _slight(found):
            found = None  # what smoothing leaves of a blur or of another resampling: not a colour change
        if found is None and filters and undone.whole:
            found = photometric.spatial_filter_cause(back, target, undone.tolerance, mean, std, sides)
        if found is not None and found.evidence is not None:
            judged = ", both smoothed by the 13x13 box of the coarser frame" if undone.judged else ""
            model = f"{undone.how}, then {found.evidence.model}{judged}"
            geometric = undone.cause(dataclasses.replace(found.evidence, model=model, params=undone.params),
                                     f"the {_WHAT[found.kind]} undone")
            return geometric, dataclasses.replace(found, evidence=dataclasses.replace(found.evidence, model=model))
    return None
