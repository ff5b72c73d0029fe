"""The pytest side of a parity run: collection nodes, items and the per-session plugin.

Node ids are ``cfg.py::<image>::<stage>`` (the config a file, each image a collector, each stage an item)
plus ``cfg.py::triton_repository`` and ``cfg.py::degenerate`` for the checks over the whole run. Every
computed image becomes one JSON-able record (:func:`parity.results.records.image_record`) attached to the
report of the item that computed it, so the summary and the report are built from the same records in a
plain run and on the pytest-xdist controller.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from _pytest._code.code import ReprEntryNative, ReprExceptionInfo, ReprFileLocation, ReprTraceback

from parity.pytest_plugin import parity_key
from parity.results.verdict import DEGENERATE, GRAPH_CHECKS, REPOSITORY


class ParityGpuRiskWarning(UserWarning):
    """A GPU-only risk in the pipeline graph (an error with --parity-strict-gpu)."""


class StageMismatch(AssertionError):
    """Raised by a failing item; carries the result so repr_failure can render it."""

    def __init__(self, result):
        super().__init__(result.message())
        self.result = result


def _failure_repr(text: str, headline: str, path: str) -> ReprExceptionInfo:
    """A failure shown as ``text``, whose crash line (pytest's short summary, JUnit's ``message`` and what
    pytest-xdist sends to the controller) is ``headline``."""
    lines = [line + "\n" for line in text.splitlines()]
    return ReprExceptionInfo(ReprTraceback([ReprEntryNative(lines)], None, "native"), ReprFileLocation(path, 0, headline))


class ParityConfigNode(pytest.File):
    """The config file; its children are the images and the whole-run checks."""

    def collect(self):
        plugin = self.config.stash[parity_key]
        try:
            harness = plugin.harness
        except pytest.UsageError as exc:  # the config's own sentence, not a traceback into parity
            raise self.CollectError(str(exc)) from None
        if harness.repository is not None:  # first: the repository serves what is tested (static, no request)
            yield CheckItem.from_parent(self, name=REPOSITORY)
        # the graph's GPU-only risks (static); the GPU run against the CPU one; DALI run twice on the same inputs
        for name in GRAPH_CHECKS:
            yield CheckItem.from_parent(self, name=name)
        for image in plugin.image_ids:
            yield ParityImage.from_parent(self, name=image)
        if harness.model:  # after every image: whether the deployed answers collapse across them
            yield CheckItem.from_parent(self, name=DEGENERATE)


class ParityImage(pytest.Collector):
    """One image; its children are its stage items (and the model and Triton answers)."""

    def collect(self):
        plugin = self.config.stash[parity_key]
        for stage in plugin.item_stages:
            item = ParityItem.from_parent(self, name=stage)
            item.add_marker(pytest.mark.parity(image=self.name, stage=stage))
            margin = plugin.harness.gpu.margin_of(stage)
            if margin:  # JUnit property: what this CPU verdict means on the GPU
                item.user_properties.append(("gpu_margin", margin))
            yield item


class _ParityItemBase(pytest.Item):
    def setup(self):
        """The result is computed here, so that what keeps an item from being judged (a bad image, a DALI run
        failure, a Triton server that does not start) is reported as a pytest error, never as a mismatch; the
        item that computes an image is charged its time."""
        from parity.errors import ParityUsageError

        plugin = self.config.stash[parity_key]
        earlier = plugin.lazy.error
        try:
            self.result = self._result(plugin)
        except ParityUsageError as exc:  # one sentence, no traceback
            pytest.fail(f"parity: {exc}", pytrace=False)
        except Exception as exc:
            if earlier is None:
                raise  # the first item shows the full traceback
            pytest.fail(f"parity: the run failed on an earlier item: {type(exc).__name__}: {exc}", pytrace=False)
        if isinstance(self.result, str):  # this image could not be checked
            pytest.fail(f"parity: {self.result}", pytrace=False)

    def runtest(self):
        result = self.result
        if result.status == "warned":
            import warnings

            warnings.warn(ParityGpuRiskWarning(result.message()), stacklevel=1)
            return
        if result.status == "skipped":
            pytest.skip(f"{self.name}: {result.skip_reason}")
        if result.status == "failed":
            raise StageMismatch(result)

    def repr_failure(self, excinfo, style=None):
        if not isinstance(excinfo.value, StageMismatch):
            return super().repr_failure(excinfo, style)
        return self.config.stash[parity_key].failure_repr(excinfo.value.result, str(self.path),
                                                          getattr(self, "image", None))

    def reportinfo(self):
        return self.path, None, self.name


class ParityItem(_ParityItemBase):
    """One stage (or the model or Triton answer) of one image."""

    def reportinfo(self):
        return self.path, None, f"{self.image}::{self.name}"  # failure headers name the image too

    @property
    def image(self) -> str:
        assert self.parent is not None  # an image collector
        return self.parent.name

    def _result(self, plugin):
        return plugin.result(self.image, self.name)

    def teardown(self):
        self.config.stash[parity_key].lazy.release(self.image)


class CheckItem(_ParityItemBase):
    """A check over the whole run: the Triton repository and the GPU risks (static), determinism, and the
    degenerate-output check."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_marker(pytest.mark.parity(image=None, stage=self.name))

    def _result(self, plugin):
        if self.name != DEGENERATE:
            return plugin.run.check(self.name)
        if plugin.on_worker and plugin.images_spread:
            return JUDGED_BY_CONTROLLER
        return plugin.degenerate()


