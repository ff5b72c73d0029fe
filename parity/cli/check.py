"""``parity check``: the gate. Result files are written whatever happens, a usage error included."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import time

from parity.cli.console import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, paint


def run(args) -> int:
    """The gate; result files are written whatever happens, a usage error included."""
    from parity.errors import ParityUsageError
    from parity.outputs.files import check_writable, refuse_inputs
    from parity.run.interrupt import Terminated
    from parity.run.recorder import RunRecorder

    for path, flag in ((args.junit_xml, "--junit-xml"), (args.json, "--json")):
        if path is not None:
            check_writable(path.resolve(), flag)  # before any work, and before the files are promised
    refuse_inputs(args, [args.config])
    start = time.perf_counter()
    state: dict = {"degenerate": None, "reference": None, "repository": None, "shard": None, "checks": {},
                   "gpu": None}
    code, error = EXIT_INTERNAL, None
    with RunRecorder() as recorder:
        try:
            code = _run_check(args, state, recorder)
        except ParityUsageError as exc:
            code, error = EXIT_USAGE, f"parity: error: {exc}"
            print(error, file=sys.stderr)
        except BaseException as exc:  # interrupted, or a bug in parity: recorded, then handled by main()
            code = 128 + exc.signum if isinstance(exc, Terminated) else (
                EXIT_INTERRUPTED if isinstance(exc, KeyboardInterrupt) else EXIT_INTERNAL)
            error = f"parity: {type(exc).__name__}: {exc}"
            raise
        finally:
            _write_results(args, state, recorder, time.perf_counter() - start, code, error)
    return code


def _write_results(args, state: dict, recorder, seconds: float, code: int, error: str | None) -> None:
    from parity.outputs.junit import DEGENERATE, REPOSITORY, cases, config_classname, write_junit

    checks = ((REPOSITORY, state["repository"]), *state["checks"].items(), (DEGENERATE, state["degenerate"]))
    gpu = state["gpu"]
    if args.junit_xml:
        write_junit(args.junit_xml, cases(config_classname(args.config), recorder.records(), checks=checks,
                                          margins=gpu.margin_of if gpu else None), seconds=seconds, error=error)
    if args.json:
        from parity.results.records import write_json

        write_json(args.json, config=str(args.config), reference=state["reference"], records=recorder.records(),
                   degenerate=state["degenerate"], seconds=seconds, exit_code=code, error=error,
                   repository=state["repository"], shard=state["shard"] and str(state["shard"]),
                   report=state.get("report"), checks=state["checks"], gpu=gpu,
                   degenerate_share=state.get("degenerate_share"), run=state.get("run"))


def _run_check(args, state: dict, recorder) -> int:
    start = time.perf_counter()
    report = None
    if args.report:
        from parity.outputs.html import HtmlReport

        report = HtmlReport(args.report, title=f"parity: {args.config.name}", max_images=args.report_images)
    try:
        return _judge(args, state, recorder, report, start)
    except BaseException:
        if report is not None:
            report.discard()
        raise


def _judge(args, state: dict, recorder, report, start: float) -> int:
    from parity.config.load import load_config, with_tolerance_overrides
    from parity.outputs.files import config_inputs, refuse_inputs
    from parity.outputs.junit import DETERMINISM, GPU_RISK, GPU_VS_CPU
    from parity.results.records import image_record, run_identity
    from parity.run.harness import Harness
    from parity.run.shard import Shard

    shard = state["shard"] = Shard.parse(args.shard, "--shard")
    config = load_config(args.config, snapshot=args.reference)
    refuse_inputs(args, config_inputs(config))  # before any work: no result file over an image or model
    harness = Harness(config)  # checks the config file's own tolerance labels
    state["run"] = run_identity(args.config, harness.image_ids)  # what `parity merge` checks shards against
    config = harness.config = with_tolerance_overrides(config, harness.stage_labels, atol=args.atol, rtol=args.rtol,
                                                       max_mismatch=args.max_mismatch)
    state["reference"] = harness.reference.source
    state["degenerate_share"] = config.model["degenerate_share"] if config.model else None
    repository = state["repository"] = harness.repository
    state["gpu"] = harness.gpu
    checks = state["checks"]
    checks[GPU_RISK] = harness.gpu_lint(strict=args.strict_gpu)  # before any image: the graph alone
    checks[GPU_VS_CPU] = harness.gpu_vs_cpu()  # skipped where no GPU is present
    checks[DETERMINISM] = harness.determinism()
    for r in (repository, *checks.values()):
        if r is not None and r.status in ("failed", "warned") and not args.quiet:
            print(paint(r.message()), end="\n\n")
    labels = tuple(harness.stage_labels + ["model"] * bool(harness.model) + ["triton"] * bool(harness.config.triton))
    images = [p for p in config.images if shard is None or shard.selects(p)]
    if shard is not None:
        print(f"shard {shard}: {len(images)} of {len(config.images)} images (assigned by content hash)")
    shown: dict = {}  # (stage, causes) printed in full -> its image: the rest say "same diagnosis as"
    with _progress(len(images), quiet=args.quiet) as advance:
        took = time.perf_counter()
        for image in harness.run(images, keep_views=report.wants_views if report else None):
            now = time.perf_counter()
            recorder.add(image_record(image, seconds=now - took, labels=labels))
            took = now
            if report:
                report.add(image)
                image.views.clear()  # pictures are written; keep only the numbers
            advance(image)
            if not args.quiet:
                _print_failure(image, shown, args.verbose)
    seconds = time.perf_counter() - start
    summary = recorder.summary
    for image, error in summary.errors:
        print(f"parity: error: {image}: {error}", file=sys.stderr)
    degenerate = state["degenerate"] = harness.degenerate()
    for line in summary.lines(repository=repository, degenerate=degenerate, checks=checks) + harness.gpu.lines():
        print(paint(line))
    if degenerate is not None and degenerate.status == "failed" and not args.quiet:
        print(degenerate.message(), end="\n\n")
    print(paint(f"{summary.verdict_line} ({seconds:.1f} s; reference: {harness.reference.source}"
                 + (f"; shard {shard}" if shard else "") + ")"))
    if report:
        state["report"] = report.target
        print(f"HTML report: {report.write(recorder.records(), summary, seconds=seconds, degenerate=degenerate, repository=repository, checks=checks, gpu=harness.gpu)}")
    if summary.errors:
        return EXIT_USAGE
    judged = [degenerate, repository, *checks.values()]
    return EXIT_MISMATCH if summary.failed_images or any(r is not None and not r for r in judged) else EXIT_OK


def _print_failure(image, shown: dict, verbose: int) -> None:
    """The first failure of an image: in full for a diagnosis not seen yet (-vv: always), else one line."""
    failure = image.first_failure
    if failure is None:
        return
    key = (failure.stage, failure.diagnosis.kinds if failure.diagnosis else ())
    if key in shown and verbose < 2:
        print(paint(f"{failure.headline} (same diagnosis as {shown[key]})"), end="\n\n")
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
