"""The HTML report: per image, each stage side by side (reference, DALI, difference heatmap with its
colour scale, mask, zoom), histograms, the diagnosis; one self-contained folder (index.html, one style sheet,
one page and two picture files per drawn image) that a CI system can archive.

Pictures are drawn where an image is computed (this process, or a pytest-xdist worker writing into the
same folder), each image's section into its own page in ``sections/``, which opens alone: it resolves the
style sheet and pictures from the report folder (``<base href="../">``), and its links lead into
``index.html``. ``index.html`` is written at the end from the run's image records, streamed, with the
sections' bodies read back from disk. No tensor and no per-image text is held, and the sections of CI shards
are combined by ``parity merge`` the same way.
"""

from __future__ import annotations

import html
import re
import shutil
import time
from pathlib import Path

from parity.outputs.html_image import IMAGE_CSS, draw_image_section, picture_files, safe_name
from parity.results.summary import titled_checks

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d1d1f;background:#fafafa}
h1{font-size:22px}h2{font-size:17px;margin-top:32px;border-top:1px solid #ddd;padding-top:16px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
.passed{color:#16794a;font-weight:600}.failed,.error{color:#c62828;font-weight:600}.skipped{color:#777}
pre{background:#fff;border:1px solid #ddd;padding:8px;overflow-x:auto;font-size:12px}
"""
MARKER = "parity-report.txt"
SECTIONS = "sections"  # one page per drawn image: '<f|p>-<image>.html' (failures sort first)
STYLE = "report.css"
_BODY, _END = "<body>", "</body></html>"


class ImagePictures:
    """Draws image sections into a report folder, for at most ``max_images`` images, failures first."""

    def __init__(self, folder: Path, max_images: int = 50):
        from parity.extras import require

        require("matplotlib", "report", "the HTML report")
        self.folder = folder
        (folder / SECTIONS).mkdir(parents=True, exist_ok=True)
        self.max_images = max_images
        self.drawn: list[Path] = []  # section files, in the order drawn
        self.failed_images = 0

    def wants_views(self, image: str) -> bool:
        """Ask for tensors while there is room for pictures (a failure may still replace a pass later)."""
        return len(self.drawn) < self.max_images or self.failed_images < self.max_images

    def add(self, result) -> None:
        failed = not result.passed
        self.failed_images += failed
        if not result.views or not self._room_for(failed):
            return
        anchor = anchor_of(result.image)
        section = self.folder / SECTIONS / f"{'f' if failed else 'p'}-{safe_name(result.image)}.html"
        page = (f"<!doctype html><html><head><meta charset=utf-8><base href='../'><title>{html.escape(result.image)}"
                f"</title><link rel=stylesheet href={STYLE}></head>{_BODY}"
                f"{draw_image_section(self.folder, result, anchor)}{_END}")
        # a file name that is not UTF-8 (Python's surrogate escapes) is shown spelled, never a crash
        section.write_text(page, encoding="utf-8", errors="backslashreplace")
        self.drawn.append(section)

    def _room_for(self, failed: bool) -> bool:
        if len(self.drawn) < self.max_images:
            return True
        # full: a failure replaces the most recent passing picture (its section and picture files)
        for section in reversed(self.drawn):
            if failed and section.name.startswith("p-"):
                section.unlink()
                for name in picture_files(section_image(section)):
                    (self.folder / name).unlink(missing_ok=True)
                self.drawn.remove(section)
                return True
        return False


class HtmlReport(ImagePictures):
    """The report of one run: built in a new folder beside ``folder`` and renamed into place by
    :meth:`write` (no stale pictures, no two runs mixed); :meth:`discard` removes it when the run fails first."""

    def __init__(self, folder, *, title: str, max_images: int = 50):
        from parity.outputs.files import fresh_folder

        self.target = Path(folder).resolve()
        self.title = title
        super().__init__(fresh_folder(self.target, MARKER, "--report"), max_images)

    def write(self, records, summary, *, seconds: float | None = None, degenerate=None, repository=None, checks=None,
              gpu=None) -> Path:
        write_index(self.folder, self.title, records, summary, seconds=seconds, degenerate=degenerate,
                    repository=repository, checks=checks, gpu=gpu)
        from parity.outputs.files import publish

        (self.folder / MARKER).write_text("Written by parity; replaced whole by the next report written here.\n")
        publish(self.folder, self.target)
        return self.target / "index.html"

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def write_index(folder: Path, title: str, records, summary, *, seconds=None, degenerate=None, repository=None,
                checks=None, gpu=None) -> None:
    """``index.html`` from image records (streamed) and the sections drawn into ``folder``; ``checks`` are the
    whole-run checks by item name, ``gpu`` what the verdict covers on the GPU."""
    runs = [(title[0].upper() + title[1:], r) for title, r in titled_checks(repository, checks, degenerate)]
    verdict = "FAILED" if summary.failed_images or any(r is not None and not r for _, r in runs) else "PASSED"
    counts = {s: sum(c[s] for c in summary.stages.values()) for s in ("passed", "failed", "skipped")}
    stages = "".join(f"<tr><td>{html.escape(stage)}</td><td class=passed>{c['passed']}</td><td class=failed>"
                     f"{c['failed']}</td><td class=skipped>{c['skipped']}</td></tr>" for stage, c in summary.stages.items())
    drawn = {section_image(p): p for p in sorted((folder / SECTIONS).glob("*.html"))}
    (folder / STYLE).write_text(_CSS + IMAGE_CSS, encoding="utf-8")
    with open(folder / "index.html", "w", encoding="utf-8", errors="backslashreplace") as page:
        page.write(f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
                   f"<link rel=stylesheet href={STYLE}></head>{_BODY}"
                   f"<h1>{html.escape(title)} <span class={verdict.lower()}>{verdict}</span></h1>"
                   f"<p>{summary.images} images, {summary.failed_images} failing. {counts['passed']} stage checks "
                   f"passed, {counts['failed']} failed, {counts['skipped']} skipped"
                   + (f" in {seconds:.1f} s" if seconds is not None else "")
                   + f". Written {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>"
                   f"<table><tr><th>stage</th><th>passed</th><th>failed</th><th>skipped</th></tr>{stages}</table>")
        if summary.diagnoses:
            page.write("<h2>Diagnoses</h2><ul>" + "".join(f"<li>{html.escape(line)}</li>"
                                                         for line in summary.diagnosis_lines()) + "</ul>")
        if gpu is not None and gpu.lines():
            page.write("<h2>What this CPU verdict covers on the GPU</h2><pre>" + html.escape("\n".join(gpu.lines()))
                       + "</pre>")
        for name, r in runs:
            if r is not None and r.status != "passed":
                page.write(f"<h2>{name} <span class={r.status}>{r.status.upper()}</span></h2><pre>"
                           f"{html.escape(r.message())}</pre>")
        page.write("<table><tr><th>image</th><th>verdict</th><th>first divergence</th><th>likely cause</th>"
                   "<th>model: deployed vs reference top-1</th><th>Triton vs reference top-1</th></tr>")
        for record in records:
            page.write(_row(record, safe_name(record["id"]) in drawn))
        page.write("</table>")
        for section in sorted(drawn.values(), key=lambda p: p.name):  # failures ('f-') first
            text = section.read_text(encoding="utf-8")
            page.write(text[text.index(_BODY) + len(_BODY):text.rindex(_END)])
        page.write(_END)


def section_image(section: Path) -> str:
    """The (safe) image name of a section page ``<f|p>-<image>.html``."""
    return section.stem[2:]


def anchor_of(image: str) -> str:
    return f"img-{safe_name(image)}"


def _row(record: dict, drawn: bool) -> str:
    first = next((s for s in record["stages"] if s["status"] == "failed"), None)
    status = "error" if record["error"] else "passed" if record["passed"] else "failed"
    kinds = dict.fromkeys(c["kind"] for s in record["stages"] if s["status"] == "failed" for c in s["causes"])
    cause = record["error"] or ", ".join(kinds)
    name = html.escape(record["id"])
    link = f"<a href='#{anchor_of(record['id'])}'>{name}</a>" if drawn else name
    answers = "".join(f"<td class={a['status']}>{html.escape(_answer(a))}</td>" if a is not None else "<td>-</td>"
                      for a in (record.get("model"), record.get("triton")))
    return (f"<tr><td>{link}</td>"
            f"<td class={status}>{status.upper()}</td><td>{html.escape(first['stage']) if first else '-'}</td>"
            f"<td>{html.escape(cause)}</td>{answers}</tr>")


def _answer(a: dict) -> str:
    if a["status"] == "skipped":
        return "skipped"
    if a["top1"] < 0:
        problem = re.sub(r"in ensemble '[^']*', \[request id: [^\]]*\] ", "", a["problems"][0]) if a["problems"] else ""
        return f"{a['status']}: {problem[:140]}"
    return f"{a['top1']} (p={a['prob']:.3f}) vs {a['reference_top1']} (p={a['reference_prob']:.3f})"

