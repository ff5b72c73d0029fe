"""Assertions for any test suite: the same engine and messages as the pytest plugin and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from parity.compare import StageResult, compare_arrays
from parity.config import ParityConfig, Tolerance, config_from_dict, load_config
from parity.diagnose import diagnose_shapes, diagnose_values
from parity.engine import Harness, ImageResult
from parity.errors import check_argument


def _as_config(config) -> ParityConfig:
    if isinstance(config, ParityConfig):
        return config
    if isinstance(config, (str, Path)):
        return load_config(config)
    check_argument(isinstance(config, dict),
                   "Expected a parity config path, dict or ParityConfig but got config={!r} (type={})",
                   config, type(config).__name__)
    return config_from_dict(config, Path.cwd() / "<dict>")


def check_preprocessing_parity(config, images=None) -> list[ImageResult]:
    """Run the check and return every image's results without raising on mismatches."""
    cfg = _as_config(config)
    paths = None if images is None else [Path(p).resolve() for p in images]
    return list(Harness(cfg).run(paths))


def assert_preprocessing_parity(config, images=None) -> list[ImageResult]:
    """Assert that the DALI pipeline reproduces the MMPretrain reference on every image and stage.

    Args:
        config (str | Path | dict | ParityConfig): a parity config file, or its contents as a dict.
        images (list | None): image files to use instead of the config's. Defaults to None.

    Returns:
        list[ImageResult]: the results, when everything passed.

    Raises:
        AssertionError: with the first diverging stage's full message for each failing image.
        ParityUsageError: for a bad config, image or pipeline.
    """
    __tracebackhide__ = True
    results = check_preprocessing_parity(config, images)
    failed = [r for r in results if not r.passed]
    if failed:
        head = (f"Preprocessing parity failed for {len(failed)} of {len(results)} images "
                f"({', '.join(r.image for r in failed)}).")
        raise AssertionError("\n\n".join([head] + [r.first_failure.message() for r in failed if r.first_failure is not None]))
    return results


def assert_triton_parity(config, images=None) -> list[ImageResult]:
    """Assert that the Triton ensemble in the config's ``triton`` section answers like the reference.

    Starts an embedded tritonserver (``triton.repository``) or uses a running one (``triton.url``); the
    preprocessing and model stages run too, but only the Triton verdicts decide this assertion.

    Raises:
        AssertionError: with each failing image's Triton message (refusals quote the server).
        ParityUsageError: for a bad config, an unreachable server or a model that is not ready.
    """
    __tracebackhide__ = True
    cfg = _as_config(config)
    check_argument(cfg.triton is not None, "Expected a config with a `triton` section but got config={!r}",
                   str(cfg.path))
    results = check_preprocessing_parity(cfg, images)
    failed = [r for r in results if r.triton is not None and r.triton.status == "failed"]
    if failed:
        head = (f"Triton parity failed for {len(failed)} of {len(results)} images "
                f"({', '.join(r.image for r in failed)}).")
        raise AssertionError("\n\n".join([head] + [r.triton.message() for r in failed if r.triton is not None]))
    return results


def assert_stage_close(actual, expected, *, atol: float, rtol: float = 0.0, max_mismatch: float = 0.0,
                       mean_atol: float | None = None, stage: str = "stage", mean=None, std=None,
                       channel_axis: int = 0) -> StageResult:
    """Compare two arrays laid out alike ((C,H,W) by default) with parity's message and diagnosis.

    ``mean``/``std`` (the reference's normalization) let the diagnosis name the mean/std the actual
    tensor effectively used.
    """
    __tracebackhide__ = True
    actual, expected = np.asarray(actual), np.asarray(expected)
    tol = Tolerance(atol=atol, rtol=rtol, max_mismatch=max_mismatch, mean_atol=mean_atol, unit="units")
    result = compare_arrays(actual, expected, tol, image="-", stage=stage, dali_op="actual", reference="expected",
                            channel_axis=channel_axis)
    if not result:
        if actual.shape != expected.shape:
            diagnosis = diagnose_shapes(actual.shape, expected.shape, "")
        elif actual.ndim == 3:
            a, e = np.moveaxis(actual, channel_axis, 0), np.moveaxis(expected, channel_axis, 0)
            diagnosis = diagnose_values(a.astype(float), e.astype(float), mean=mean, std=std)
        else:
            diagnosis = None
        import dataclasses

        raise AssertionError(dataclasses.replace(result, diagnosis=diagnosis).message())
    return result
