"""The one result base: every check's result has ``status`` ('passed', 'failed', 'skipped'; the GPU-risk
lint also 'warned'), is truthy unless it failed, and has ``message()``, ``headline`` (the first line: what
failed and why, shown by pytest's short summary, JUnit's ``message`` and the CLI), ``short_message()`` (what
pytest shows without ``-v``) and ``finding`` (the headline without the image and stage, for pytest's short
summary line). :class:`~parity.compare.arrays.StageResult` composes the last three from its diagnosis; the
other results' messages open with their headline."""

from __future__ import annotations

from dataclasses import dataclass


class CheckResult:
    status: str

    def message(self) -> str:
        raise NotImplementedError

    def __bool__(self) -> bool:
        return self.status != "failed"

    @property
    def headline(self) -> str:
        return self.message().split("\n", 1)[0]

    @property
    def finding(self) -> str:
        return self.headline

    def short_message(self) -> str:
        return self.message()


@dataclass(frozen=True)
class SentResult(CheckResult):
    """A whole-run check's result as a pytest-xdist worker sends it (JSON) to the controller's summary and
    report: its status and message."""

    status: str
    text: str

    def message(self) -> str:
        return self.text


@dataclass(frozen=True)
class SentLines:
    """What the GPU coverage says (:meth:`parity.gpu.coverage.GpuCoverage.lines`), as a worker sends it."""

    text: tuple

    def lines(self) -> list[str]:
        return list(self.text)
