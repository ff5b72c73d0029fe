"""The one stage diagnoser: why a failed stage differs, each cause backed by a fit that explains its part.

The pytest plugin, the CLI and ``assert_stage_close`` all diagnose through :class:`StageDiagnoser`.
Order of the search: attributes (layout, dtype), shapes, non-finite values, a value fit against the
reference; when geometry also diverged, the value mistake measured from DALI's own last pixel stage;
then, on what the value causes leave, the other models, cheapest first, up to the first that explains
(grayscale, padding, mirroring, a colour transform, shift, zoom, filter), and last a geometric and a photometric
mistake at once. What nothing explains is reported as such, with its statistics, or as following from an
earlier stage's divergence.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from parity.compare.arrays import StageResult
from parity.config.load import Tolerance
from parity.diagnose import advice, composed, eval_sizes, fits, geometry, photometric, registration
from parity.diagnose.causes import (
    ARRAYS,
    NORMALIZATION_KINDS,
    PIPELINE,
    VALUE_KINDS,
    Advice,
    Cause,
    CauseKind,
    Confidence,
    Diagnosis,
    Evidence,
    Sides,
)

_FILTER_KINDS = frozenset({CauseKind.RESIZE_FILTER, CauseKind.INTERPOLATION})


@dataclass(frozen=True)
class Operator:
    """The DALI operator that produced the stage: its type, arguments and source line."""

    op: str
    args: dict
    where: str


@dataclass(frozen=True)
class OwnSource:
    """DALI's own last pixel stage before the model input, as (C,H,W), and its channel order."""

    pixels: np.ndarray
    channels: str
    label: str


@dataclass(frozen=True)
class StageCase:
    """One failed comparison as the diagnoser sees it.

    ``actual``/``expected`` are the tensors as compared (same layout ``layout``); ``shape``/``shape_layout``
    are DALI's tensor as it left the operator (for shape causes). The optional context sharpens the advice:
    the ``operator``, the reference's pipeline ``ref_step`` and its input size ``step_input_hw``, the
    decoded image's size ``input_hw``, and for the model input DALI's own last pixel stage ``own``,
    the model's layout, dtype and channel order.
    """

    actual: np.ndarray
    expected: np.ndarray
    tolerance: Tolerance
    layout: str = "CHW"
    shape: tuple = ()
    shape_layout: str = ""
    ref_layout: str = "CHW"
    normalized: bool = False
    operator: Operator | None = None
    ref_step: dict | None = None
    step_input_hw: tuple | None = None
    input_hw: tuple | None = None
    own: OwnSource | None = None
    step_input: np.ndarray | None = None  # the reference's input to ``ref_step`` as DALI's (H,W,C) uint8, if pixels
    model_channels: str = ""
    emitted_layout: str = ""  # DALI's output layout at the model input
    expected_layout: str = ""  # the model's
    expected_dtype: np.dtype | None = None  # the dtype the model takes (None: not checked)


