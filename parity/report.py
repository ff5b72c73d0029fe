"""Plain-text summaries of results: the stage table shown by pytest and the CLI."""

from __future__ import annotations

from collections import Counter


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary_lines(results) -> list[str]:
    """A stage x (passed, failed, skipped) table, the worst error per stage and the named causes,
    then the model stage's line when there is one."""
    from parity.model import DegenerateResult, ModelResult
    from parity.triton_repository import RepositoryResult

    model = [r for r in results if isinstance(r, ModelResult)]
    degenerate = [r for r in results if isinstance(r, DegenerateResult)]
    repository = [r for r in results if isinstance(r, RepositoryResult)]
    results = [r for r in results if not isinstance(r, (ModelResult, DegenerateResult, RepositoryResult))]
    stages = list(dict.fromkeys(r.stage for r in results))
    width = max([len(s) for s in stages] + [5])
    lines = [f"{'stage':<{width}}  passed  failed  skipped  worst max abs  likely cause"]
    for stage in stages:
        rows = [r for r in results if r.stage == stage]
        count = Counter(r.status for r in rows)
        compared = [r for r in rows if r.status != "skipped" and r.total]
        worst = max((r.max_abs for r in compared), default=0.0)
        causes = Counter(c.kind for r in rows if r.diagnosis for c in r.diagnosis.causes)
        cause = ", ".join(f"{k} ({n})" for k, n in causes.most_common()) or "-"
        worst_text = f"{worst:.4g}" if compared else "-"
        lines.append(f"{stage:<{width}}  {count['passed']:>6}  {count['failed']:>6}  {count['skipped']:>7}  "
                     f"{worst_text:>13}  {cause}")
    count = Counter(r.status for r in results)
    lines.append(f"{_plural(count['passed'], 'stage check')} passed. {_plural(count['failed'], 'stage check')} "
                 f"failed. {_plural(count['skipped'], 'stage check')} skipped.")
    for backend in dict.fromkeys(r.backend for r in model):
        group = [r for r in model if r.backend == backend]
        agree = sum(r.dali_top1 == r.ref_top1 >= 0 for r in group if r.status != "skipped")
        ran = sum(r.status != "skipped" for r in group)
        status = Counter(r.status for r in group)
        label = backend if backend.startswith("triton") else f"model ({backend})"
        lines.append(f"{label}: {status['passed']} passed, {status['failed']} failed, "
                     f"{status['skipped']} skipped; top-1 agreement {agree}/{ran}")
    for r in repository:
        lines.append(f"triton repository check: {r.status.upper()}" + (
            f": {len(r.problems)} finding(s), the first: {r.problems[0]}" if r.problems else ""))
    for r in degenerate:
        lines.append(f"degenerate-output check: {r.status.upper()}" + (f": {'; '.join(r.findings)}" if r.findings else ""))
    return lines
