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

import numpy as np

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d1d1f;background:#fafafa}
h1{font-size:22px}h2{font-size:17px;margin-top:32px;border-top:1px solid #ddd;padding-top:16px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
.passed{color:#16794a;font-weight:600}.failed,.error{color:#c62828;font-weight:600}.skipped{color:#777}
.row{display:flex;gap:14px;flex-wrap:wrap;align-items:flex-start;margin:6px 0 14px}
figure{margin:0}figure img{max-width:300px;max-height:300px;border:1px solid #bbb;image-rendering:pixelated}
figcaption{font-size:12px;color:#555;max-width:300px}figure.wide img{max-width:960px;max-height:none}pre{background:#fff;border:1px solid #ddd;padding:8px;
overflow-x:auto;font-size:12px}.cause{background:#fff4e5;border-left:4px solid #f0a020;padding:6px 10px}
"""


def _to_display(array: np.ndarray, layout: str, channels: str | None, pixels: bool):
    """HWC uint8 RGB for a compared tensor, and how its values were mapped."""
    hwc = np.transpose(array, (1, 2, 0)) if layout == "CHW" else array
    hwc = hwc.astype(np.float64)
    if channels == "BGR" and hwc.shape[-1] == 3:
        hwc = hwc[..., ::-1]
    if pixels and hwc.min() >= -0.5 and hwc.max() <= 255.5:
        note = "values as pixels"
    else:
        lo, hi = float(hwc.min()), float(hwc.max())
        hwc = (hwc - lo) / (hi - lo or 1.0) * 255.0
        note = f"scaled for display from {lo:.3g}..{hi:.3g}"
    if hwc.shape[-1] == 1:
        hwc = np.repeat(hwc, 3, axis=-1)
    elif channels in ("BGR", "RGB"):  # why a BGR stage and the RGB one after it look alike
        note = f"{channels} data{' drawn as RGB' if channels == 'BGR' else ''}, {note}"
    return np.clip(np.round(hwc), 0, 255).astype(np.uint8), note


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
        self.sections.append((failed, self._section(result, anchor)))
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

    def _section(self, result, anchor: str) -> str:
        parts = [f"<h2 id='{anchor}'>{html.escape(result.image)} <span class="
                 f"{'failed' if not result.passed else 'passed'}>{'FAILED' if not result.passed else 'PASSED'}"
                 f"</span></h2><p>{html.escape(str(result.path))}</p>"]
        parts.append("<table><tr><th>stage</th><th>status</th><th>max abs</th><th>mean abs</th>"
                     "<th>mismatched</th><th>DALI operator</th></tr>")
        for r in result.stages:
            parts.append(f"<tr><td>{html.escape(r.stage)}</td><td class={r.status}>{r.status}</td>"
                         f"<td>{r.max_abs:.4g}</td><td>{r.mean_abs:.4g}</td>"
                         f"<td>{100 * r.mismatch_fraction:.2f}%</td><td><code>{html.escape(r.dali_op)}</code></td></tr>")
        parts.append("</table>")
        for answer in (result.model, result.triton):
            if answer is not None:
                parts.append(f"<h3>{html.escape(answer.backend)} <span class={answer.status}>{answer.status}</span>"
                             f"</h3><pre>{html.escape(answer.message())}</pre>")
        for r in result.stages:
            view = result.views.get(r.stage)
            if view is None:
                continue
            parts.append(f"<h3>{html.escape(r.stage)} <span class={r.status}>{r.status}</span> "
                         f"<small>vs reference {html.escape(r.reference.split(' (')[0])}</small></h3>")
            parts.append(self._pictures(result.image, r, view))
            if r.status == "failed":
                if r.diagnosis:
                    parts.append(f"<div class=cause>{html.escape(str(r.diagnosis))}</div>")
                parts.append(f"<details><summary>full message</summary><pre>{html.escape(r.message())}</pre>"
                             "</details>")
            if r.stage == "model_input":
                parts.append(self._histograms(result.image, view))
        return "\n".join(parts)

    def _save(self, name: str, rgb: np.ndarray) -> str:
        from PIL import Image

        Image.fromarray(rgb).save(self.folder / name, compress_level=6)
        return name

    def _pictures(self, image: str, r, view) -> str:
        stem = _safe(f"{image}-{r.stage}")
        same = view.dali.shape == view.reference.shape
        figures = []
        for side, name, array in (("ref", "reference", view.reference), ("dali", "DALI", view.dali)):
            rgb, note = _to_display(array, view.layout, view.channels, view.pixels)
            caption = name if same else f"{name} {array.shape}"
            figures.append(_figure(self._save(f"{stem}-{side}.png", rgb), caption, note))
        if not same:
            figures.append("<figure><figcaption>shapes differ: no difference map</figcaption></figure>")
        else:
            diff = np.abs(view.dali.astype(np.float64) - view.reference.astype(np.float64))
            diff = diff.max(axis=0 if view.layout == "CHW" else -1)
            heat = self._heatmap(stem + "-diff.png", diff, r.tolerance.atol if r.tolerance else None,
                                 r.tolerance.unit if r.tolerance else "")
            figures.append(_figure(heat, "|DALI - reference| (max over channels)",
                                   f"max {diff.max():.4g}, mean {diff.mean():.4g}"))
        return f"<div class=row>{''.join(figures)}</div>"

    def _heatmap(self, name: str, diff: np.ndarray, atol, unit: str) -> str:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        vmax = max(float(diff.max()), float(atol or 0) * 2, 1e-12)
        fig = Figure(figsize=(4.2, 4.2 * diff.shape[0] / diff.shape[1] + 0.4), dpi=80)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        shown = ax.imshow(diff, cmap="inferno", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_axis_off()
        bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        bar.set_label(unit or "difference")
        if atol:
            bar.ax.axhline(atol, color="cyan", linewidth=2)
            bar.ax.text(1.6, atol, "atol", color="black", fontsize=8, transform=bar.ax.get_yaxis_transform())
        fig.tight_layout()
        fig.savefig(self.folder / name)
        return name

    def _histograms(self, image: str, view) -> str:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        if view.dali.shape != view.reference.shape or view.layout != "CHW":
            return ""
        channels = view.reference.shape[0]
        fig = Figure(figsize=(3.2 * channels, 2.6), dpi=80)
        FigureCanvasAgg(fig)
        names = list(view.channels or "RGB") if channels == 3 else [str(c) for c in range(channels)]
        for c in range(channels):
            ax = fig.add_subplot(1, channels, c + 1)
            ax.hist(view.reference[c].ravel(), bins=64, alpha=0.6, label="reference", color="#1565c0")
            ax.hist(view.dali[c].ravel(), bins=64, alpha=0.6, label="DALI", color="#e65100")
            ax.set_title(f"channel {c} ({names[c]})", fontsize=9)
            ax.tick_params(labelsize=7)
        fig.axes[0].legend(fontsize=7)
        fig.tight_layout()
        name = _safe(f"{image}-model_input-hist.png")
        fig.savefig(self.folder / name)
        return _figure(name, "per-channel histograms of the model input", "DALI (orange) vs reference (blue)",
                       css="wide")

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
                f"<style>{_CSS}</style></head><body>{body}</body></html>")
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


def _figure(src: str, caption: str, note: str, css: str = "") -> str:
    return (f"<figure class='{css}'><img src='{html.escape(src)}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)}<br>{html.escape(note)}</figcaption></figure>")


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
