"""``parity check``: the gate. Result files are written whatever happens, a usage error included."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import time
from pathlib import Path

from parity.cli.console import paint
from parity.results.exit import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE


def run(args) -> int:
    """The gate; result files are written whatever happens, a usage error included. They are written first
    as an unfinished run's (exit code 3), so a run ended from outside (``os._exit`` in a pipeline module, a
    kill) never leaves a file that reads as a pass."""
    from parity.errors import ParityUsageError
    from parity.outputs.files import check_writable, refuse_inputs
    from parity.run.interrupt import Terminated

    for path, flag in ((args.junit_xml, "--junit-xml"), (args.json, "--json")):
        if path is not None:
            check_writable(path.resolve(), flag)  # before any work, and before the files are promised
    refuse_inputs(args, [args.config])
    start = time.perf_counter()
    outcome = _Outcome()
    _write_results(_unfinished_targets(args), outcome, 0.0, EXIT_INTERNAL, UNFINISHED)
    code, error = EXIT_INTERNAL, None
    try:
        code = _run_check(args, outcome)
    except ParityUsageError as exc:
        code, error = EXIT_USAGE, f"parity: error: {exc}"
        print(error, file=sys.stderr)
    except BaseException as exc:  # interrupted, or a bug in parity: recorded, then handled by main()
        code = 128 + exc.signum if isinstance(exc, Terminated) else (
            EXIT_INTERRUPTED if isinstance(exc, KeyboardInterrupt) else EXIT_INTERNAL)
        error = f"parity: {type(exc).__name__}: {exc}"
        raise
    finally:
        _write_results(args, outcome, time.perf_counter() - start, code, error)
        outcome.close()
    return code


UNFINISHED = ("parity: the run did not finish: it was stopped before it wrote its results (this file is written "
              "first and replaced at the end)")


def _unfinished_targets(args):
    """``args`` with only the result files that may be written before the config is read: new files, or an
    earlier run's result files. A file that exists otherwise may be an input (an image, a model) that is only
    known once the config is loaded and refused then; it is never written over before."""
    import argparse

    def ours(path: Path | None) -> Path | None:
        if path is None or not path.exists():
            return path
        try:
            with open(path, "rb") as existing:
                head = existing.read(512)
        except OSError:
            return None
        return path if b'"format": "parity-result"' in head or b"<testsuites>" in head else None

    return argparse.Namespace(**{**vars(args), "json": ours(args.json), "junit_xml": ours(args.junit_xml)})


def _identity_properties(identity: dict | None) -> tuple:
    """The reference's identity as JUnit suite properties: its library and source, timm's resolved data config
    and use_test_size, and the library versions."""
    if not identity:
        return ()
    listed = [("reference.kind", identity.get("kind")), ("reference.source", identity.get("source"))]
    listed += [(f"reference.{k}", json.dumps(identity[k], default=str)) for k in ("data_config", "use_test_size", "preset")
               if k in identity]
    listed += [(f"version.{name}", version) for name, version in identity.get("versions", {}).items()]
    return tuple(listed)


class _Outcome:
    """What the result files are written from: the run's results once the run is loaded."""

    def __init__(self):
        self.results = None  # RunResults, once the config is loaded
        self.reference: str | None = None
        self.shard = None
        self.report = None  # the report folder, once written
        self.run: dict | None = None  # the run's identity (config sha256, image ids), for `parity merge`
        self.identity: dict | None = None  # the reference's: library, source, resolved config, versions

    def close(self) -> None:
        if self.results is not None:
            self.results.close()


def _write_results(args, outcome: _Outcome, seconds: float, code: int, error: str | None) -> None:
    from parity.errors import ParityUsageError
    from parity.outputs.junit import cases, config_classname, write_junit
    from parity.results.verdict import DEGENERATE, REPOSITORY

    results = outcome.results
    records = results.records() if results is not None else ()
    checks = {} if results is None else results.checks
    repository = None if results is None else results.repository
    degenerate = None if results is None else results.degenerate
    gpu = None if results is None else results.gpu
    unwritten = []  # each file that can be written is, when the other cannot be (a full disk)
    if args.junit_xml:
        try:
            write_junit(args.junit_xml, cases(config_classname(args.config), records, checks=(
                (REPOSITORY, repository), *checks.items(), (DEGENERATE, degenerate)),
                margins=gpu.margin_of if gpu else None), seconds=seconds, error=error,
                suite_properties=_identity_properties(outcome.identity))
        except ParityUsageError as exc:
            unwritten.append(exc)
    if args.json:
        from parity.results.records import write_json

        try:
            write_json(args.json, config=str(args.config), reference=outcome.reference,
                       records=results.records() if results is not None else (), degenerate=degenerate,
                       seconds=seconds, exit_code=code, error=error, repository=repository,
                       shard=outcome.shard and str(outcome.shard), report=outcome.report, checks=checks, gpu=gpu,
                       degenerate_share=None if results is None else results.degenerate_share, run=outcome.run,
                       reference_identity=outcome.identity)
        except ParityUsageError as exc:
            unwritten.append(exc)
    if unwritten:
        raise unwritten[0]


