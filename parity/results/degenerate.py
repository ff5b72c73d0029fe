"""The degenerate-output check: do the deployed model's answers collapse across images (the seed's "class 0
with probability 1 for every request")? One judge over image records, so a serial run, the pytest-xdist
controller (records sent by its workers), ``parity merge`` (records of every shard) and
``parity.assert_not_degenerate`` (plain logits) reach the same verdict from the same answers.

It keeps counters and per-component ranges only: its memory does not grow with the number of images, and
judges fed the records of several shards add up to the judge of one run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from parity.results.logits import fingerprint, softmax
from parity.results.protocol import CheckResult

SATURATED = 0.999  # a probability this close to 1 is "saturated"


@dataclass(frozen=True)
class DegenerateResult(CheckResult):
    """Across all images: do the deployed model's answers collapse?"""

    status: str
    images: int
    findings: tuple = ()
    hint: str = ""
    consequence_of: str = ""  # e.g. "model_input divergence on astronaut and 7 more images"

    @property
    def skip_reason(self) -> str:
        return "; ".join(self.findings) if self.status == "skipped" else ""

    @property
    def finding(self) -> str:
        """The headline without the check's name (pytest's short summary names the item)."""
        return f"consequence of the {self.consequence_of}" if self.status == "failed" and self.consequence_of \
            else self.headline

    def message(self) -> str:
        if self.status == "skipped":
            return f"The degenerate-output check did not run: {self.skip_reason}"
        if self.status == "passed":
            return f"Deployed outputs vary across {self.images} images: no collapse."
        first = [f"degenerate: consequence of the {self.consequence_of}", ""] if self.consequence_of else []
        return "\n".join([*first, "Deployed model outputs are degenerate!", "", *self.findings] +
                         (["", self.hint] if self.hint else []))


def divergence_of(image: str, stage: str, images: int) -> str:
    """What a collapse is the consequence of: the first diverged image's first failed stage, and how many
    images diverged in all."""
    more = images - 1
    return f"{stage} divergence on {image}" + (f" and {more} more image{'s' * (more > 1)}" if more else "")


def answer_of(logits: np.ndarray, reference_logits: np.ndarray | None = None) -> dict:
    """The judge's fields of one answer (as :func:`parity.results.records.answer_record` writes them), from
    plain logits."""
    p = softmax(np.asarray(logits, np.float64))
    finite = bool(np.isfinite(logits).all())
    answer = dict(top1=int(p.argmax()) if finite else -1, prob=float(p.max()) if finite else 0.0, finite=finite,
                  fingerprint=fingerprint(logits) if finite else [], reference_top1=-1, reference_prob=0.0,
                  preprocessing="")
    if reference_logits is not None:
        q = softmax(np.asarray(reference_logits, np.float64))
        answer.update(reference_top1=int(q.argmax()), reference_prob=float(q.max()))
    return answer


@dataclass
class DegenerateJudge:
    """Fed one image record at a time (:meth:`add`), judged at the end (:meth:`verdict`)."""

    share: float  # model.degenerate_share: the share of images that makes a collapse
    images: int = 0  # images whose deployed model answered (with a class)
    top1: Counter = field(default_factory=Counter)
    prob_sum: Counter = field(default_factory=Counter)
    ref_classes: set = field(default_factory=set)
    saturated: int = 0
    ref_saturated: int = 0
    referenced: int = 0  # answers with a reference answer beside them
    nonfinite: int = 0
    low: list = field(default_factory=list)  # per fingerprint component: smallest and largest across images
    high: list = field(default_factory=list)
    hints: int = 0
    first_hint: str = ""
    first_diverged: str = ""  # the first image whose preprocessing diverged
    first_failed: str = ""  # ... and its first failed stage
    diverged: int = 0  # images whose preprocessing diverged

    def add(self, record: dict) -> None:
        failed = next((s["stage"] for s in record.get("stages", ()) if s["status"] == "failed"), None)
        if failed:
            self.diverged += 1
            if not self.first_diverged:
                self.first_diverged, self.first_failed = record["id"], failed
        answer = record.get("model")
        if answer is not None:
            self.add_answer(answer)

    def add_answer(self, answer: dict) -> None:
        """One deployed answer: whatever its own verdict (a run without a reference network still answers)."""
        if not answer.get("finite", True):
            self.images += 1
            self.nonfinite += 1
            return
        if answer["top1"] < 0:  # no answer (a refused request, an input that could not feed the model)
            return
        self.images += 1
        self.top1[answer["top1"]] += 1
        self.prob_sum[answer["top1"]] += answer["prob"]
        self.saturated += answer["prob"] >= SATURATED
        if answer["reference_top1"] >= 0:
            self.referenced += 1
            self.ref_classes.add(answer["reference_top1"])
            self.ref_saturated += answer["reference_prob"] >= SATURATED
        marks = answer.get("fingerprint") or []
        if not self.low:
            self.low, self.high = list(marks), list(marks)
        elif len(marks) == len(self.low):
            self.low = [min(a, b) for a, b in zip(self.low, marks)]
            self.high = [max(a, b) for a, b in zip(self.high, marks)]
        if answer.get("preprocessing"):
            self.hints += 1
            self.first_hint = self.first_hint or answer["preprocessing"]

    def verdict(self) -> DegenerateResult:
        n = self.images
        if n < 2:
            return DegenerateResult("skipped", n, ("fewer than 2 images reached the model",))
        findings = []
        answered = n - self.nonfinite
        if answered:
            cls, count = self.top1.most_common(1)[0]
            classes = len(self.ref_classes)
            if count / n >= self.share and (not self.referenced or classes > 1):
                reference = f" (the reference model answers {classes} different classes)" if self.referenced else ""
                findings.append(f"{count} of {n} images -> class {cls} with mean p={self.prob_sum[cls] / count:.3f}"
                                f"{reference}")
            if self.saturated / n >= self.share and self.ref_saturated / max(self.referenced, 1) < self.share:
                findings.append(f"probabilities saturated: p >= {SATURATED} for {100 * self.saturated / n:.0f}% of "
                                "images" + (f" (reference {100 * self.ref_saturated / self.referenced:.0f}%)"
                                            if self.referenced else ""))
        if answered >= 2 and self.low:
            spread = max(h - lo for lo, h in zip(self.low, self.high))
            scale = max(1.0, *(abs(v) for v in (*self.low, *self.high)))
            if spread <= 1e-6 * scale:
                findings.append(f"logits identical across images (greatest spread across images {spread:.3g})")
        if self.nonfinite:
            findings.append(f"NaN/Inf logits for {self.nonfinite} images")
        if not findings:
            return DegenerateResult("passed", n)
        hint = f"Preprocessing diverged on {self.hints} of {n} images; for example:\n{self.first_hint}" \
            if self.hints else ""
        consequence = divergence_of(self.first_diverged, self.first_failed, self.diverged) if self.diverged else ""
        return DegenerateResult("failed", n, tuple(findings), hint, consequence_of=consequence)


def judge_logits(logits: np.ndarray, reference_logits: np.ndarray | None, share: float) -> DegenerateResult:
    """The same judge over plain logit arrays [N, classes] (``parity.assert_not_degenerate``)."""
    judge = DegenerateJudge(share)
    for i, row in enumerate(np.atleast_2d(logits)):
        judge.add_answer(answer_of(row, None if reference_logits is None else reference_logits[i]))
    return judge.verdict()