class StageDiagnoser:
    """Diagnoses the failed stages of one pipeline against one reference normalization."""

    def __init__(self, *, mean=None, std=None, to_rgb: bool = False, normalizers=(), add_after: str = "",
                 random_operators=(), sides: Sides = PIPELINE):
        self.mean = None if mean is None else np.asarray(mean, float)
        self.std = None if std is None else np.asarray(std, float)
        self.to_rgb = to_rgb
        self.normalizers = list(normalizers)  # (op, where, args, channels) of DALI's normalizing operators
        self.add_after = add_after  # where a missing normalizer would go
        self.sides = sides  # what findings call the two tensors
        self.random_operators = list(random_operators)  # parity.dali.determinism.RandomOperator of the DALI graph

    def diagnose(self, result: StageResult, case: StageCase, upstream=()) -> StageResult:
        """``result`` with its diagnosis (unchanged unless it failed); ``upstream`` are the image's earlier
        stage results, already diagnosed."""
        if result.status != "failed":
            return result
        return dataclasses.replace(result, diagnosis=self._diagnosis(result, case, list(upstream)))

    def _diagnosis(self, result: StageResult, case: StageCase, upstream: list) -> Diagnosis:
        attributes, values_meaningful = _attribute_causes(case)
        a, e = case.actual, case.expected
        if attributes and (not values_meaningful or (a.shape == e.shape and result.mismatch_fraction == 0)):
            return Diagnosis(attributes)  # the values are right, or an integer range makes them unreadable
        failed = [r for r in upstream if r.status == "failed"]
        if a.shape != e.shape:
            op = case.operator
            swapped = geometry.swapped_size_cause(op.args, case.ref_step, op.where) \
                if op is not None and op.op == "Resize" else None
            turned = geometry.orientation_cause(_chw(a, case.layout).astype(np.float64), _chw(e, case.layout),
                                                case.tolerance, self.sides) if a.ndim == 3 and _decodes(op) else None
            where = op.where if op else ""
            dali_hw = geometry.spatial_size(case.shape or a.shape, case.shape_layout or case.layout)
            shapes = (swapped,) if swapped else (turned,) if turned else tuple(
                eval_sizes.crop_pct_cause(eval_sizes.long_side_cause(c, case.ref_step, case.step_input_hw, where),
                                          case.ref_step, dali_hw, where)
                for c in geometry.shape_causes(case.shape or a.shape, e.shape, case.shape_layout or case.layout,
                                               ref_layout=case.ref_layout, input_hw=case.input_hw, sides=self.sides,
                                               turned=lambda: _turned(a, e, case)))
            if any(c.kind == CauseKind.STRETCH for c in shapes):  # the pixels may tell a crop taken first
                shapes = tuple(self._crop_first(a, e, case) or c if c.kind == CauseKind.STRETCH else c
                               for c in shapes)
            own, _ = self._own_value_causes(case)
            return self._with_advice(Diagnosis(own + shapes + attributes, follows_from=_follows(failed, shapes)), case,
                                     failed)
        chw_a, chw_e = _chw(a, case.layout), _chw(e, case.layout)
        if not np.isfinite(chw_a).all():
            bad = int((~np.isfinite(chw_a)).sum())
            return Diagnosis((Cause(CauseKind.NAN_INF, f"{self.sides.Actual} holds {bad} NaN/Inf values",
                                    evidence=Evidence("count of non-finite elements", {"count": bad}),
                                    confidence=Confidence.EXACT), *attributes))
        plain = self._parameter_free(chw_a.astype(np.float64), chw_e, case)
        if plain:  # a symmetric image mirrored also fits a value map: the model without parameters is preferred
            return self._with_advice(Diagnosis((plain, *attributes)), case, failed)
        mean, std = (self.mean, self.std) if case.normalized else (None, None)
        values, corrected = self._value_causes(chw_a, chw_e, case, mean, std)
        remainder = fits.residual_of(corrected, chw_e, case.tolerance)
        geometric: tuple = ()
        tried: tuple = ()
        if not remainder.explained:
            geometric, tried = self._geometry(corrected, chw_e, case, mean, std, failed)
        diagnosis = Diagnosis(values + geometric + attributes)
        if not remainder.explained and not geometric:
            follows = _follows(failed, ())
            diagnosis = dataclasses.replace(diagnosis, follows_from=follows, unexplained=None if follows else
                                            fits.unexplained(corrected - chw_e, tried))
        return self._with_advice(diagnosis, case, failed)

    def _parameter_free(self, a, e, case: StageCase) -> Cause | None:
        """Padding placed differently or a mirror image, explaining the values as they are."""
        return geometry.padding_cause(a, e, case.tolerance, self.sides) or \
            geometry.flip_cause(a, e, case.tolerance, self.sides) or \
            geometry.orientation_cause(a, e, case.tolerance, self.sides, decoder=_decodes(case.operator))

    def _value_causes(self, a, e, case: StageCase, mean, std) -> tuple[tuple, np.ndarray]:
        """Value causes and DALI with them undone: from a fit against the reference when it explains the whole
        stage, else (model input) from a fit against DALI's own last pixel stage, which shares its geometry."""
        a64 = a.astype(np.float64)
        fit = fits.fit_channels(a64, e)
        residual = fits.residual_of(fit.undo(a64), e, case.tolerance)
        causes = fits.value_causes(fit, residual, mean=mean, std=std, to_rgb=self.to_rgb,
                                   value_range=float(np.abs(e).max()) if e.size else 1.0, sides=self.sides)
        if mean is None and any(c.kind == CauseKind.VALUE_SCALE for c in causes):
            # on pixel levels a per-channel gain and offset is a brightness/contrast change: named as one
            colour = photometric.colour_cause(a, e, case.tolerance, None, None, self.sides)
            if colour is not None and colour.kind == CauseKind.BRIGHTNESS_CONTRAST:
                causes = tuple(colour if c.kind == CauseKind.VALUE_SCALE else c for c in causes)
        if causes:
            return causes, fit.undo(a64)
        own, own_fit = self._own_value_causes(case)
        if own and own_fit is not None:
            return own, own_fit.undo(a64)
        return (), a64

    def _own_value_causes(self, case: StageCase) -> tuple[tuple, fits.AffineFit | None]:
        """The model input against what DALI's own last pixel stage should have given through the final
        operator's window (one candidate per rounding of its anchor): the value mistake, even where the
        geometry also diverged. Both come from DALI, so only a fit that leaves float rounding counts."""
        own, op = case.own, case.operator
        if own is None or op is None or case.actual.ndim != 3 or self.mean is None or self.std is None:
            return (), None
        final = _chw(case.actual, case.layout if case.actual.shape == case.expected.shape else
                     case.shape_layout or case.layout).astype(np.float64)
        ideals = []
        for window in geometry.crop_windows(own.pixels, final.shape, op.op, op.args):
            window = window.astype(np.float64)
            if case.model_channels and own.channels != case.model_channels:
                window = window[::-1]  # the model's channel order, as the reference's model input has it
            ideals.append((window - self.mean[:, None, None]) / self.std[:, None, None])
        if not ideals:
            return (), None
        fit, ideal = min(((fits.fit_channels(final, i), i) for i in ideals), key=lambda pair: pair[0].relative)
        if fit.relative > 1e-3:
            return (), None
        residual = fits.residual_of(fit.undo(final), ideal, case.tolerance)
        causes = fits.value_causes(fit, residual, mean=self.mean, std=self.std, to_rgb=self.to_rgb,
                                   value_range=float(np.abs(ideal).max()),
                                   measured_from=f"DALI's own {own.label} output through {op.where or op.op}")
        return causes, fit

    def _geometry(self, a, e, case: StageCase, mean, std, failed: list) -> tuple[tuple, tuple]:
        """The first model that explains what the value causes leave (cheap ones first), and the names of those
        tried."""
        tol, sides = case.tolerance, self.sides
        # the registrations, shared by the single models and the composition
        shifts, factor = functools.cache(lambda: registration.shifts(a, e)), functools.cache(
            lambda: registration.zoom_factor(a, e))
        tried = []
        for name, detect in (("grayscale", lambda: fits.grayscale_cause(a, e, tol, mean, std, sides)),
                             ("padding", lambda: geometry.padding_cause(a, e, tol, sides)),
                             ("mirroring", lambda: geometry.flip_cause(a, e, tol, sides)),
                             # what the per-channel affine fit cannot express: clipping, channels that mix
                             ("a colour transform (clipped gain, 3x3)",
                              lambda: self._colour(a, e, case, mean, std, failed)),
                             ("shift", lambda: self._shift_cause(a, e, case, shifts())),
                             ("zoom", lambda: self._zoom_cause(a, e, case, factor())),
                             ("a blur or sharpening filter",
                              lambda: self._spatial_filter(a, e, case, mean, std, failed))):
            cause = detect()
            if cause:
                return (cause,), ()
            tried.append(name)
        if _filter_may_explain(failed):
            cause = self._resampling(a, e, case)
            if cause:
                return (cause,), ()
            tried.append("a resampling filter")
        both = composed.composed_causes(a, e, tol, mean, std, sides=sides, decoder=_decodes(case.operator),
                                        filters=self._filter_allowed(case, failed), shifts=shifts(), zoom=factor())
        if both:
            geometric, colour = both
            return (self._named_geometry(geometric, case), colour), ()
        tried.append("a geometric and a photometric mistake at once")
        return (), ("channel order and per-channel scale/offset", *tried)

    def _crop_first(self, a, e, case: StageCase) -> Cause | None:
        """At a resize whose output fits within the reference's (another aspect ratio, so sizes say "stretch"): the
        output is the centre of the reference's magnified, a window cropped before the resize and enlarged."""
        op = case.operator
        if op is None or op.op != "Resize" or not case.step_input_hw or a.ndim != 3 or e.ndim != 3:
            return None
        d = _chw(a, case.shape_layout or case.layout).astype(np.float64)
        r = _chw(e, case.ref_layout or case.layout)
        if d.shape[0] != r.shape[0] or d.shape[1] > r.shape[1] or d.shape[2] > r.shape[2]:
            return None
        window = geometry.centre_window(r, d.shape[1:])
        zoom = geometry.zoom_cause(d, window, case.tolerance, self.sides, registration.zoom_factor(d, window))
        if zoom is None:
            return None
        ordered = advice.order_cause(zoom, case.step_input_hw, op.where, d.shape[1:], r.shape[1:])
        return ordered if ordered.kind == CauseKind.OPERATOR_ORDER else None

    def _colour(self, a, e, case: StageCase, mean, std, failed: list) -> Cause | None:
        """A colour transform, unless a resampling filter explains the stage too (on a checkerboard, a bicubic
        filter's overshoot fits a contrast change): the filter, the likelier mistake, is named then, as when the
        colour transform is tried after every geometric model."""
        colour = photometric.colour_cause(a, e, case.tolerance, mean, std, self.sides)
        if colour is None or not _filter_may_explain(failed):
            return colour
        return self._resampling(a, e, case) or colour

    def _resampling(self, a, e, case: StageCase) -> Cause | None:
        """Another resize filter, antialiasing or sub-pixel scale, named at the resize's argument where it is one."""
        cause = self._resize_as_written(a, case) or geometry.interpolation_cause(a, e, case.tolerance)
        return None if cause is None else self._resize_cause(cause, case)

    def _shift_cause(self, a, e, case: StageCase, candidates: list) -> Cause | None:
        cause = geometry.shift_cause(a, e, case.tolerance, self.sides, candidates)
        return None if cause is None else self._named_geometry(cause, case)

    @staticmethod
    def _named_geometry(cause: Cause, case: StageCase) -> Cause:
        """A shifted window named with the reference's own crop arithmetic where it explains the shift; a zoom at a
        resize that enlarges a window of its input, the crop taken before it."""
        op = case.operator
        if cause.kind == CauseKind.ZOOM and op is not None and op.op == "Resize" and case.step_input_hw:
            return advice.order_cause(cause, case.step_input_hw, op.where)
        if cause.kind != CauseKind.OFFSET:
            return cause
        out_hw = geometry.spatial_size(case.shape or case.actual.shape, case.shape_layout or case.layout)
        op = case.operator
        named = eval_sizes.crop_anchor_cause(cause, case.ref_step, case.step_input_hw, out_hw, op.where if op else "")
        if named is not cause or op is None:
            return named
        return eval_sizes.crop_window_cause(cause, case.ref_step, case.step_input_hw, out_hw, op.op, op.args,
                                            op.where)

    def _zoom_cause(self, a, e, case: StageCase, factor: float | None) -> Cause | None:
        cause = geometry.zoom_cause(a, e, case.tolerance, self.sides, factor)
        return None if cause is None else self._named_geometry(cause, case)

    def _spatial_filter(self, a, e, case: StageCase, mean, std, failed: list) -> Cause | None:
        if not self._filter_allowed(case, failed):
            return None
        return photometric.spatial_filter_cause(a, e, case.tolerance, mean, std, self.sides)

    @staticmethod
    def _filter_allowed(case: StageCase, failed: list) -> bool:
        """A blur or sharpening is named at the first stage that diverges; not at a resize whose filter arguments
        differ from the reference's, where a filter swap is the cause to name."""
        op = case.operator
        return not failed and not (op is not None and op.op == "Resize" and case.ref_step is not None and
                                   advice.resize_arguments(op.args, case.ref_step))

    @staticmethod
    def _resize_as_written(a, case: StageCase) -> Cause | None:
        """At a resize whose arguments differ from the reference's: the reference's input resized as fn.resize's
        arguments say reproduces DALI's output."""
        op = case.operator
        if op is None or op.op != "Resize" or case.ref_step is None or case.step_input is None or \
                not advice.resize_arguments(op.args, case.ref_step):
            return None
        residual = geometry.resize_as_written(a, case.step_input, op.args, case.tolerance)
        if residual is None or not residual.explained:
            return None
        return Cause(CauseKind.INTERPOLATION, "DALI's resize filter differs from the reference's",
                     evidence=residual.evidence("the reference's input resized with fn.resize's arguments as written "
                                                "(Pillow when antialiasing, OpenCV without)",
                                                {"interp_type": op.args.get("interp_type", 1),
                                                 "antialias": op.args.get("antialias", True)}))

    @staticmethod
    def _resize_cause(cause: Cause, case: StageCase) -> Cause:
        """At a resize, name the argument that differs from the reference's (filter, antialiasing, sub-pixel
        scaling) with the filter fit as its evidence."""
        op = case.operator
        if op is None or op.op != "Resize" or case.ref_step is None:
            return cause
        out_hw = geometry.spatial_size(case.shape or case.actual.shape, case.shape_layout or case.layout)
        named = advice.resize_filter_cause(op.args, case.ref_step, case.step_input_hw, out_hw,
                                           evidence=cause.evidence, where=op.where)
        return named or cause

    def _with_advice(self, diagnosis: Diagnosis, case: StageCase, failed: list) -> Diagnosis:
        """Advice about this pipeline's operators: the normalizer to change, the crop anchor to move; a cause an
        earlier stage already pointed at an operator keeps that operator's advice."""
        earlier = {c.kind: c.advice for r in failed if r.diagnosis for c in r.diagnosis.causes
                   if c.advice is not None and c.advice.where}
        causes = tuple(self._advise(c, case, earlier) for c in self._random_draw(diagnosis.causes))
        return dataclasses.replace(diagnosis, causes=causes)

    def _random_draw(self, causes: tuple) -> tuple:
        """In a graph with a random operator, a per-image value map or fine-detail noise is that operator's draw
        (a jitter, noise), not a normalization or a filter: the fit stays as its evidence."""
        drawn = [c for c in causes if c.kind in VALUE_KINDS | {CauseKind.INTERPOLATION}]
        if not self.random_operators or not drawn:
            return causes
        op = self.random_operators[0]
        what = "a per-channel value map" if drawn[0].kind != CauseKind.INTERPOLATION else "fine-detail noise"
        random = Cause(CauseKind.RANDOM_OPERATOR, f"{self.sides.Actual} differs by {what} that {op.call} "
                                                  f"({op.where}) draws anew on every run",
                       Advice(f"{op.fix}.", where=op.where), drawn[0].evidence, Confidence.FIT)
        return (random, *(c for c in causes if c not in drawn))

    def _advise(self, cause: Cause, case: StageCase, earlier: dict) -> Cause:
        if cause.kind in NORMALIZATION_KINDS:  # named only with the reference's mean/std known
            if case.operator is None:  # plain arrays: the values to use, no operator to point at
                return dataclasses.replace(cause, advice=advice.values_advice(self.mean, self.std))
            return dataclasses.replace(cause, advice=advice.normalization_advice(
                self.normalizers, self.mean, self.std, case.model_channels, self.add_after))
        if case.operator is not None and cause.kind in (CauseKind.PAD_SIDE, CauseKind.OFFSET):
            op = case.operator
            if cause.advice is not None and cause.advice.where:  # the cause already names this operator's change
                return cause
            fix = advice.crop_advice(cause, op.op, op.args, op.where) or earlier.get(cause.kind)
            return dataclasses.replace(cause, advice=fix) if fix else cause
        if cause.kind == CauseKind.LAYOUT and case.expected_layout:
            return dataclasses.replace(cause, advice=advice.layout_advice(case.expected_layout))
        return cause