class _JudgedByController:
    """A pytest-xdist worker's stand-in for the degenerate-output check when the images are spread over the
    workers: the controller, which receives every image's answer before this item runs (the scheduler
    sends it last), puts its verdict into this item's report."""

    status = "skipped"
    skip_reason = "judged by the pytest-xdist controller over every worker's images"


JUDGED_BY_CONTROLLER = _JudgedByController()


def _xdist_controller(config) -> bool:
    return getattr(config.option, "dist", "no") != "no" and not hasattr(config, "workerinput")


class ParityPlugin:
    """Per-session state: the config, the harness (built when collected), computed images and the summary."""

    def __init__(self, config, cfg, *, report_dir: Path | None, shard=None):
        from parity.results.verdict import RunResults
        from parity.run.interrupt import signals_unwind

        self.pytest_config = config
        self.cfg = cfg
        self.config_path = cfg.path
        self.report_dir = report_dir
        self.shard = shard
        self.signals = signals_unwind()  # entered for the session: SIGTERM/SIGHUP unwind like Ctrl-C
        self.signals.__enter__()
        # what the run finds: fed by this process's Run, or on a pytest-xdist controller by the workers' reports
        spool = getattr(config, "workerinput", {}).get("parity_spool_folder")
        self.results = RunResults(degenerate_share=cfg.model.degenerate_share if cfg.model else None,
                                  spool_within=Path(spool) if spool else None)
        self._workers_spool: Path | None = None  # on a pytest-xdist controller: where its workers spool
        self._run = None
        self._lazy = None
        self.images_spread = False  # stage items selected (under pytest-xdist: spread over the workers)
        self._outgoing: list[dict] = []  # on a pytest-xdist worker: records computed by the item now running
        self.report = None  # the HTML report this process writes (not on a pytest-xdist worker)
        self.pictures = None  # where this process draws its images' pictures (the report, or its folder)
        self.report_path: Path | None = None

    @classmethod
    def from_pytest(cls, config, path: Path) -> ParityPlugin:
        from parity.config.load import load_config
        from parity.errors import ParityUsageError
        from parity.run.shard import Shard

        snapshot = config.getoption("parity_reference")
        report_dir = config.getoption("parity_report") or config.getini("parity_report")
        try:
            # under pytest-xdist the MMPretrain config is read where the reference runs, when collected (the
            # controller schedules images, never reads it): its errors are collection errors
            xdist = _xdist_controller(config) or hasattr(config, "workerinput")
            cfg = load_config(path, snapshot=Path(config.invocation_params.dir, snapshot) if snapshot else None,
                              reference=not xdist)
            shard = Shard.parse(config.getoption("parity_shard"), "--parity-shard")
        except ParityUsageError as exc:
            raise pytest.UsageError(f"parity: {exc}") from None
        return cls(config, cfg, report_dir=Path(config.invocation_params.dir, report_dir) if report_dir else None,
                   shard=shard)

    @property
    def run(self):
        """Loaded on first use: a pytest-xdist controller, which collects nothing, never loads it."""
        if self._run is None:
            from parity.config.load import load_config
            from parity.errors import ParityUsageError
            from parity.run.run import Run

            try:
                if not self.cfg.reference_read:
                    self.cfg = load_config(self.config_path)
                self._run = Run(self.cfg, results=self.results,
                                strict_gpu=self.pytest_config.getoption("parity_strict_gpu"))
            except ParityUsageError as exc:
                raise pytest.UsageError(f"parity: {exc}") from None
        return self._run

    @property
    def harness(self):
        return self.run.harness

    @property
    def image_ids(self) -> list[str]:
        return list(self._paths)

    @functools.cached_property
    def _paths(self) -> dict[str, Path]:
        from parity.images import image_ids

        paths = dict(zip(image_ids(self.cfg.images), self.cfg.images))
        return paths if self.shard is None else {i: p for i, p in paths.items() if self.shard.selects(p)}

    @property
    def on_worker(self) -> bool:
        return hasattr(self.pytest_config, "workerinput")

    @functools.cached_property
    def chunk(self) -> dict[str, int]:
        """image -> its pytest-xdist work unit: whole DALI batches, as many as leave 4 units per worker (for
        the load to even out at the end), so that a worker's stream prepares its next batch while the items
        of one run, as a serial run's does."""
        step = self.cfg.dali.batch_size
        batches = -(-len(self.image_ids) // step)
        per_unit = max(1, batches // (4 * self._xdist_workers)) if self._xdist_workers else 1
        return {image: i // (step * per_unit) for i, image in enumerate(self.image_ids)}

    @functools.cached_property
    def _xdist_workers(self) -> int:
        """How many pytest-xdist workers the run has, as the controller and every worker see it (0: none)."""
        if self.on_worker:
            return int(self.pytest_config.workerinput["workercount"])
        if self.distributed:
            from xdist.workermanage import parse_tx_spec_config

            return len(parse_tx_spec_config(self.pytest_config))
        return 0

    def scope(self, nodeid: str) -> str | None:
        """The pytest-xdist work unit of a parity node id (None: not parity's)."""
        parts = nodeid.split("::")
        if not self._is_config_id(parts[0]):
            return None
        if len(parts) == 3 and parts[1] in self.chunk:
            return f"{parts[0]}::unit-{self.chunk[parts[1]]}"
        return nodeid

    @functools.lru_cache(maxsize=64)  # noqa: B019 (one plugin per session; called for every node id)
    def _is_config_id(self, file_part: str) -> bool:
        return (self.pytest_config.rootpath / file_part).resolve() == self.config_path

    @property
    def item_stages(self) -> list[str]:
        harness = self.harness
        return harness.stage_labels + ["model"] * bool(harness.model) + ["triton"] * bool(self.cfg.triton)

    @property
    def lazy(self):
        if self._lazy is None:
            from parity.run.lazy import LazyImages

            keep = lambda image: self.pictures is not None and self.pictures.wants_views(image)  # noqa: E731
            outgoing = self._outgoing.append if self.on_worker else None  # for the controller
            self._lazy = LazyImages(functools.partial(self.run.stream, keep_views=keep, on_record=outgoing),
                                    self._paths, self._computed, group=self.chunk.get if self.on_worker
                                    else lambda image: None)
        return self._lazy

    def _computed(self, image_result) -> None:
        if self.pictures is not None:
            self.pictures.add(image_result)

    def result(self, image: str, stage: str):
        """The result of one item, its image computed on first use."""
        image_result = self.lazy.get(image)
        if image_result.error:
            return image_result.error
        if stage == "model":
            return image_result.model
        if stage == "triton":
            return image_result.triton
        return next(r for r in image_result.stages if r.stage == stage)

    def degenerate(self):
        self.lazy.compute_all()
        return self.run.degenerate()

    def close(self) -> None:
        if self._lazy is not None:
            self._lazy.close()
        if self.report is not None:
            self.report.discard()
        self.results.close()
        self.signals.__exit__(None, None, None)

    # -- hooks -------------------------------------------------------------------------------------------

    def _is_config(self, path) -> bool:
        return Path(path).resolve() == self.config_path

    @pytest.hookimpl(tryfirst=True)
    def pytest_pycollect_makemodule(self, module_path, parent):
        # the config is a .py file given on the command line: collect it as parity items, never import it
        if self._is_config(module_path):
            return ParityConfigNode.from_parent(parent, path=module_path)
        return None

    def pytest_collect_file(self, file_path, parent):
        if file_path.suffix != ".py" and self._is_config(file_path):
            return ParityConfigNode.from_parent(parent, path=file_path)
        return None

    def pytest_collection_finish(self, session):
        """The selected items, after -k, -m, --deselect and --lf: the plan of what to compute."""
        images = [item.image for item in session.items if isinstance(item, ParityItem)]
        whole_run = any(isinstance(item, CheckItem) and item.name == DEGENERATE for item in session.items)
        self.images_spread = bool(images)  # every pytest-xdist worker selects the same items
        if not images and not whole_run:
            return
        self.lazy.plan(images, self.image_ids if whole_run else ())  # the degenerate check looks at every image
        if self.report_dir is not None:
            if self.on_worker:  # pictures into the controller's report folder; it writes the index
                from parity.outputs.html import ImagePictures

                self.pictures = ImagePictures(Path(self.pytest_config.workerinput["parity_report_folder"]))
            else:
                self.pictures = self.report = self._new_report()

    def _new_report(self):
        from parity.outputs.html import HtmlReport

        return HtmlReport(self.report_dir, title=f"parity: {self.config_path.name}")

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node):
        """pytest-xdist, on the controller: every worker draws into the one report folder, and spools its
        records in a folder of the controller's, removed when the controller ends (a worker killed by a
        signal or ``os._exit`` cannot remove its own)."""
        if self.report_dir is not None:
            self.report = self.report or self._new_report()
            node.workerinput["parity_report_folder"] = str(self.report.folder)
        if self._workers_spool is None:
            import shutil
            import tempfile
            import weakref

            self._workers_spool = Path(tempfile.mkdtemp(prefix="parity-workers-"))
            weakref.finalize(self, shutil.rmtree, self._workers_spool, ignore_errors=True)
        node.workerinput["parity_spool_folder"] = str(self._workers_spool)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if self._outgoing:
            report.parity_records = list(self._outgoing)
            self._outgoing.clear()
        if call.when == "call" and getattr(item, "result", None) is JUDGED_BY_CONTROLLER:
            report.parity_judged_by_controller = True
        elif call.when == "call" and self.on_worker and isinstance(item, CheckItem) and hasattr(item, "result"):
            report.parity_check = [item.name, item.result.status, item.result.message()]  # for the controller
            report.parity_gpu = self.harness.gpu.lines()
        return report

    @pytest.hookimpl(tryfirst=True)  # before the terminal, JUnit and --lf read the report
    def pytest_runtest_logreport(self, report):
        if self.on_worker:
            return  # the controller adds them up
        for record in getattr(report, "parity_records", ()):  # sent by a worker
            self.results.add(record)
        if getattr(report, "parity_check", None):
            from parity.results.protocol import SentLines, SentResult

            name, status, text = report.parity_check  # the degenerate one: judged on the worker that computed
            self.results.set_check(name, SentResult(status, text))  # every image (-k degenerate)
            self.results.gpu = SentLines(tuple(report.parity_gpu))
        if getattr(report, "parity_judged_by_controller", False):
            self._judged(report, self.results.judge_degenerate())

    def _judged(self, report, result) -> None:
        """The controller's degenerate-output verdict in the report of the worker's stand-in item."""
        path = str(self.config_path)
        if result.status == "failed":
            report.outcome, report.longrepr = "failed", self.failure_repr(result, path)
        elif result.status == "passed":
            report.outcome, report.longrepr = "passed", None
        else:
            report.longrepr = (path, None, f"Skipped: {DEGENERATE}: {result.skip_reason}")

    def failure_repr(self, result, path: str, image: str | None = None):
        """How a failed result is shown: three lines (:mod:`parity.pytest_plugin.failure`), its full message with
        -v or --tb=long; the short summary line is its finding."""
        if self.pytest_config.get_verbosity() > 0 or self.pytest_config.getoption("tbstyle") == "long":
            return _failure_repr(result.message(), result.finding, path)
        from parity.pytest_plugin.failure import short_lines

        return _failure_repr("\n".join(short_lines(result, self._picture(image))), result.finding, path)

    def _picture(self, image: str | None) -> str | None:
        """Where the report shows an image's pictures (its failing section page, when drawn; else the index),
        relative to where pytest was started when under it."""
        if self.report_dir is None:
            return None
        from parity.outputs.html import SECTIONS
        from parity.outputs.html_image import safe_name

        page = self.report_dir / "index.html"
        drawn: set[str] = {p.name for p in self.pictures.drawn} if self.pictures is not None else set()
        if image is not None and f"f-{safe_name(image)}.html" in drawn:
            page = self.report_dir / SECTIONS / f"f-{safe_name(image)}.html"
        start = Path(self.pytest_config.invocation_params.dir)
        return str(page.relative_to(start) if page.is_relative_to(start) else page)

    @property
    def distributed(self) -> bool:
        """A pytest-xdist controller: its workers compute, it adds up their records."""
        return _xdist_controller(self.pytest_config)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config, log):
        """Whole DALI batches to a worker, so each image is computed once in the run and still batched; the
        degenerate-output check after every image's answer has reached the controller."""
        from parity.pytest_plugin.xdist import BatchScheduling

        return BatchScheduling(config, log, self.scope, waits=self._is_degenerate_id)

    def _is_degenerate_id(self, nodeid: str) -> bool:
        parts = nodeid.split("::")
        return len(parts) == 2 and parts[1] == DEGENERATE and self._is_config_id(parts[0])

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        if self._lazy is not None:
            self._lazy.close()  # the Triton server stops before the summary is printed
        results = self.results
        if self.report is not None and results.summary.images:
            self.report_path = self.report.write(
                results.records(), results.summary, degenerate=results.degenerate, repository=results.repository,
                checks=results.checks, gpu=results.gpu)
            self.report = None

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config):
        results = self.results
        if not results.summary.images or config.get_verbosity() < 0:
            return
        terminalreporter.write_sep("-", "parity report summary")
        for line in results.lines():
            terminalreporter.write_line(line)
        terminalreporter.write_line(results.summary.verdict_line)
        # what was compared with, as `parity check` says it: a live reference, or `snapshot DIR of CONFIG`
        terminalreporter.write_line(f"Reference: {self.cfg.reference_source}")
        if self.report_path:
            terminalreporter.write_line(f"HTML report: {self.report_path}")
