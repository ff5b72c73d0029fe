"""A diagnosis as data: each named cause carries what was measured, the change to make and the fit behind it.

The detectors live in :mod:`parity.diagnose.fits` (value fits), :mod:`parity.diagnose.geometry` (shapes, padding, shifts,
flips, filters) and :mod:`parity.diagnose.advice` (the DALI argument to change); :mod:`parity.diagnose.stage`
runs them for one stage. Every sentence here is composed from fields, so renderers (messages, CLI,
report, JSON) never parse or patch prose. The kinds are documented in docs/diagnosis.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class CauseKind(str, Enum):
    """Stable identifiers of the causes parity can name (equal to their string values)."""

    NAN_INF = "nan_inf"
    RANDOM_OPERATOR = "random_operator"
    CHANNEL_ORDER = "channel_order"
    VALUE_SCALE = "value_scale"
    MISSING_NORMALIZATION = "missing_normalization"
    SCALED_0_1 = "scaled_0_1"
    MEAN_STD_CHANNEL_ORDER = "mean_std_channel_order"
    NORMALIZED_0_1_INPUT = "normalized_0_1_input"
    DOUBLE_NORMALIZATION = "double_normalization"
    WRONG_NORMALIZATION = "wrong_normalization"
    GRAYSCALE = "grayscale"
    FLIP = "flip"
    STRETCH = "stretch"
    PAD_SIDE = "pad_side"
    PAD_VALUE = "pad_value"
    ORIENTATION = "orientation"
    OFFSET = "offset"
    ZOOM = "zoom"
    OPERATOR_ORDER = "operator_order"
    INTERPOLATION = "interpolation"
    RESIZE_FILTER = "resize_filter"
    LAYOUT = "layout"
    DTYPE = "dtype"
    SIZE = "size"
    SIZE_SWAPPED = "size_swapped"
    SIZE_ROUNDING = "size_rounding"
    RESIZE_EDGE = "resize_edge"
    BRIGHTNESS_CONTRAST = "brightness_contrast"
    COLOR_TRANSFORM = "color_transform"
    SPATIAL_FILTER = "spatial_filter"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:  # tuples of kinds read like the strings they equal
        return repr(self.value)


NORMALIZATION_KINDS = frozenset({CauseKind.MISSING_NORMALIZATION, CauseKind.SCALED_0_1,
                                  CauseKind.MEAN_STD_CHANNEL_ORDER, CauseKind.NORMALIZED_0_1_INPUT,
                                  CauseKind.DOUBLE_NORMALIZATION, CauseKind.WRONG_NORMALIZATION})
VALUE_KINDS = NORMALIZATION_KINDS | {CauseKind.CHANNEL_ORDER, CauseKind.VALUE_SCALE}


class Confidence(str, Enum):
    """How a cause was established."""

    EXACT = "exact"  # sizes, counts or a fit that leaves only float rounding
    FIT = "fit"  # a fitted model whose residual is within the stage's tolerance

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Sides:
    """What findings call the tensor under test, the one it must match, and whose normalization that is."""

    actual: str = "DALI"
    expected: str = "the reference"
    target: str = "the model"

    @property
    def Actual(self) -> str:  # noqa: N802 (the sentence-initial form)
        return self.actual[:1].upper() + self.actual[1:]

    @property
    def Expected(self) -> str:  # noqa: N802
        return self.expected[:1].upper() + self.expected[1:]


PIPELINE = Sides()
ARRAYS = Sides("actual", "expected", "expected")


def fmt(value) -> str:
    """Numbers as messages print them: 4 significant digits, vectors in brackets."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ", ".join(fmt(v) for v in np.asarray(value, float).ravel()) + "]"
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return "0" if abs(number) < 1e-9 else f"{number:.4g}"  # a fit's zero, not its float rounding
    return str(value)


