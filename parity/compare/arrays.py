"""Compare one DALI stage with its reference stage: attributes first (shape, dtype, layout), then
values against a :class:`~parity.config.load.Tolerance`, giving a :class:`StageResult` and its message."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from parity.config.load import Tolerance
from parity.results.protocol import CheckResult

if TYPE_CHECKING:
    from parity.diagnose.causes import Diagnosis

_TABLE_ROWS = 5


@dataclass(frozen=True)
class ChannelStats:
    min: float
    max: float
    mean: float


@dataclass(frozen=True)
class StageResult(CheckResult):
    """Outcome of one (image, stage) comparison; truthy when it passed."""

    image: str
    stage: str  # label of the DALI stage, e.g. 'resize' or 'model_input'
    dali_op: str  # where the DALI side comes from, e.g. "seed.py:6: images = fn.resize(...)"
    reference: str  # reference stage name, e.g. 'Resize' or 'model_input'
    status: str  # 'passed' | 'failed' | 'skipped'
    tolerance: Tolerance | None = None
    problems: tuple = ()  # attribute mismatches (shape, dtype, layout), one line each
    notes: tuple = ()  # how the two sides were made comparable
    mismatched: int = 0
    total: int = 0
    max_abs: float = 0.0
    max_abs_index: tuple = ()
    max_rel: float = 0.0
    max_rel_index: tuple = ()
    mean_abs: float = 0.0
    p99_abs: float = 0.0
    dali_channels: tuple = ()  # ChannelStats per channel
    ref_channels: tuple = ()
    worst: tuple = ()  # ((index, dali value, reference value), ...)
    diagnosis: Diagnosis | None = None  # why it failed (failures only)
    first_divergence: str = ""  # the earliest failing stage of this image, when it is not this one
    skip_reason: str = ""
    sides: tuple = ("DALI", "reference")  # what the two tensors are called in messages

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def mismatch_fraction(self) -> float:
        return self.mismatched / self.total if self.total else 0.0

    @property
    def subject(self) -> str:
        """'image: stage' (or what of it is named): the first words of every line about this result."""
        return ": ".join(p for p in (self.image, self.stage) if p and p != "-") or \
            f"{self.sides[0]} vs {self.sides[1]}"

    @property
    def headline(self) -> str:
        """One line naming the image, the stage and the primary cause (or the statistics when none explains
        it): the first line of every message, the CLI's line and JUnit's message attribute."""
        return f"{self.subject}: {self.finding}"

    @property
    def finding(self) -> str:
        """The headline without the image and stage: pytest's short summary line, which names them already."""
        if self.status == "skipped":
            return f"not compared ({self.skip_reason})"
        if self.status == "passed":
            return f"close (max abs {_fmt(self.max_abs)}, mean abs {_fmt(self.mean_abs)})"
        if self.diagnosis is not None:
            return self.diagnosis.finding
        if self.problems:
            return self.problems[0]
        return f"not explained by a known cause (max abs {_fmt(self.max_abs)}, mean abs {_fmt(self.mean_abs)})"

    def statistics(self) -> str:
        """One line of the comparison's statistics."""
        if not self.total or not self.max_abs_index:
            return "; ".join(self.problems)
        return (f"Mismatched elements: {self.mismatched} / {self.total} ({100 * self.mismatch_fraction:.1f}%); "
                f"greatest absolute difference {_fmt(self.max_abs)} at index {self.max_abs_index}; mean absolute "
                f"difference {_fmt(self.mean_abs)}")

    def short_message(self) -> str:
        """The headline, the change to make and one line of statistics."""
        lines = [self.headline]
        causes = self.diagnosis.causes if self.diagnosis is not None else ()
        lines += [f"{c.kind}: {c.advice}" if len(causes) > 1 else str(c.advice) for c in causes if c.advice is not None]
        stats = self.statistics()
        if stats:
            lines.append(stats)
        return "\n".join(lines)

    def message(self) -> str:
        """The full failure message: the headline, then laid out like ``torch.testing.assert_close``'s."""
        return format_message(self)