def _chw(array: np.ndarray, layout: str) -> np.ndarray:
    if array.ndim != 3 or layout in ("CHW", ""):
        return array
    return np.transpose(array, [layout.index(axis) for axis in "CHW"])


def _turned(actual: np.ndarray, expected: np.ndarray, case: StageCase) -> bool:
    """Whether DALI's stage, turned back by 90 degrees either way, is the reference's resized to its size
    (compared smoothed: the two resizes' filters differ in fine detail only)."""
    if actual.ndim != 3 or expected.ndim != 3:
        return False
    from PIL import Image

    d = _chw(actual, case.shape_layout or case.layout).astype(np.float64)
    r = _chw(expected, case.ref_layout or case.layout).astype(np.float64)
    if d.shape[0] != 3 or r.shape[0] != 3 or min(d.shape[1:]) < 32:
        return False
    source = Image.fromarray(np.clip(np.moveaxis(r, 0, -1), 0, 255).astype(np.uint8))
    for k in (1, 3):
        back = np.rot90(d, k, (1, 2))
        target = np.moveaxis(np.asarray(source.resize((back.shape[2], back.shape[1]), Image.Resampling.BILINEAR),
                                        np.float64), -1, 0)
        if geometry.filter_residual(back, target, case.tolerance).explained:
            return True
    return False


