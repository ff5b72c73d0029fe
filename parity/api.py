"""Assertions for any test suite: the same engine and messages as the pytest plugin and the CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from parity.compare.arrays import StageResult, compare_arrays
from parity.config.load import ParityConfig, Tolerance, config_from_dict, load_config
from parity.errors import LayoutError, check_argument
from parity.images import check_image
from parity.run.harness import ImageResult
from parity.run.run import Run


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
    for path in dict.fromkeys(paths if paths is not None else cfg.images):  # a caller gets the image's error
        check_image(path)
    run = Run(cfg)
    try:
        return list(run.stream(paths))
    finally:
        run.results.close()


def assert_preprocessing_parity(config, images=None) -> list[ImageResult]:
    """Assert that the DALI pipeline reproduces the MMPretrain reference on every image and stage, and that
    the whole-run checks pass (the Triton repository serves what is tested, DALI is deterministic, the
    deployed answers do not collapse): the same run, and the same verdict, as ``parity check``.

    Args:
        config (str | Path | dict | ParityConfig): a parity config file, or its contents as a dict.
        images (list | None): image files to use instead of the config's. Defaults to None.

    Returns:
        list[ImageResult]: the results, when everything passed.

    Raises:
        AssertionError: with the summary, each failed whole-run check's message and the first diverging
            stage's full message for each failing image.
        ParityUsageError: for a bad config, image or pipeline.
    """
    __tracebackhide__ = True
    cfg = _as_config(config)
    if images is not None:
        cfg = dataclasses.replace(cfg, images=[Path(p).resolve() for p in images])
    kept: list[ImageResult] = []
    run = Run(cfg)
    try:
        results = run.execute(on_image=kept.append)
        errors = results.summary.errors
        check_argument(not errors, "{} of {} images could not be checked: {}", len(errors), len(kept),
                       "; ".join(f"{image}: {error}" for image, error in errors))
        if results.exit_code() == 0:
            return kept
        failed = [r for r in kept if not r.passed]
        head = (f"Preprocessing parity failed for {len(failed)} of {len(kept)} images"
                + (f" ({', '.join(r.image for r in failed)})." if failed else "."))
        raise AssertionError("\n\n".join([head, "\n".join(results.lines()), *results.findings]
                                          + [r.first_failure.message() for r in failed if r.first_failure is not None]))
    finally:
        run.results.close()


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
        ParityUsageError: for a NaN or out-of-range threshold (a NaN would pass any pair).
    """
    __tracebackhide__ = True
    import math

    from parity.results.logits import softmax
    from parity.serving.model import kl_divergence
    from parity.serving.model import topk_overlap as overlap_of

    for name, value in (("kl", kl), ("atol", 0.0 if atol is None else atol)):
        check_argument(isinstance(value, (int, float)) and not math.isnan(value) and value >= 0,
                       "Expected {} a non-negative number (inf: no limit) but got {}={!r}", name, name, value)
    check_argument(isinstance(topk_overlap, (int, float)) and 0 <= topk_overlap <= 1,
                   "Expected topk_overlap a number in [0, 1] but got topk_overlap={!r}", topk_overlap)
    check_argument(isinstance(topk, int) and not isinstance(topk, bool) and topk >= 1,
                   "Expected topk a positive integer but got topk={!r}", topk)
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
    from parity.results.degenerate import judge_logits

    rows = np.atleast_2d(np.asarray(logits, np.float32))
    ref = None if reference_logits is None else np.atleast_2d(np.asarray(reference_logits, np.float32))
    result = judge_logits(rows, ref, share)
    if result.status == "failed":
        raise AssertionError(result.message())


_LAYOUTS = ("CHW", "HWC", "HW", "NCHW", "NHWC")


def _as_array(x, what: str) -> np.ndarray:
    """A numpy array from a numpy array, a torch tensor (any device, bfloat16 included) or a nested list,
    without importing torch."""
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        return x.numpy()
    check_argument(not isinstance(x, (str, bytes, dict)), "Expected an array or tensor but got {}={!r} (type={})",
                   what, x, type(x).__name__)
    return np.asarray(x)