def _channel_stats(array: np.ndarray, channel_axis: int) -> tuple:
    if array.ndim != 3:
        return (ChannelStats(float(array.min()), float(array.max()), float(array.mean())),)
    moved = np.moveaxis(array, channel_axis, 0).reshape(array.shape[channel_axis], -1)
    return tuple(ChannelStats(float(c.min()), float(c.max()), float(c.mean())) for c in moved)


def compare_arrays(actual: np.ndarray, expected: np.ndarray, tolerance: Tolerance, *, image: str, stage: str,
                   dali_op: str, reference: str, problems=(), notes=(), channel_axis: int = 0,
                   sides: tuple = ("DALI", "reference")) -> StageResult:
    """Compare two arrays of the same layout; ``problems`` are attribute mismatches found by the caller;
    ``sides`` name the two arrays in messages.

    A passing comparison computes only what decides the verdict (it runs for every image and stage);
    statistics that only a failure message shows are computed for failures.
    """
    problems = list(problems)
    common: dict[str, Any] = dict(image=image, stage=stage, dali_op=dali_op, reference=reference,
                                  tolerance=tolerance, notes=tuple(notes), sides=tuple(sides))
    if actual.shape != expected.shape:
        problems.insert(0, f"Shape mismatch: {sides[0]} {tuple(actual.shape)}, {sides[1]} {tuple(expected.shape)}")
        return StageResult(status="failed", problems=tuple(problems), total=expected.size,
                           dali_channels=_channel_stats(actual, channel_axis) if actual.size else (),
                           ref_channels=_channel_stats(expected, channel_axis) if expected.size else (), **common)
    if not problems and actual.dtype == expected.dtype and np.array_equal(actual, expected):
        return _identical(actual, tolerance, channel_axis, common)  # most stages of a passing run: no subtraction
    diff, work = _abs_diff(actual, expected)
    flat_abs = int(np.argmax(diff)) if diff.size else 0  # argmax stops at a NaN: a finite maximum means all finite
    if work is not None and diff.size and not np.isfinite(diff.flat[flat_abs]):
        problems.append(f"{sides[0]} holds {int(np.isnan(actual).sum())} NaN and {int(np.isinf(actual).sum())} "
                        "Inf values")
        diff = np.where(np.isfinite(diff), diff, np.inf)
        flat_abs = int(np.argmax(diff))
    threshold = _threshold(tolerance, expected)
    integral = work is None and not threshold.ndim and threshold >= 0
    mismatch = diff > (_integer_threshold(threshold, diff.dtype) if integral else threshold)
    mismatched = int(np.count_nonzero(mismatch))
    diff_mean = _mean(diff)
    inner = _interior(diff.ndim, diff.shape, channel_axis, tolerance.border)
    if any(index != slice(None) for index in inner):
        judged = diff[inner]
        fraction = float(np.count_nonzero(mismatch[inner])) / judged.size if judged.size else 0.0
        judged_mean = _mean(judged)
    else:  # the whole array is judged: the same figures
        fraction, judged_mean = (mismatched / diff.size if diff.size else 0.0), diff_mean
    ok = (not problems and fraction <= tolerance.max_mismatch
          and (tolerance.mean_atol is None or judged_mean <= tolerance.mean_atol))
    if tolerance.border and any(index != slice(None) for index in inner):
        common["notes"] = (*notes, f"verdict from the interior ({100 * fraction:.2f}% mismatched, mean "
                                   f"{judged_mean:.4g}): the outer {tolerance.border}-pixel border is reported "
                                   "but not judged")
    stats: dict[str, Any] = dict(status="passed" if ok else "failed", problems=tuple(problems), total=diff.size,
                 mismatched=mismatched, max_abs=float(diff.flat[flat_abs]) if diff.size else 0.0,
                 max_abs_index=tuple(int(i) for i in np.unravel_index(flat_abs, diff.shape)) if diff.size else (),
                 mean_abs=diff_mean)
    if not ok and diff.size:
        work = work or np.float32
        a, e = actual.astype(work, copy=False), expected.astype(work, copy=False)
        diff = diff.astype(work, copy=False)
        rel = diff / np.maximum(np.abs(e), np.finfo(work).eps)
        flat_rel = int(np.argmax(rel))
        stats.update(max_rel=float(rel.flat[flat_rel]),
                     max_rel_index=tuple(int(i) for i in np.unravel_index(flat_rel, diff.shape)),
                     p99_abs=float(np.percentile(diff, 99)),
                     dali_channels=_channel_stats(actual, channel_axis), ref_channels=_channel_stats(expected, channel_axis),
                     worst=_worst(diff, np.broadcast_to(threshold, diff.shape), a, e))
    return StageResult(**stats, **common)


