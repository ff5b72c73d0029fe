"""``parity check cfg.py``: the pre-deploy gate. Exit 0 when every stage matches, 1 on a parity
failure, 2 on a usage or configuration error; ``--junit-xml`` writes a report CI systems read."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parity", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="Compare the DALI pipeline with the MMPretrain reference")
    check.add_argument("config", type=Path, help="Parity config file")
    check.add_argument("--junit-xml", type=Path, metavar="FILE", help="Write JUnit XML results to FILE")
    check.add_argument("--report", type=Path, metavar="DIR", help="Write the HTML report into DIR")
    check.add_argument("--report-images", type=int, default=50, metavar="N",
                       help="Draw pictures for at most N images, failures first (default 50)")
    check.add_argument("-q", "--quiet", action="store_true", help="Print only the summary table")
    return parser


class _ModelCase:
    """A model-stage result seen as a JUnit test case."""

    def __init__(self, result, image=None, stage="model"):
        self.result, self.status, self.stage = result, result.status, stage
        self.image = image or result.image
        self.summary = getattr(result, "summary", None) or result.message().split("\n")[0]
        self.skip_reason = getattr(result, "skip_reason", "") or "; ".join(getattr(result, "findings", ()))

    def message(self):
        return self.result.message()


def _junit(results, path: Path, seconds: float, degenerate=None) -> None:
    flat = [r for image in results for r in image.stages]
    flat += [_ModelCase(r, stage="triton" if r.backend.startswith("triton") else "model")
             for image in results for r in (image.model, image.triton) if r is not None]
    if degenerate is not None:
        flat.append(_ModelCase(degenerate, image="model", stage="degenerate"))
    suite = ET.Element("testsuite", name="parity", tests=str(len(flat)), time=f"{seconds:.3f}",
                       failures=str(sum(r.status == "failed" for r in flat)),
                       skipped=str(sum(r.status == "skipped" for r in flat)), errors="0")
    for r in flat:
        case = ET.SubElement(suite, "testcase", classname=f"parity.{r.image}", name=r.stage)
        if r.status == "failed":
            ET.SubElement(case, "failure", message=r.summary).text = r.message()
        elif r.status == "skipped":
            ET.SubElement(case, "skipped", message=r.skip_reason)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


@contextlib.contextmanager
def _progress(total: int, *, quiet: bool):
    """A progress bar on a terminal (rich), one line per image otherwise; yields advance(image_result)."""
    if quiet:
        yield lambda image: None
        return
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("parity"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[failed]} failing"),
                      TimeRemainingColumn(), transient=True) as bar:
            task = bar.add_task("check", total=total, failed=0)
            failed = 0

            def advance(image):
                nonlocal failed
                failed += not image.passed
                bar.update(task, advance=1, failed=failed)

            yield advance
        return

    def line(image):
        failure = image.first_failure
        status, detail = ("PASSED", "all stages match") if failure is None else (
            "FAILED", f"first divergence at {failure.stage}")
        print(f"{status} | {image.image} | {detail}", flush=True)

    yield line


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from parity.config import load_config
    from parity.engine import Harness
    from parity.errors import ParityUsageError
    from parity.report import summary_lines

    start = time.perf_counter()
    try:
        harness = Harness(load_config(args.config))
        report = None
        if args.report:
            from parity.html import HtmlReport

            report = HtmlReport(args.report, title=f"parity: {args.config.name}", max_images=args.report_images)
        results = []
        with _progress(len(harness.config.images), quiet=args.quiet) as advance:
            for image in harness.run(keep_views=report.wants_views if report else None):
                results.append(image)
                if report:
                    report.add(image)
                    image.views.clear()  # pictures are written; keep only the numbers
                advance(image)
    except ParityUsageError as exc:
        print(f"parity: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    seconds = time.perf_counter() - start
    failed = [image for image in results if not image.passed]
    if failed and not args.quiet:
        print()
        for image in failed:
            if image.first_failure is not None:
                print(image.first_failure.message(), end="\n\n")
    degenerate = harness.degenerate()
    flat: list = [r for image in results for r in image.stages]
    flat += [r for image in results for r in (image.model, image.triton) if r is not None]
    for line in summary_lines(flat + ([degenerate] if degenerate is not None else [])):
        print(line)
    if degenerate is not None and degenerate.status == "failed" and not args.quiet:
        print(degenerate.message(), end="\n\n")
    print(f"{len(results) - len(failed)} of {len(results)} images match ({seconds:.1f} s)")
    if args.junit_xml:
        _junit(results, args.junit_xml, seconds, degenerate)
    if report:
        print(f"HTML report: {report.write(seconds, degenerate)}")
    return EXIT_MISMATCH if failed or (degenerate is not None and not degenerate) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