def _run_check(args, outcome: _Outcome) -> int:
    report = None
    if args.report:
        from parity.outputs.html import HtmlReport

        report = HtmlReport(args.report, title=f"parity: {args.config.name}", max_images=args.report_images)
    try:
        return _judge(args, outcome, report)
    except BaseException:
        if report is not None:
            report.discard()
        raise


def _judge(args, outcome: _Outcome, report) -> int:
    from parity.config.load import load_config, with_tolerance_overrides
    from parity.outputs.files import config_inputs, refuse_inputs
    from parity.results.records import run_identity
    from parity.run.run import Run
    from parity.run.shard import Shard

    start = time.perf_counter()
    shard = outcome.shard = Shard.parse(args.shard, "--shard")
    config = load_config(args.config, snapshot=args.reference)
    _same_shard(config.snapshot, shard)
    refuse_inputs(args, config_inputs(config))  # before any work: no result file over an image or model
    run = Run(config, strict_gpu=args.strict_gpu, shard=shard)  # checks the config file's own tolerance labels
    outcome.results = results = run.results
    outcome.run = run_identity(args.config, run.harness.image_ids)  # what `parity merge` checks shards against
    run.harness.config = run.config = with_tolerance_overrides(config, run.harness.stage_labels, atol=args.atol,
                                                               rtol=args.rtol, max_mismatch=args.max_mismatch)
    outcome.reference = run.harness.reference.source
    outcome.identity = run.harness.reference.identity()
    images = run.images
    if shard is not None:
        print(f"shard {shard}: {len(images)} of {len(config.images)} images (assigned by content hash)")
    shown: dict = {}  # (stage, causes) printed in full -> its image: the rest say "same diagnosis as"

    def checked(checks):
        for r in checks:
            if r.status in ("failed", "warned") and not args.quiet:
                print(paint(r.message()), end="\n\n")

    with _progress(len(images), quiet=args.quiet) as advance:
        def shown_image(image):
            if report:
                report.add(image)
                image.views.clear()  # pictures are written; keep only the numbers
            advance(image)
            if not args.quiet:
                _print_failure(image, shown, args.verbose)

        run.execute(keep_views=report.wants_views if report else None, on_checks=checked, on_image=shown_image)
    seconds = time.perf_counter() - start
    for image, error in results.summary.errors:
        print(f"parity: error: {image}: {error}", file=sys.stderr)
    for line in results.lines():
        print(paint(line))
    degenerate = results.degenerate
    if degenerate is not None and degenerate.status == "failed" and not args.quiet:
        print(degenerate.message(), end="\n\n")
    print(paint(f"{results.summary.verdict_line} ({seconds:.1f} s; reference: {outcome.reference}"
                + (f"; shard {shard}" if shard else "") + ")"))
    if report:
        outcome.report = report.target
        written = report.write(results.records(), results.summary, seconds=seconds, degenerate=degenerate,
                               repository=results.repository, checks=results.checks, gpu=results.gpu)
        print(f"HTML report: {written}")
    return results.exit_code()


def _same_shard(snapshot: Path | None, shard) -> None:
    """Refuse a check of other images than those a sharded snapshot holds (before anything loads)."""
    from parity.errors import ParitySnapshotError
    from parity.reference.snapshot import recorded_shard

    recorded = recorded_shard(snapshot) if snapshot is not None else None
    if recorded is not None and recorded != (shard and str(shard)):
        raise ParitySnapshotError(f"{snapshot}: holds shard {recorded} of the images only (`parity snapshot --shard "
                                  f"{recorded}`): check it with --shard {recorded}"
                                  + (f", not {shard}" if shard else ""))


def _print_failure(image, shown: dict, verbose: int) -> None:
    """The first failure of an image: in full for a diagnosis not seen yet (-vv: always), else one line."""
    failure = image.first_failure
    if failure is None:
        return
    key = (failure.stage, failure.diagnosis.kinds if failure.diagnosis else ())
    if key in shown and verbose < 2:  # no kinds: not explained, which is no diagnosis two images can share
        said = f"same diagnosis as {shown[key]}" if key[1] else "not explained either; the full message with -vv"
        print(paint(f"{failure.headline} ({said})"), end="\n\n")
        return
    shown.setdefault(key, image.image)
    text = failure.message() if verbose else failure.short_message()
    print(paint(text), end="\n\n")


@contextlib.contextmanager
def _progress(total: int, *, quiet: bool):
    """A progress bar on a terminal (rich), one line per image otherwise; yields advance(image_result)."""
    if quiet:
        yield lambda image: None
        return
    if sys.stderr.isatty() and importlib.util.find_spec("rich") is not None:
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
        """One line per image that reflects all of its checks: stages, model and Triton."""
        failure = image.first_failure
        answers = [r for r in (image.model, image.triton) if r is not None and r.status == "failed"]
        if image.error:
            status, detail = "ERROR", image.error
        elif image.passed:
            status, detail = "PASSED", "all checks match"
        elif failure is not None:
            causes = f" ({', '.join(image.cause_kinds)})" if image.cause_kinds else ""
            status, detail = "FAILED", f"first divergence at {failure.stage}{causes}"
        else:
            status, detail = "FAILED", "stages match; " + "; ".join(
                f"{'triton' if r.backend.startswith('triton') else 'model'}: {r.problems[0] if r.problems else 'failed'}"
                for r in answers)
        print(f"{status} | {image.image} | {detail}", flush=True)

    yield line
