"""Plain-text summaries of a run: the stage table shown by pytest, the CLI and ``parity merge``.

:class:`RunSummary` is fed one image record (:func:`parity.results.records.image_record`) at a time and keeps
only counters, so its memory does not grow with the number of images, and records from pytest-xdist
workers or from CI shards add up to the same table as one run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from parity.results.protocol import CheckResult


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def titled_checks(repository: CheckResult | None, checks: dict[str, CheckResult | None] | None,
                  degenerate: CheckResult | None) -> list[tuple[str, CheckResult | None]]:
    """The whole-run checks in report order, each with its title ('gpu-risk check'); ``checks`` maps the
    item names (parity.results.verdict's GPU_RISK...) to results."""
    middle = [(f"{name.replace('_', '-')} check", r) for name, r in (checks or {}).items()]
    return [("triton repository check", repository), *middle, ("degenerate-output check", degenerate)]


@dataclass
class _Answers:
    """The model (or Triton) answers of one backend."""

    status: Counter = field(default_factory=Counter)
    agree: int = 0
    ran: int = 0


@dataclass
class _Diagnosis:
    """Images whose first divergence is at the same stage with the same causes: shown once."""

    first_image: str
    headline: str
    images: int = 0


@dataclass
class RunSummary:
    images: int = 0
    failed_images: int = 0
    errors: list = field(default_factory=list)  # (image, error) of images that could not be checked (few)
    stages: dict = field(default_factory=dict)  # stage -> Counter of statuses
    worst: dict = field(default_factory=dict)  # stage -> greatest max abs among compared results
    causes: dict = field(default_factory=dict)  # stage -> Counter of cause kinds
    answers: dict = field(default_factory=dict)  # backend -> _Answers
    diagnoses: dict = field(default_factory=dict)  # (stage, kinds) -> _Diagnosis
    answer_failures: int = 0  # images whose stages match but whose model or Triton answer failed

    def add(self, record: dict) -> None:
        self.images += 1
        self.failed_images += not record["passed"]
        if record.get("error"):
            self.errors.append((record["id"], record["error"]))
            return
        for stage in record["stages"]:
            name, status = stage["stage"], stage["status"]
            self.stages.setdefault(name, Counter())[status] += 1
            self.causes.setdefault(name, Counter()).update(c["kind"] for c in stage["causes"])
            if status != "skipped" and stage["statistics"]["total"]:
                self.worst[name] = max(self.worst.get(name, 0.0), stage["statistics"]["max_abs"])
        for answer in (record.get("model"), record.get("triton")):
            if answer is not None:
                group = self.answers.setdefault(answer["backend"], _Answers())
                group.status[answer["status"]] += 1
                if answer["status"] != "skipped":
                    group.ran += 1
                    group.agree += answer["top1"] == answer["reference_top1"] >= 0
        first = next((s for s in record["stages"] if s["status"] == "failed"), None)
        if first is not None:
            kinds = tuple(dict.fromkeys(c["kind"] for c in first["causes"]))
            group = self.diagnoses.setdefault((first["stage"], kinds),
                                              _Diagnosis(record["id"], first.get("headline") or first["stage"]))
            group.images += 1
        elif not record["passed"]:
            self.answer_failures += 1

    def lines(self, *, repository=None, degenerate=None, checks: dict | None = None) -> list[str]:
        """The stage table, the distinct diagnoses, then one line per backend and per run-wide check."""
        width = max([len(s) for s in self.stages] + [5])
        lines = [f"{'stage':<{width}}  passed  failed  skipped  worst max abs  likely cause"]
        total: Counter = Counter()
        for stage, count in self.stages.items():
            total.update(count)
            cause = ", ".join(f"{k} ({n})" for k, n in self.causes[stage].most_common()) or "-"
            worst = f"{self.worst[stage]:.4g}" if stage in self.worst else "-"
            lines.append(f"{stage:<{width}}  {count['passed']:>6}  {count['failed']:>6}  {count['skipped']:>7}  "
                         f"{worst:>13}  {cause}")
        lines.append(f"{_plural(total['passed'], 'stage check')} passed. {_plural(total['failed'], 'stage check')} "
                     f"failed. {_plural(total['skipped'], 'stage check')} skipped.")
        lines += self.diagnosis_lines()
        for backend, group in self.answers.items():
            label = backend if backend.startswith("triton") else f"model ({backend})"
            lines.append(f"{label}: {group.status['passed']} passed, {group.status['failed']} failed, "
                         f"{group.status['skipped']} skipped; top-1 agreement {group.agree}/{group.ran}")
        for title, r in titled_checks(repository, checks, degenerate):
            if r is not None:
                lines.append(f"{title}: {r.status.upper()}" + (f": {r.headline}" if r.status != "passed"
                                                              else ""))
        return lines

    def diagnosis_lines(self) -> list[str]:
        """Each distinct diagnosis once (the first image's headline), with how many more images share it; the
        differences no cause explains are not one diagnosis, so they are counted, not called the same."""
        return [group.headline + (f" ({_plural(group.images - 1, 'more image')} at {stage} not explained either)"
                                  if not kinds else f" (same diagnosis on {_plural(group.images - 1, 'more image')})")
                * (group.images > 1) for (stage, kinds), group in self.diagnoses.items()]

    @property
    def verdict_line(self) -> str:
        errors = f", {len(self.errors)} could not be checked" if self.errors else ""
        return f"{self.images - self.failed_images} of {self.images} images match{errors}"
