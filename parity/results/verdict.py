"""What a run found, and its verdict: the image records (summary and spool), the whole-run checks and the
degenerate-output judge. One :class:`RunResults` is fed in-process by :class:`parity.run.run.Run`, by the
workers' reports on a pytest-xdist controller, or by the shards' result files in ``parity merge``; all three
then say the same lines and return the same exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parity.results.degenerate import DegenerateJudge, DegenerateResult
from parity.results.exit import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE
from parity.results.recorder import RunRecorder

# The whole-run checks of the pipeline, as collected and reported: the Triton repository first (static),
# then the graph's GPU-only risks, the GPU run against the CPU one, DALI run twice on the same inputs.
REPOSITORY, GPU_RISK, GPU_VS_CPU, DETERMINISM, DEGENERATE = (
    "triton_repository", "gpu_risk", "gpu_vs_cpu", "determinism", "degenerate")
GRAPH_CHECKS = (GPU_RISK, GPU_VS_CPU, DETERMINISM)


class RunResults:
    """Fed image records (:meth:`add`) and whole-run check results (:meth:`set_check`); judged at the end."""

    def __init__(self, *, degenerate_share: float | None, spool_within: Path | None = None):
        self.recorder = RunRecorder(spool_within)
        self.degenerate_share = degenerate_share  # None: no model section, no degenerate-output check
        self.judge = None if degenerate_share is None else DegenerateJudge(degenerate_share)
        # results judged here, or their JSON-sent form on a pytest-xdist controller (parity.results.protocol)
        self.repository: Any = None  # the Triton repository check (None without a triton.repository)
        self.checks: dict = {}  # GRAPH_CHECKS name -> result, in that order
        self.degenerate: DegenerateResult | None = None  # set by judge_degenerate() (or sent by a worker)
        self.gpu: Any = None  # what the GPU coverage says (parity.gpu.coverage), when known

    @property
    def summary(self):
        return self.recorder.summary

    def records(self):
        return self.recorder.records()

    def add(self, record: dict) -> None:
        self.recorder.add(record)
        if self.judge is not None:
            self.judge.add(record)

    def set_check(self, name: str, result) -> None:
        if name == REPOSITORY:
            self.repository = result
        elif name == DEGENERATE:
            self.degenerate = result
        else:
            self.checks = dict(sorted({**self.checks, name: result}.items(),
                                      key=lambda item: GRAPH_CHECKS.index(item[0])))

    def judge_degenerate(self) -> DegenerateResult | None:
        """The degenerate-output verdict over every record added so far (None without a model section)."""
        if self.judge is not None:
            self.degenerate = self.judge.verdict()
        return self.degenerate

    @property
    def judged(self) -> list:
        """Every whole-run check's result (None where a check was not part of the run)."""
        return [self.repository, *self.checks.values(), self.degenerate]

    def lines(self) -> list[str]:
        """The summary: the stage table, the answers, every whole-run check and the GPU coverage."""
        lines = self.summary.lines(repository=self.repository, degenerate=self.degenerate, checks=self.checks)
        return lines + (self.gpu.lines() if self.gpu is not None else [])

    @property
    def findings(self) -> list[str]:
        """The full message of every failed whole-run check, in report order."""
        return [r.message() for r in self.judged if r is not None and r.status == "failed"]

    def exit_code(self) -> int:
        """2 when an image could not be checked, 1 on a failed image or whole-run check, else 0."""
        if self.summary.errors:
            return EXIT_USAGE
        failed = self.summary.failed_images or any(r is not None and not r for r in self.judged)
        return EXIT_MISMATCH if failed else EXIT_OK

    def close(self) -> None:
        self.recorder.close()
