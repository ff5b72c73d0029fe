"""Plain-text summaries of results: the stage table shown by pytest and the CLI."""

from __future__ import annotations

from collections import Counter


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary_lines(results) -> list[str]:
    """A stage x (passed, failed, skipped) table, the worst error per stage and the named causes."""
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
    return lines
