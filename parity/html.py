"""The HTML report: per image, each stage side by side (reference, DALI, difference heatmap with its
colour scale), per-channel histograms of the model input, the diagnosis in words. One self-contained
folder (index.html + PNGs) that a CI system can archive.

Images are written as they stream past and only text is kept, so a long run holds no tensors. Pictures
are drawn for at most ``max_images`` images, failures first; every image still gets its table row.
"""

from __future__ import annotations

import html
import re
import shutil
import time
from collections import Counter
from pathlib import Path

from parity.html_image import IMAGE_CSS, draw_image_section

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d1d1f;background:#fafafa}
h1{font-size:22px}h2{font-size:17px;margin-top:32px;border-top:1px solid #ddd;padding-top:16px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
.passed{color:#16794a;font-weight:600}.failed,.error{color:#c62828;font-weight:600}.skipped{color:#777}
pre{background:#fff;border:1px solid #ddd;padding:8px;overflow-x:auto;font-size:12px}
"""


class HtmlReport:
    """Collects results as they stream and writes ``index.html`` plus pictures into ``folder``: built in a
    new folder beside it and renamed into place by :meth:`write` (no stale pictures, no two runs mixed);
    :meth:`discard` removes it when the run fails first."""

    MARKER = "parity-report.txt"

    def __init__(self, folder, *, title: str, max_images: int = 50):
        from parity.extras import require
        from parity.outputs import fresh_folder

        require("matplotlib", "report", "the HTML report")
        self.target = Path(folder).resolve()
        self.folder = fresh_folder(self.target, self.MARKER, "--report")
        self.title = title
        self.max_images = max_images
        self.sections: list[tuple[bool, str]] = []  # (failed, html), pictures drawn
        self.rows: list[str] = []  # one summary row per image
        self.counts: Counter = Counter()
        self.stage_counts: dict[str, Counter] = {}
        self.drawn = 0
        self.failed_images = 0

    def wants_views(self, image: str) -> bool:
        """Ask for tensors while there is room for pictures (a failure may still replace a pass later)."""
        return self.drawn < self.max_images or self.failed_images < self.max_images

    def add(self, result) -> None:
        failed = not result.passed
        self.failed_images += failed
        for r in result.stages:
            self.counts[r.status] += 1
            self.stage_counts.setdefault(r.stage, Counter())[r.status] += 1
        first = result.first_failure
        status = "error" if result.error else "failed" if failed else "passed"
        anchor = f"img-{len(self.rows)}"
        cause = result.error or ", ".join(result.cause_kinds)
        answers = "".join(f"<td class={r.status}>{html.escape(_answer(r))}</td>" if r is not None else "<td>-</td>"
                          for r in (result.model, result.triton))
        self.rows.append(f"<tr><td><a href='#{anchor}'>{html.escape(result.image)}</a></td>"
                         f"<td class={status}>{status.upper()}</td>"
                         f"<td>{html.escape(first.stage) if first is not None else '-'}</td>"
                         f"<td>{html.escape(cause)}</td>{answers}</tr>")
        if not result.views or not self._room_for(failed):
            return
        self.sections.append((failed, draw_image_section(self.folder, result, anchor)))
        self.drawn += 1

    def _room_for(self, failed: bool) -> bool:
        if self.drawn < self.max_images:
            return True
        # full: a failure replaces the most recent passing picture
        for i in range(len(self.sections) - 1, -1, -1):
            if failed and not self.sections[i][0]:
                del self.sections[i]
                self.drawn -= 1
                return True
        return False

    def write(self, seconds: float | None = None, degenerate=None, repository=None) -> Path:
        stages = "".join(
            f"<tr><td>{html.escape(stage)}</td><td class=passed>{c['passed']}</td><td class=failed>{c['failed']}</td>"
            f"<td class=skipped>{c['skipped']}</td></tr>" for stage, c in self.stage_counts.items())
        failed = [s for failed, s in self.sections if failed]
        passed = [s for failed, s in self.sections if not failed]
        verdict = "FAILED" if self.failed_images else "PASSED"
        body = (f"<h1>{html.escape(self.title)} <span class={verdict.lower()}>{verdict}</span></h1>"
                f"<p>{len(self.rows)} images, {self.failed_images} failing. {self.counts['passed']} stage checks "
                f"passed, {self.counts['failed']} failed, {self.counts['skipped']} skipped"
                + (f" in {seconds:.1f} s" if seconds is not None else "") + f". Written {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>"
                f"<table><tr><th>stage</th><th>passed</th><th>failed</th><th>skipped</th></tr>{stages}</table>"
                + "".join(f"<h2>{title} <span class={r.status}>{r.status.upper()}</span></h2><pre>"
                          f"{html.escape(r.message())}</pre>" for title, r in (("Triton repository check", repository),
                                                                               ("Degenerate-output check", degenerate))
                          if r is not None)
                + "<table><tr><th>image</th><th>verdict</th><th>first divergence</th><th>likely cause</th>"
                "<th>model: deployed vs reference top-1</th><th>Triton vs reference top-1</th></tr>"
                + "".join(self.rows) + "</table>" + "".join(failed + passed))
        page = (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(self.title)}</title>"
                f"<style>{_CSS}{IMAGE_CSS}</style></head><body>{body}</body></html>")
        from parity.outputs import publish

        (self.folder / "index.html").write_text(page, encoding="utf-8")
        (self.folder / self.MARKER).write_text("Written by parity; replaced whole by the next report written here.\n")
        publish(self.folder, self.target)
        return self.target / "index.html"

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _answer(r) -> str:
    if r.status == "skipped":
        return "skipped"
    if r.dali_top1 < 0:
        problem = re.sub(r"in ensemble '[^']*', \[request id: [^\]]*\] ", "", r.problems[0]) if r.problems else ""
        return f"{r.status}: {problem[:140]}"
    return f"{r.dali_top1} (p={r.dali_prob:.3f}) vs {r.ref_top1} (p={r.ref_prob:.3f})"