def _identical(array: np.ndarray, tolerance: Tolerance, channel_axis: int, common: dict) -> StageResult:
    """The result of comparing ``array`` with an equal array: every difference 0, the figures the general
    path gives for them."""
    inner = _interior(array.ndim, array.shape, channel_axis, tolerance.border)
    ok = tolerance.max_mismatch >= 0 and (tolerance.mean_atol is None or tolerance.mean_atol >= 0)
    if tolerance.border and any(index != slice(None) for index in inner):
        common["notes"] = (*common["notes"], "verdict from the interior (0.00% mismatched, mean 0): the outer "
                                             f"{tolerance.border}-pixel border is reported but not judged")
    return StageResult(status="passed" if ok else "failed", total=array.size,
                       max_abs_index=(0,) * array.ndim if array.size else (), **common)


def _threshold(tolerance: Tolerance, expected: np.ndarray) -> np.ndarray:
    # float32 model inputs carry ~1e-7 relative rounding: a difference of exactly atol is within it
    if tolerance.rtol:
        return (tolerance.atol + tolerance.rtol * np.abs(expected.astype(np.float64))) * (1 + 1e-5)
    return np.asarray(tolerance.atol * (1 + 1e-5))


def _integer_threshold(threshold: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A scalar threshold as the integer ``t`` with ``d > t`` exactly when ``d > threshold`` for every integer
    ``d`` of ``dtype``: the comparison stays in the difference's own type (no float64 conversion)."""
    top = np.iinfo(dtype).max
    return np.asarray(top if float(threshold) >= top else math.floor(float(threshold)), dtype)  # atol=inf: no limit


def _mean(diff: np.ndarray) -> float:
    """The mean as ``diff.mean(dtype=np.float64)`` gives it; an unsigned integer sum is exact, so it is summed in
    its own width (the float64 sum of integers below 2**53 is exact too, and the division the same)."""
    if not diff.size:
        return 0.0
    if diff.dtype.kind == "u" and diff.size * np.iinfo(diff.dtype).max < 2**53:
        return float(int(diff.sum(dtype=np.uint64))) / diff.size
    return float(diff.mean(dtype=np.float64))


def _abs_diff(actual: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, Any]:
    """``|actual - expected|`` and the float type it was computed in (None: exact, in the shared integer type).

    Equal unsigned integer images subtract in their own type (max - min), so the check that runs for every
    image and stage allocates no widened copies; uint8 and float32 differences are exact in float32, and
    float64 is kept only when an input has it.
    """
    if actual.dtype == expected.dtype and actual.dtype.kind == "u":
        diff = np.maximum(actual, expected)
        diff -= np.minimum(actual, expected)
        return diff, None
    work = np.float64 if np.float64 in (actual.dtype, expected.dtype) else np.float32
    diff = np.subtract(actual.astype(work, copy=False), expected.astype(work, copy=False))
    return np.abs(diff, out=diff), work


def _worst(diff, threshold, a, e) -> tuple:
    """The largest mismatches for the message table (a partial sort: only failures pay for it)."""
    flat = diff.ravel()
    k = min(_TABLE_ROWS, flat.size)
    top = np.argpartition(flat, flat.size - k)[flat.size - k:]
    top = top[np.argsort(flat[top])[::-1]]
    return tuple((tuple(int(i) for i in np.unravel_index(j, diff.shape)), float(a.flat[j]), float(e.flat[j]))
                 for j in top if flat[j] > threshold.flat[j])


def _interior(ndim: int, shape: tuple, channel_axis: int, border: int) -> tuple:
    """Index of the array without ``border`` pixels on each spatial edge (all of it when too small)."""
    index = [slice(None)] * ndim
    if ndim != 3 or not border:
        return tuple(index)
    for axis in range(3):
        if axis != channel_axis % 3 and shape[axis] > 2 * border + 2:
            index[axis] = slice(border, shape[axis] - border)
    return tuple(index)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def format_message(r: StageResult) -> str:
    if r.status == "skipped":
        return r.headline
    tol = r.tolerance or Tolerance(atol=0.0)
    actual, expected = r.sides
    width = max(len(actual), len(expected)) + 2
    verb = "are close" if r.passed else "are not close"
    where = " ".join(f"{what} {name!r}" for what, name in (("at stage", r.stage), ("of image", r.image))
                     if name and name != "-")
    lines = [r.headline, "", f"{actual[0].upper()}{actual[1:]} and {expected} {verb}{' ' + where if where else ''}."]
    if r.dali_op:
        lines.append(f"{actual + ':':<{width}}{r.dali_op}")
    if r.reference:
        lines.append(f"{expected[0].upper() + expected[1:] + ':':<{width}}{r.reference}")
    lines.extend(r.problems)
    lines.extend(f"Note: {n}" for n in r.notes)
    if r.total and r.max_abs_index:
        threshold = _fmt(tol.atol) + (f" + {_fmt(tol.rtol)} * |{expected}|" if tol.rtol else "")
        lines.append(f"Mismatched elements: {r.mismatched} / {r.total} ({100 * r.mismatch_fraction:.1f}%) "
                     f"(up to {100 * tol.max_mismatch:.2g}% allowed; element threshold {threshold}, in {tol.unit})")
        lines.append(f"Greatest absolute difference: {_fmt(r.max_abs)} at index {r.max_abs_index} "
                     f"(up to {_fmt(tol.atol)} allowed)")
        relative = f" (up to {_fmt(tol.rtol)} allowed)" if tol.rtol else ""
        lines.append(f"Greatest relative difference: {_fmt(r.max_rel)} at index {r.max_rel_index}{relative}")
        mean_allowed = "" if tol.mean_atol is None else f" (up to {_fmt(tol.mean_atol)} allowed)"
        lines.append(f"Mean absolute difference: {_fmt(r.mean_abs)}{mean_allowed}; 99th percentile {_fmt(r.p99_abs)}")
    if r.dali_channels and r.ref_channels:
        lines.append("")
        lines.append(f"{'Channel':<9}| {actual + ' min / max / mean':<30}| {expected} min / max / mean")
        for i, (d, e) in enumerate(zip(r.dali_channels, r.ref_channels)):
            lines.append(f"{i:<9}| {_fmt(d.min) + ' / ' + _fmt(d.max) + ' / ' + _fmt(d.mean):<30}| "
                         f"{_fmt(e.min)} / {_fmt(e.max)} / {_fmt(e.mean)}")
    if r.worst and not r.passed:
        lines.append("")
        lines.append(f"{'Index':<18}| {actual:<12}| {expected}")
        for index, a, e in r.worst:
            lines.append(f"{str(index):<18}| {_fmt(a):<12}| {_fmt(e)}")
    if r.diagnosis is not None:
        lines.append("")
        lines.append(str(r.diagnosis))
    if r.first_divergence:
        lines.append("")
        lines.append(r.first_divergence)
    return "\n".join(lines)
