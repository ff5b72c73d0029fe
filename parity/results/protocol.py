"""The one result protocol: every check's result has ``status`` ('passed', 'failed', 'skipped'; the
GPU-risk lint also 'warned'), ``message()``, ``headline`` (the first line: what failed and why, shown by
pytest's short summary, JUnit's ``message`` and the CLI) and ``short_message()`` (what pytest shows without
``-v``) and ``finding`` (the headline without the image and stage, for pytest's short summary line). :class:`~parity.compare.arrays.StageResult` composes its own from the diagnosis; results whose message
opens with that line inherit it from :class:`MessageResult`."""

from __future__ import annotations

from dataclasses import dataclass


class MessageResult:
    @property
    def headline(self) -> str:
        return self.message().split("\n", 1)[0]  # type: ignore[attr-defined]

    @property
    def finding(self) -> str:
        return self.headline

    def short_message(self) -> str:
        return self.message()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SentResult(MessageResult):
    """A whole-run check's result as a pytest-xdist worker sends it (JSON) to the controller's summary and
    report: its status and message."""

    status: str
    text: str

    def message(self) -> str:
        return self.text

    def __bool__(self) -> bool:
        return self.status != "failed"


@dataclass(frozen=True)
class SentLines:
    """What the GPU coverage says (:meth:`parity.gpu.coverage.GpuCoverage.lines`), as a worker sends it."""

    text: tuple

    def lines(self) -> list[str]:
        return list(self.text)