def _infer_layout(shape: tuple) -> str:
    """The layout of an image array: 'HW' for 2-d; for 3-d (4-d, batched) the channel axis is first or last,
    and only one of those two may have a channel count (1, 3 or 4)."""
    if len(shape) == 2:
        return "HW"
    if len(shape) not in (3, 4):
        raise LayoutError(f"Expected an image array of 2, 3 or 4 dimensions but got shape {shape}: pass "
                          f"layout= one of {', '.join(_LAYOUTS)}")
    lead = len(shape) - 3  # the batch axis, when there is one
    first, last = shape[lead] in (1, 3, 4), shape[-1] in (1, 3, 4)
    if first != last:
        return ("N" * lead) + ("CHW" if first else "HWC")
    candidates = ("NCHW", "NHWC") if lead else ("CHW", "HWC")
    raise LayoutError(f"Cannot tell the channel axis of shape {shape}: "
                      f"{'both' if first else 'neither'} axis {lead} and axis {len(shape) - 1} "
                      f"{'look' if first else 'looks'} like channels (1, 3 or 4). Pass "
                      f"layout={candidates[0]!r} or layout={candidates[1]!r}")


def assert_stage_close(actual, expected, *, atol: float, rtol: float = 0.0, max_mismatch: float = 0.0,
                       mean_atol: float | None = None, layout: str | None = None, name: str = "",
                       mean=None, std=None) -> StageResult:
    """Assert that two image tensors are close, with parity's message and diagnosis.

    Args:
        actual (numpy.ndarray | torch.Tensor): the tensor under test (e.g. your DALI output).
        expected (numpy.ndarray | torch.Tensor): the tensor it must match, same shape and layout.
        atol (float): the largest absolute difference allowed per element.
        rtol (float): plus this times ``|expected|`` per element. Defaults to 0 (off).
        max_mismatch (float): the fraction of elements allowed beyond the threshold. Defaults to 0.
        mean_atol (float | None): the largest mean absolute difference allowed. Defaults to None (off).
        layout (str | None): 'CHW', 'HWC', 'HW', 'NCHW' or 'NHWC'. Defaults to None: inferred when exactly
            one of the first and last (after a batch axis) axes has length 1, 3 or 4; else refused.
        name (str): what the tensors are, for the message's first line. Defaults to "".
        mean (sequence | None): the normalization ``expected`` went through, per channel; with ``std``
            the diagnosis names the mean/std ``actual`` effectively used. Defaults to None.
        std (sequence | None): see ``mean``. Defaults to None.

    Returns:
        StageResult: the comparison (statistics, per-channel ranges), when it passed.

    Raises:
        AssertionError: the message's first line names the primary cause, or says none explains it.
        LayoutError: the layout is not given and cannot be inferred (a ``ValueError``).
        ParityUsageError: for a bad argument.
    """
    __tracebackhide__ = True
    from parity.diagnose.causes import ARRAYS
    from parity.diagnose.stage import StageCase, StageDiagnoser

    a, e = _as_array(actual, "actual"), _as_array(expected, "expected")
    check_argument(layout is None or layout in _LAYOUTS, "Expected layout= one of {} but got layout={!r}",
                   ", ".join(_LAYOUTS), layout)
    layout = layout or _infer_layout(e.shape)
    check_argument(len(layout) == e.ndim, "Expected a {}-dimensional expected tensor for layout={!r} but got shape {}",
                   len(layout), layout, e.shape)
    tol = Tolerance(atol=atol, rtol=rtol, max_mismatch=max_mismatch, mean_atol=mean_atol, border=0, unit="units")
    result = compare_arrays(a, e, tol, image="", stage=name, dali_op="", reference="",
                            channel_axis=layout.index("C") if "C" in layout else 0, sides=("actual", "expected"))
    if result:
        return result
    if a.shape == e.shape and layout.startswith("N"):  # batched: diagnose the sample with the largest difference
        sample = result.max_abs_index[0]
        a, e, layout = a[sample], e[sample], layout[1:]
    if layout == "HW":
        a, e, layout = a[None], e[None], "CHW"
    case = StageCase(a, e, tol, layout=layout, shape=a.shape, shape_layout=layout, ref_layout=layout,
                     normalized=mean is not None and std is not None)
    raise AssertionError(StageDiagnoser(mean=mean, std=std, sides=ARRAYS).diagnose(result, case).message())
