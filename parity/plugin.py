"""pytest plugin: ``pytest --parity-config cfg.py`` collects the config as a file, each image as a
collector and each stage as an item (``cfg.py::astronaut::model_input``), so pytest's own selection and
rerun machinery applies: ``-k``, ``-m parity``, node ids, ``--deselect``, ``--lf``, ``--ff``, ``--sw``,
``-x`` and pytest-xdist.

Images are computed when their first selected item runs, in DALI batches drawn from the selected items
that follow (:mod:`parity.run.lazy`); results are dropped once their image's last item has run. Without
``--parity-config`` (or the ``parity_config`` ini option) the plugin imports nothing of parity's engine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from parity.pytest_plugin import parity_key


def pytest_addoption(parser):
    group = parser.getgroup("parity", "preprocessing parity (MMPretrain reference vs DALI)")
    group.addoption("--parity-config", dest="parity_config", metavar="CFG", default=None,
                    help="Parity config file: add one test per image and stage comparing DALI with MMPretrain")
    group.addoption("--parity-reference", dest="parity_reference", metavar="DIR", default=None,
                    help="Compare against this reference snapshot (from `parity snapshot`) instead of running MMPretrain")
    group.addoption("--parity-report", dest="parity_report", metavar="DIR", default=None,
                    help="Write an HTML report (stages side by side, difference heatmaps) into DIR")
    group.addoption("--parity-shard", dest="parity_shard", metavar="K/N", default=None,
                    help="Check only shard K of N: images assigned by content hash (combine with `parity merge`)")
    group.addoption("--parity-strict-gpu", dest="parity_strict_gpu", action="store_true", default=False,
                    help="Fail the gpu_risk item on a GPU-only risk in the pipeline graph (default: a warning)")
    parser.addini("parity_config", "Parity config file used when --parity-config is not given", default="")
    parser.addini("parity_report", "Folder for the HTML report when --parity-report is not given", default="")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """pytest finds its ini file from the command line's paths before plugins add their options, so the value
    of ``--parity-reference DIR`` was taken for a test path: a snapshot outside the project lost the project's
    ini and its ``parity_config`` (exit 5, no tests ran). Find it again without that value, as pytest does
    for ``--parity-reference=DIR``. (The ini's ``addopts`` were read before this hook: they stay unapplied.)"""
    ns = early_config.known_args_namespace
    if not getattr(ns, "parity_reference", None) or ns.inifilename or ns.rootdir:
        return
    from _pytest.config.findpaths import determine_setup

    try:  # pytest's private setup finder, whose signature changes between versions: without it, pytest's own
        rootpath, inipath, inicfg, ignored = determine_setup(  # ini discovery stands (`--parity-reference=DIR`)
            inifile=None, override_ini=ns.override_ini, args=ns.file_or_dir, rootdir_cmd_arg=None,
            invocation_dir=early_config.invocation_params.dir)
    except (TypeError, ValueError):
        return
    if inipath is None or inipath == early_config.inipath:
        return
    derived = str(early_config.inipath.parent if early_config.inipath else early_config.rootpath)
    if ns.confcutdir == derived:  # pytest's default, not the user's --confcutdir
        ns.confcutdir = str(inipath.parent)
    early_config._rootpath, early_config._inipath = rootpath, inipath  # private: no public way to set them
    early_config._inicfg, early_config._ignored_config_files = inicfg, ignored
    early_config._inicache.clear()
    parser.extra_info.update(rootdir=str(rootpath), inifile=str(inipath))


def pytest_configure(config):
    config.addinivalue_line("markers", "parity(image, stage): a preprocessing-parity item added by parity")
    option = config.getoption("parity_config")
    path = option or config.getini("parity_config")
    if not path:
        return
    config_path = Path(config.invocation_params.dir, path).resolve()
    named = [a for a in config.option.file_or_dir if Path(config.invocation_params.dir, a.split("::")[0]).resolve()
             == config_path]
    if not option and config.option.file_or_dir and not named:
        # the ini's parity config is for a bare `pytest`: an explicit `pytest tests/x.py` runs what it names
        return
    import warnings

    from parity.errors import ParityPipelineWarning
    from parity.pytest_plugin.session import ParityPlugin

    with warnings.catch_warnings(record=True) as caught:  # a config's differing pipelines: in pytest's summary
        plugin = ParityPlugin.from_pytest(config, config_path)
    for w in caught:
        if issubclass(w.category, ParityPipelineWarning):
            config.issue_config_time_warning(w.message, stacklevel=2)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    config.stash[parity_key] = plugin
    config.pluginmanager.register(plugin, "parity-session")
    # The config file is collected as the parent of the parity items. Alone, `pytest --parity-config
    # cfg.py` runs only those; with other paths, those too; with node ids inside it, only those.
    if not config.option.file_or_dir:
        config.args[:] = [str(plugin.config_path)]
    elif not named:
        config.args.append(str(plugin.config_path))


def pytest_unconfigure(config):
    plugin = config.stash.get(parity_key, None)
    if plugin is not None:
        plugin.close()
        config.pluginmanager.unregister(plugin)
        del config.stash[parity_key]
