"""One parity run: the loaded harness, the whole-run checks, the images streamed and recorded, and the
verdict. The CLI, the pytest plugin (serially and on pytest-xdist workers) and the assertions drive a
:class:`Run` and only present what it finds, so they cannot disagree."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from parity.results.records import image_record
from parity.results.verdict import DETERMINISM, GPU_RISK, GPU_VS_CPU, GRAPH_CHECKS, REPOSITORY, RunResults
from parity.run.harness import Harness, ImageResult


class Run:
    """A config loaded into a :class:`~parity.run.harness.Harness`, feeding one :class:`RunResults`.

    Args:
        config (ParityConfig): the loaded parity config (tolerance overrides applied).
        results (RunResults | None): where the findings go. Defaults to a new one; the pytest plugin passes
            its own, which a pytest-xdist controller feeds from the workers instead.
        strict_gpu (bool): a GPU-only risk in the pipeline graph fails the gpu_risk check. Defaults to False.
        shard (Shard | None): check only this shard's images. Defaults to None (every image).
    """

    def __init__(self, config, *, results: RunResults | None = None, strict_gpu: bool = False, shard=None):
        self.harness = Harness(config)
        self.config = config
        self.shard = shard
        self.strict_gpu = strict_gpu
        self.results = results or RunResults(degenerate_share=config.model.degenerate_share if config.model
                                             else None)
        self.results.repository = self.harness.repository
        self.results.gpu = self.harness.gpu
        self.labels = tuple(self.harness.stage_labels + ["model"] * bool(self.harness.model)
                            + ["triton"] * bool(config.triton))  # an image's items, in order

    @property
    def images(self) -> list[Path]:
        """The config's images this run checks (its shard's, when sharded)."""
        return [p for p in self.config.images if self.shard is None or self.shard.selects(p)]

    def check(self, name: str):
        """One whole-run check of the pipeline (``REPOSITORY`` or one of ``GRAPH_CHECKS``), run and recorded."""
        harness = self.harness
        if name == REPOSITORY:
            return harness.repository
        result = {GPU_RISK: lambda: harness.gpu_lint(strict=self.strict_gpu), GPU_VS_CPU: harness.gpu_vs_cpu,
                  DETERMINISM: harness.determinism}[name]()
        self.results.set_check(name, result)
        return result

    def graph_checks(self) -> list:
        """Every check of the pipeline graph, before any image: the repository (when configured) first."""
        return [r for r in (self.harness.repository, *(self.check(name) for name in GRAPH_CHECKS)) if r is not None]

    def stream(self, images: list[Path] | None = None, *, keep_views=None,
               on_record: Callable[[dict], None] | None = None) -> Iterator[ImageResult]:
        """Each image's results, a DALI batch at a time (:meth:`Harness.run`), recorded as it is computed;
        ``on_record`` also receives each record (a pytest-xdist worker sends them to its controller)."""
        took = time.perf_counter()
        for image in self.harness.run(self.images if images is None else images, keep_views=keep_views):
            now = time.perf_counter()
            record = image_record(image, seconds=now - took, labels=self.labels)
            took = now
            self.results.add(record)
            if on_record is not None:
                on_record(record)
            yield image

    def degenerate(self):
        """The degenerate-output verdict over every image recorded so far (None without a model section)."""
        return self.results.judge_degenerate()

    def close(self) -> None:
        """Remove the records' spool (the results' numbers stay readable until then)."""
        self.results.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def execute(self, *, keep_views=None, on_checks: Callable[[list], None] | None = None,
                on_image: Callable[[ImageResult], None] | None = None) -> RunResults:
        """The whole run in order: the graph checks, every image, the degenerate-output check."""
        checks = self.graph_checks()
        if on_checks is not None:
            on_checks(checks)
        for image in self.stream(keep_views=keep_views):
            if on_image is not None:
                on_image(image)
        self.degenerate()
        return self.results
