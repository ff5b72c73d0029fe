"""pytest plugin: ``pytest --parity-config cfg.py`` adds one test item per image and stage.

Without ``--parity-config`` (or the ``parity_config`` ini option) the plugin does nothing. The heavy
work lives in :mod:`parity.engine`; this module only wires it into pytest's hooks.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

parity_key = pytest.StashKey["ParityPlugin"]()


def pytest_addoption(parser):
    group = parser.getgroup("parity", "preprocessing parity (MMPretrain reference vs DALI)")
    group.addoption("--parity-config", dest="parity_config", metavar="CFG", default=None,
                    help="Parity config file: add one test per image and stage comparing DALI with MMPretrain")
    group.addoption("--parity-reference", dest="parity_reference", metavar="DIR", default=None,
                    help="Compare against this reference snapshot (from `parity snapshot`) instead of running MMPretrain")
    group.addoption("--parity-report", dest="parity_report", metavar="DIR", default=None,
                    help="Write an HTML report (stages side by side, difference heatmaps) into DIR")
    parser.addini("parity_config", "Parity config file used when --parity-config is not given", default="")
    parser.addini("parity_report", "Folder for the HTML report when --parity-report is not given", default="")


def pytest_configure(config):
    config.addinivalue_line("markers", "parity(image, stage): a preprocessing-parity item added by parity")
    option = config.getoption("parity_config")
    path = option or config.getini("parity_config")
    if not path or (not option and config.option.file_or_dir):
        # the ini's parity config is for a bare `pytest`: an explicit `pytest tests/x.py` runs what it names
        return
    from parity.config import load_config
    from parity.engine import Harness
    from parity.errors import ParityUsageError

    try:
        snapshot = config.getoption("parity_reference")
        harness = Harness(load_config(Path(config.invocation_params.dir, path),
                                      snapshot=Path(config.invocation_params.dir, snapshot) if snapshot else None))
    except ParityUsageError as exc:
        raise pytest.UsageError(f"parity: {exc}") from None
    report_dir = config.getoption("parity_report") or config.getini("parity_report")
    plugin = ParityPlugin(harness, Path(config.invocation_params.dir, report_dir) if report_dir else None)
    config.stash[parity_key] = plugin
    config.pluginmanager.register(plugin, "parity-session")
    plugin.signals.__enter__()
    # The config file is collected as the parent of the parity items. Alone, `pytest --parity-config
    # cfg.py` runs only those; with explicit paths it runs them as well.
    cfg_path = str(harness.config.path)
    if config.option.file_or_dir:
        config.args.append(cfg_path)
    else:
        config.args[:] = [cfg_path]


def pytest_unconfigure(config):
    plugin = config.stash.get(parity_key, None)
    if plugin is not None:
        plugin.signals.__exit__(None, None, None)
        config.pluginmanager.unregister(plugin)
        del config.stash[parity_key]


class StageMismatch(AssertionError):
    """Raised by a failing item; carries the StageResult so repr_failure can render it."""

    def __init__(self, result):
        super().__init__(result.message())
        self.result = result


class ParityConfigNode(pytest.File):
    """The config file as a collection node; its children are the (image, stage) items."""

    def collect(self):
        harness = self.config.stash[parity_key].harness
        stages = harness.stage_labels + (["model"] if harness.model else []) + (
            ["triton"] if harness.config.triton else [])
        if harness.repository is not None:
            # first: the repository serves what is tested (a static check, before any request)
            yield ParityItem.from_parent(self, name="triton::repository", image="triton", stage="repository")
        for image in harness.image_ids:
            for stage in stages:
                item = ParityItem.from_parent(self, name=f"{image}::{stage}", image=image, stage=stage)
                item.add_marker(pytest.mark.parity(image=image, stage=stage))
                yield item
        if harness.model:
            # after every image: whether the deployed answers collapse across them
            yield ParityItem.from_parent(self, name="model::degenerate", image="model", stage="degenerate")


class ParityItem(pytest.Item):
    def __init__(self, *, image: str, stage: str, **kwargs):
        super().__init__(**kwargs)
        self.image = image
        self.stage = stage

    def setup(self):
        """The result is computed here, so that what keeps an item from being judged (a bad image, a DALI run
        failure, a Triton server that does not start) is reported as a pytest error, never as a mismatch."""
        from parity.errors import ParityUsageError

        plugin = self.config.stash[parity_key]
        earlier = plugin._error
        try:
            self.result = plugin.result(self.image, self.stage)
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
        if result.status == "skipped":
            pytest.skip(f"{self.stage}: {result.skip_reason}")
        if result.status == "failed":
            raise StageMismatch(result)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, StageMismatch):
            return excinfo.value.result.message()
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"parity {self.image} {self.stage}"


class ParityPlugin:
    """Per-session state: the loaded harness and, once run, every result."""

    def __init__(self, harness, report_dir: Path | None = None):
        from parity.interrupt import signals_unwind

        self.signals = signals_unwind()  # entered for the session: SIGTERM/SIGHUP unwind like Ctrl-C
        self.harness = harness
        self.report_dir = report_dir
        self.report_path: Path | None = None
        self._results: dict | None = None
        self._error: Exception | None = None

    def result(self, image: str, stage: str):
        """The result of one item; the first call runs every image (one DALI batch at a time). The repository
        check is static: it is judged even when the run cannot start."""
        if (image, stage) == ("triton", "repository"):
            return self.harness.repository
        if self._error is not None:
            raise self._error  # the run already failed: every item reports it, none retries
        if self._results is None:
            try:
                self._results = self._run()
            except Exception as exc:
                self._error = exc
                raise
        return self._results[(image, stage)]  # type: ignore[index]

    def _run(self) -> dict:
        """Run every image once, keeping only results (and writing the report as images pass)."""
        report = None
        if self.report_dir is not None:
            from parity.html import HtmlReport

            report = HtmlReport(self.report_dir, title=f"parity: {self.harness.config.path.name}")
        try:
            return self._judge(report)
        except BaseException:
            if report is not None:
                report.discard()
            raise

    def _judge(self, report) -> dict:
        results: dict = {}
        if self.harness.repository is not None:  # for the summary; its item reads it from the harness
            results[("triton", "repository")] = self.harness.repository
        start = time.perf_counter()
        labels = self.harness.stage_labels + ["model", "triton"]
        for image_result in self.harness.run(keep_views=report.wants_views if report else None):
            if image_result.error:
                results.update({(image_result.image, label): image_result.error for label in labels})
            for r in image_result.stages:
                results[(r.image, r.stage)] = r
            if image_result.model is not None:
                results[(image_result.image, "model")] = image_result.model
            if image_result.triton is not None:
                results[(image_result.image, "triton")] = image_result.triton
            if report:
                report.add(image_result)
        degenerate = self.harness.degenerate()
        if degenerate is not None:
            results[("model", "degenerate")] = degenerate
        if report:
            self.report_path = report.write(time.perf_counter() - start, degenerate, self.harness.repository)
        return results

    def _is_config(self, path) -> bool:
        return Path(path).resolve() == self.harness.config.path

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

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config):
        if self._results is None or config.get_verbosity() < 0:
            return
        from parity.report import summary_lines

        terminalreporter.write_sep("-", "parity report summary")
        for line in summary_lines([r for r in self._results.values() if not isinstance(r, str)]):
            terminalreporter.write_line(line)
        if self.report_path:
            terminalreporter.write_line(f"HTML report: {self.report_path}")
