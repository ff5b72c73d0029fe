"""What pytest shows for a failed parity item without ``-v``: three lines at most, so that a run of many
failures reads as a list. What failed and the likely cause; the change to make (or the answers that differ);
the numbers, with where the full message and the pictures are."""

from __future__ import annotations


def short_lines(result, picture: str | None) -> list[str]:
    """The lines for ``result`` (a stage's, the model's or Triton's, or a whole-run check's); ``picture`` is the
    report page that shows it, if one was written."""
    from parity.compare.arrays import StageResult
    from parity.results.degenerate import DegenerateResult
    from parity.serving.model import ModelResult

    where = "the full message with -v" + (f"; pictures: {picture}" if picture else "")
    if isinstance(result, StageResult):
        return _stage(result, where)
    if isinstance(result, ModelResult):
        return [result.headline, _answers(result), where]
    if isinstance(result, DegenerateResult):
        return [result.headline, "; ".join(result.findings), where]
    detail = [line for line in result.message().splitlines()[1:] if line.strip()]
    return [result.headline, *detail[:1], where]


def _stage(result, where: str) -> list[str]:
    """The headline (stage and primary cause), the primary cause's fix, the statistics and the other causes."""
    causes = result.diagnosis.causes if result.diagnosis is not None else ()
    fix = [str(causes[0].advice)] if causes and causes[0].advice is not None else []
    if result.total and result.max_abs_index:
        unit = f" {result.tolerance.unit}" if result.tolerance and result.tolerance.unit else ""
        numbers = (f"{100 * result.mismatch_fraction:.1f}% of {result.total} values over tolerance, max abs "
                   f"{result.max_abs:.4g}, mean abs {result.mean_abs:.4g}{unit}")
    else:
        numbers = result.statistics()
    more = [c.kind for c in causes[1:]]
    also = f"also {', '.join(map(str, more))}" if more else ""
    return [result.headline, *fix, "; ".join(part for part in (numbers, also, where) if part)]


def _answers(result) -> str:
    """The deployed and reference answers in one line, or why there is none (a refused request)."""
    if result.dali_top1 < 0:
        return result.problems[0] if result.problems else result.preprocessing
    return (f"top-1: deployed {result.dali_top1} (p={result.dali_prob:.3f}), reference {result.ref_top1} "
            f"(p={result.ref_prob:.3f}); KL {result.kl:.4g}; greatest logit difference {result.max_abs_logit:.4g}")
