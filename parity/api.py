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
    errors = [r for r in results if r.error]
    check_argument(not errors, "{} of {} images could not be checked: {}", len(errors), len(results),
                   "; ".join(f"{r.image}: {r.error}" for r in errors))
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


def assert_logits_close(actual, expected, *, kl: float = 0.01, topk: int = 5, topk_overlap: float = 0.6,
                        atol: float | None = None) -> None:
    """Assert that deployed logits [N, classes] answer like the reference's: same top-1, top-k overlap,
    KL(reference || deployed) per row, and optionally a largest absolute logit difference.

    Raises:
        AssertionError: naming the rows that differ, with top-1 and probabilities, KL and overlap.
    """
    __tracebackhide__ = True
    from parity.model import kl_divergence, softmax
    from parity.model import topk_overlap as overlap_of

    a, e = np.atleast_2d(np.asarray(actual, np.float64)), np.atleast_2d(np.asarray(expected, np.float64))
    check_argument(a.shape == e.shape, "Expected logits of the same shape but got actual {} and expected {}",
                   a.shape, e.shape)
    lines = []
    for i, (row, ref) in enumerate(zip(a, e)):
        p, q = softmax(ref), softmax(row)
        problems = []
        if int(p.argmax()) != int(q.argmax()):
            problems.append(f"top-1 {int(q.argmax())} (p={q.max():.3f}) vs reference {int(p.argmax())} (p={p.max():.3f})")
        divergence = kl_divergence(p, q)
        if divergence > kl:
            problems.append(f"KL {divergence:.4g} > {kl}")
        share = overlap_of(ref, row, topk)
        if share < topk_overlap:
            problems.append(f"top-{topk} overlap {100 * share:.0f}% < {100 * topk_overlap:.0f}%")
        if atol is not None and np.abs(row - ref).max() > atol:
            problems.append(f"greatest logit difference {np.abs(row - ref).max():.4g} > {atol}")
        if problems:
            lines.append(f"row {i}: " + "; ".join(problems))
    if lines:
        raise AssertionError(f"Logits are not close for {len(lines)} of {len(a)} inputs!\n\n" + "\n".join(lines))


def assert_not_degenerate(logits, *, reference_logits=None, share: float = 0.9) -> None:
    """Assert that logits [N, classes] over N >= 2 varied inputs do not collapse: one class for (nearly)
    all, probabilities saturated at 1, identical rows, NaN/Inf. No reference is needed; given one, a
    collapse the reference shares (a dataset of one class) is not reported.
    """
    __tracebackhide__ = True
    from parity.model import collect, degenerate_of

    rows = np.atleast_2d(np.asarray(logits, np.float32))
    ref = None if reference_logits is None else np.atleast_2d(np.asarray(reference_logits, np.float32))
    result = degenerate_of(collect(rows, ref), share)
    if result.status == "failed":
        raise AssertionError(result.message())


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