def _decodes(op: Operator | None) -> bool:
    """Only a decoder applies (or ignores) EXIF orientation; elsewhere a turned image is a coincidence of a
    symmetric one (plain arrays: anything goes)."""
    return op is None or "decoder" in op.op.lower()


def _follows(failed: list, causes: tuple) -> str:
    """The earlier failed stage a difference follows from, when this stage names nothing of its own."""
    return failed[0].stage if failed and not causes else ""


def _filter_may_explain(failed: list) -> bool:
    """A filter difference is named only where no earlier stage diverged in size or placement: after a
    resize of another size, or a shifted crop, fine-detail differences are their consequence."""
    return all(r.diagnosis is not None and r.diagnosis.causes and r.diagnosis.unexplained is None
               and not r.diagnosis.follows_from and set(r.diagnosis.kinds) <= (_FILTER_KINDS | VALUE_KINDS)
               for r in failed)


def _attribute_causes(case: StageCase) -> tuple[tuple, bool]:
    """Causes visible without comparing values (the layout and dtype the model receives), and whether the
    values can still be read (not after rounding and clipping to an integer range)."""
    causes = []
    if case.emitted_layout and case.expected_layout and case.emitted_layout != case.expected_layout:
        causes.append(Cause(CauseKind.LAYOUT, f"DALI emits {case.emitted_layout} but the model expects "
                                              f"{case.expected_layout}", advice.layout_advice(case.expected_layout),
                            Evidence("the layouts of both tensors", {"dali": case.emitted_layout,
                                                                    "model": case.expected_layout}),
                            Confidence.EXACT))
    dtype = np.dtype(case.actual.dtype)
    if case.expected_dtype is None or dtype == np.dtype(case.expected_dtype):
        return tuple(causes), True
    expected = np.dtype(case.expected_dtype)
    params: dict = {"dali": str(dtype), "model": str(expected)}
    meaningful = True
    finding = f"DALI emits {dtype}, the model takes {expected}"
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        clipped = float(np.mean((case.actual <= info.min) | (case.actual >= info.max)))
        params["clipped_fraction"] = clipped
        finding += (f": normalized values are rounded and clipped to {info.min}..{info.max} "
                    f"({100 * clipped:.1f}% of elements at a bound)")
        meaningful = False  # rounding and clipping make any value analysis misleading
    causes.append(Cause(CauseKind.DTYPE, finding, advice.dtype_advice(),
                        Evidence("the dtypes of both tensors", params), Confidence.EXACT))
    return tuple(causes), meaningful


def diagnose_arrays(actual: np.ndarray, expected: np.ndarray, tolerance: Tolerance, *, mean=None, std=None,
                    to_rgb: bool = False) -> Diagnosis:
    """Diagnose two (C,H,W) arrays with no pipeline around them (``assert_stage_close``); ``mean``/``std``
    are the expected side's normalization, which lets a fit name the mean/std the actual side used."""
    from parity.compare.arrays import compare_arrays

    result = compare_arrays(actual, expected, tolerance, image="", stage="", dali_op="", reference="")
    case = StageCase(actual, expected, tolerance, normalized=mean is not None and std is not None)
    diagnosis = StageDiagnoser(mean=mean, std=std, to_rgb=to_rgb, sides=ARRAYS).diagnose(result, case).diagnosis
    return Diagnosis() if diagnosis is None else diagnosis