@dataclass(frozen=True)
class Evidence:
    """The error model that was fitted, its parameters and what is left after it.

    ``residual_max``/``residual_mean`` are the absolute differences that remain once the model is undone,
    in ``unit``; ``residual_beyond`` is the fraction of elements still beyond ``limit`` (the stage's atol),
    at most ``allowed_beyond`` (its max_mismatch) for the model to explain the difference. ``limit`` is
    None where the evidence is exact arithmetic on sizes or counts, stated by ``model``."""

    model: str
    params: dict = field(default_factory=dict, compare=False)
    residual_max: float = 0.0
    residual_mean: float = 0.0
    residual_beyond: float = 0.0
    limit: float | None = None
    allowed_beyond: float = 0.0
    unit: str = ""

    def __str__(self) -> str:
        params = ", ".join(f"{k}={fmt(v)}" for k, v in self.params.items())
        fitted = f"{self.model} ({params})" if params else self.model
        if self.limit is None:
            return fitted
        return (f"{fitted}; residual after the fit: max abs {fmt(self.residual_max)}, mean abs "
                f"{fmt(self.residual_mean)}, {100 * self.residual_beyond:.2g}% beyond the tolerance "
                f"{fmt(self.limit)} {self.unit} (up to {100 * self.allowed_beyond:.2g}% allowed)")


@dataclass(frozen=True)
class Advice:
    """The change to make: ``argument`` of the operator at ``where`` (a DALI source line), set to ``value``;
    ``text`` says it in full."""

    text: str
    argument: str = ""
    value: str = ""
    where: str = ""

    def __str__(self) -> str:
        return f"Fix at {self.where}: {self.text}" if self.where else f"Fix: {self.text}"


@dataclass(frozen=True)
class Cause:
    """One named cause: ``finding`` is what was measured (one sentence, with numbers)."""

    kind: CauseKind
    finding: str
    advice: Advice | None = None
    evidence: Evidence | None = None
    confidence: Confidence = Confidence.FIT

    @property
    def sentence(self) -> str:
        """The finding followed by the advice."""
        return f"{self.finding}. {self.advice}" if self.advice else f"{self.finding}."

    @property
    def numbers(self) -> dict:
        """The fit's parameters (the evidence's ``params``)."""
        return self.evidence.params if self.evidence else {}

    def __str__(self) -> str:
        return f"{self.sentence} Evidence: {self.evidence}." if self.evidence else self.sentence


@dataclass(frozen=True)
class Unexplained:
    """A difference no known cause explains (after the named causes, if any, are undone)."""

    max_abs: float
    mean_abs: float
    p99_abs: float
    tried: tuple = ()  # the models that were fitted and did not explain it

    @property
    def finding(self) -> str:
        return (f"not explained by a known cause (max abs {fmt(self.max_abs)}, mean abs {fmt(self.mean_abs)}, "
                f"99th percentile {fmt(self.p99_abs)})")

    def __str__(self) -> str:
        tried = f"; tried: {', '.join(self.tried)}" if self.tried else ""
        return f"{self.finding}{tried}"


@dataclass(frozen=True)
class Diagnosis:
    """The causes of one stage's failure, primary first; what they leave unexplained; or the earlier stage
    whose divergence this one follows from."""

    causes: tuple = ()
    unexplained: Unexplained | None = None
    follows_from: str = ""  # label of the earlier failed stage that explains what no cause here does

    @property
    def kinds(self) -> tuple:
        return tuple(c.kind for c in self.causes)

    @property
    def primary(self) -> Cause | None:
        return self.causes[0] if self.causes else None

    @property
    def finding(self) -> str:
        """The primary finding, for a message's first line."""
        if self.causes:
            return self.causes[0].finding
        if self.unexplained is not None:
            return self.unexplained.finding
        if self.follows_from:
            return f"follows from the {self.follows_from} divergence"
        return "not explained by a known cause"

    def __bool__(self) -> bool:
        return bool(self.causes)

    def __str__(self) -> str:
        lines = []
        if len(self.causes) == 1:
            lines.append(f"Likely cause: {self.causes[0]}")
        elif self.causes:
            lines.append("Likely causes:")
            lines.extend(f"  {i + 1}. {c}" for i, c in enumerate(self.causes))
        rest = "The rest" if self.causes else "The difference"
        if self.unexplained is not None:
            lines.append(f"{rest} is {self.unexplained}.")
        elif self.follows_from:
            lines.append(f"{rest} follows from the divergence at stage {self.follows_from!r}.")
        return "\n".join(lines) or "Cause: not explained by a known cause."
