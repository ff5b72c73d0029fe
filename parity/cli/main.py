"""``parity check cfg.py``: the pre-deploy gate. Exit 0 when every stage matches, 1 on a parity
failure, 2 on a usage or configuration error, 3 on a bug in parity itself (130 when interrupted, 128+N
when stopped by signal N); ``--junit-xml`` and ``--json`` write result files CI systems read (on a usage
error too). ``parity snapshot`` records the reference for a check in another environment."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import shutil
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _parser() -> argparse.ArgumentParser:
    from parity import __version__

    parser = argparse.ArgumentParser(prog="parity", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"parity {__version__}")
    parser.add_argument("--debug", action="store_true", help="Show the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="Compare the DALI pipeline with the MMPretrain reference")
    check.add_argument("config", type=Path, help="Parity config file")
    check.add_argument("--reference", type=Path, metavar="DIR",
                       help="Compare against this snapshot (from `parity snapshot`) instead of running MMPretrain")
    check.add_argument("--junit-xml", type=Path, metavar="FILE", help="Write JUnit XML results to FILE")
    check.add_argument("--json", type=Path, metavar="FILE", help="Write every result as JSON to FILE (docs/json.md)")
    check.add_argument("--report", type=Path, metavar="DIR", help="Write the HTML report into DIR")
    check.add_argument("--report-images", type=int, default=50, metavar="N",
                       help="Draw pictures for at most N images, failures first (default 50)")
    check.add_argument("--shard", metavar="K/N", help="Check only shard K of N: images assigned by content hash, so "
                       "an image keeps its shard when others are added (combine the shards with `parity merge`)")
    for flag, what in (("--atol", "absolute tolerance"), ("--rtol", "relative tolerance"),
                       ("--max-mismatch", "share of elements allowed over the element threshold (0..1)")):
        check.add_argument(flag, action="append", default=[], metavar="[STAGE=]VALUE",
                           help=f"Override the {what}: for one stage (resize=2, model_input=0.05), or bare for "
                                "every pixel stage (the model input follows, scaled by the smallest std); repeatable")
    check.add_argument("--strict-gpu", action="store_true",
                       help="Fail on a GPU-only risk in the pipeline graph (docs/gpu.md); by default it is a warning")
    check.add_argument("-q", "--quiet", action="store_true", help="Print only the summary (no line per image, no full messages)")
    check.add_argument("-v", "--verbose", action="count", default=0,
                       help="-v: the full message of each distinct failure; -vv: of every failing image")
    snapshot = sub.add_parser("snapshot", help="Record the MMPretrain reference (every stage, and the reference "
                                               "network's logits) for `parity check --reference`")
    snapshot.add_argument("config", type=Path, help="Parity config file")
    snapshot.add_argument("--out", type=Path, metavar="DIR",
                          help="Snapshot folder to write (default: the config's reference.snapshot)")
    snapshot.add_argument("-q", "--quiet", action="store_true", help="Print only the last line")
    merge = sub.add_parser("merge", help="Combine the result files of N shards (`check --shard K/N --json`) into one "
                                         "verdict, JSON and JUnit XML")
    merge.add_argument("results", type=Path, nargs="+", metavar="RESULT.json", help="Result files of the shards")
    merge.add_argument("--json", type=Path, metavar="FILE", help="Write the combined result file")
    merge.add_argument("--junit-xml", type=Path, metavar="FILE", help="Write the combined JUnit XML")
    merge.add_argument("--report", type=Path, metavar="DIR", help="Write one HTML report from the shards' reports "
                       "(found where each result file says, relative to it)")
    suggest = sub.add_parser("suggest", help="Write the DALI pipeline matching an MMPretrain config, and verify it")
    suggest.add_argument("config", type=Path, help="Parity config (its reference) or an MMPretrain config")
    suggest.add_argument("--out", type=Path, default=Path("parity-suggested"), metavar="DIR",
                         help="Folder for the pipeline, its parity config and Triton files (default parity-suggested)")
    suggest.add_argument("--input-format", choices=("BGR", "RGB", "encoded"), default=None,
                         help="What the client sends (default: the parity config's, else BGR)")
    suggest.add_argument("--random-images", type=int, default=0, metavar="N",
                         help="Also verify on N generated images of random sizes (default 0; the verdict always "
                              "covers the samples, extreme sizes and large downscales)")
    suggest.add_argument("--triton", action="store_true", help="Also write model.dali and a dali-backend config.pbtxt")
    return parser


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


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from parity.errors import ParityUsageError
    from parity.run.interrupt import Terminated, signals_unwind

    run = {"check": _check, "snapshot": _snapshot, "suggest": _suggest, "merge": _merge}[args.command]
    try:
        with signals_unwind():
            return run(args)
    except ParityUsageError as exc:
        print(f"parity: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated as exc:
        print(f"parity: stopped by {exc}; the server and temporary files were cleaned up", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("parity: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"parity: internal error (a bug in parity, please report it): {type(exc).__name__}: {exc}"
              + ("" if args.debug else " (run with --debug for the traceback)"), file=sys.stderr)
        return EXIT_INTERNAL


def _check(args) -> int:
    """The gate; result files are written whatever happens, a usage error included."""
    from parity.errors import ParityUsageError
    from parity.outputs.files import check_writable
    from parity.run.interrupt import Terminated
    from parity.run.recorder import RunRecorder

    for path, flag in ((args.junit_xml, "--junit-xml"), (args.json, "--json")):
        if path is not None:
            check_writable(path.resolve(), flag)  # before any work, and before the files are promised
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
                   degenerate_share=state.get("degenerate_share"))


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
    from parity.outputs.junit import DETERMINISM, GPU_RISK, GPU_VS_CPU
    from parity.results.records import image_record
    from parity.run.harness import Harness
    from parity.run.shard import Shard

    shard = state["shard"] = Shard.parse(args.shard, "--shard")
    config = load_config(args.config, snapshot=args.reference)
    harness = Harness(config)  # checks the config file's own tolerance labels
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
            print(_paint(r.message()), end="\n\n")
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
        print(_paint(line))
    if degenerate is not None and degenerate.status == "failed" and not args.quiet:
        print(degenerate.message(), end="\n\n")
    print(_paint(f"{summary.verdict_line} ({seconds:.1f} s; reference: {harness.reference.source}"
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
        print(_paint(f"{failure.headline} (same diagnosis as {shown[key]})"), end="\n\n")
        return
    shown.setdefault(key, image.image)
    text = failure.message() if verbose else failure.short_message()
    print(_paint(text), end="\n\n")



def _paint(text: str) -> str:
    """PASSED green and FAILED red on a terminal, unless NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return text
    return re.sub(r"\b(PASSED|FAILED|ERROR)\b", lambda m: _COLOURS[m[1]] + m[1] + "\x1b[0m", text)


_COLOURS = {"PASSED": "\x1b[32m", "FAILED": "\x1b[31m", "ERROR": "\x1b[31m"}


def _merge(args) -> int:
    """One verdict from the result files of N shards: their images together, as one run would report them."""
    from parity.errors import ParityUsageError
    from parity.outputs.junit import cases, write_junit
    from parity.results.records import read_json, write_json
    from parity.run.recorder import RunRecorder

    documents = [read_json(path) for path in args.results]
    configs = {Path(d["config"]).name for d in documents}
    if len(configs) > 1:
        raise ParityUsageError(f"the result files are of different configs ({', '.join(sorted(configs))})")
    shards = [d.get("shard") for d in documents]
    counts = {s.split("/")[1] for s in shards if s}
    if None in shards or len(counts) != 1:
        raise ParityUsageError("expected the result files of one sharded run (`parity check --shard K/N --json`); "
                               f"their shards: {', '.join(str(s) for s in shards)}")
    twice = sorted({s for s in shards if shards.count(s) > 1})
    missing = sorted(set(range(1, int(counts.pop()) + 1)) - {int(s.split("/")[0]) for s in shards})
    if twice or missing:
        raise ParityUsageError(f"shards {', '.join(shards)}: " + "; ".join(
            ([f"shard {', '.join(twice)} given twice"] if twice else []) +
            ([f"shard(s) {missing} missing"] if missing else [])))
    seen: dict = {}
    with RunRecorder() as recorder:
        for path, document in zip(args.results, documents):
            for record in document["images"]:
                if record["id"] in seen:
                    raise ParityUsageError(f"{path}: image {record['id']!r} is also in {seen[record['id']]}: "
                                           "shards overlap (use the same N, each K once)")
                seen[record["id"]] = path
                recorder.add(record)
        degenerate, share = _merged_degenerate(documents)
        codes = [d["exit_code"] for d in documents]
        code = max(codes) if any(c not in (EXIT_OK, EXIT_MISMATCH) for c in codes) else max(codes, default=EXIT_OK)
        if degenerate is not None and degenerate.status == "failed":
            code = max(code, EXIT_MISMATCH)
        seconds = sum(d["seconds"] for d in documents)
        for line in recorder.summary.lines(degenerate=degenerate):
            print(_paint(line))
        failing = [f"{p}: {d['verdict']}" + (f" ({d['error']})" if d["error"] else "") for p, d in
                   zip(args.results, documents) if d["exit_code"] != EXIT_OK]
        for line in failing:
            print(line)
        print(_paint(f"{recorder.summary.verdict_line} ({len(documents)} result files, {seconds:.1f} s in all)"))
        base = documents[0]
        if args.json:
            write_json(args.json, config=base["config"], reference=base["reference"], records=recorder.records(),
                       degenerate=degenerate, seconds=seconds, exit_code=code, shards=shards, degenerate_share=share)
        if args.junit_xml:
            from parity.outputs.junit import DEGENERATE, config_classname

            write_junit(args.junit_xml, cases(config_classname(Path(base["config"])), recorder.records(),
                                              checks=[(DEGENERATE, degenerate)]), seconds=seconds)
        if args.report:
            print(f"HTML report: {_merge_reports(args, documents, recorder)}")
    return code


def _merged_degenerate(documents):
    """The degenerate-output check over every shard's answers (each shard judged only its own images), and
    the share it was judged at; (None, None) where the config has no model section."""
    from parity.results.summary import AnswerTally

    judged = [d["degenerate"] for d in documents if d.get("degenerate")]
    if not judged:
        return None, None
    share = judged[0].get("share") or 0.9  # result files that did not record it: model.degenerate_share's default
    tally = AnswerTally(share)
    for document in documents:
        for record in document["images"]:
            tally.add(record)
    return tally.verdict(), share


def _merge_reports(args, documents, recorder) -> Path:
    """One report: every shard's pictures and sections, and an index over every record."""
    from parity.errors import ParityUsageError
    from parity.outputs.files import fresh_folder, publish
    from parity.outputs.html import MARKER, SECTIONS, write_index

    target = args.report.resolve()
    folder = fresh_folder(target, MARKER, "--report")
    try:
        for path, document in zip(args.results, documents):
            shard = (path.resolve().parent / document["report"]).resolve() if document.get("report") else None
            if shard is None or not (shard / "index.html").is_file():
                raise ParityUsageError(f"{path}: its shard wrote no report" + (f" (looked in {shard})" if shard else
                                                                                 ": run the shards with --report DIR"))
            for item in shard.rglob("*"):
                if item.is_file() and item.name not in ("index.html", MARKER):
                    (folder / item.relative_to(shard)).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(item, folder / item.relative_to(shard))
        (folder / SECTIONS).mkdir(exist_ok=True)
        write_index(folder, f"parity: {Path(documents[0]['config']).name} ({len(documents)} shards)",
                    recorder.records(), recorder.summary)
        (folder / MARKER).write_text("Written by parity merge; replaced whole by the next report written here.\n")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    publish(folder, target)
    return target / "index.html"


def _snapshot(args) -> int:
    """Record the reference; the folder is complete or absent."""
    from parity.config.load import load_config
    from parity.errors import ParityUsageError
    from parity.reference.snapshot import write_snapshot

    cfg = load_config(args.config, live=True)
    out = args.out or (cfg.base_dir / cfg.reference["snapshot"] if cfg.reference["snapshot"] else None)
    if out is None:
        raise ParityUsageError(f"{cfg.path}: no reference.snapshot in the config: give --out DIR")
    done = write_snapshot(cfg, out, progress=None if args.quiet else lambda image: print(f"recorded | {image}",
                                                                                        flush=True))
    print(f"wrote {done.folder}: {done.images} images, {done.bytes / 2**20:.1f} MiB "
          f"({done.bytes / max(done.images, 1) / 1024:.0f} KiB per image) in {done.seconds:.1f} s")
    return EXIT_OK


def _suggest(args) -> int:
    """Generate, write, verify; the verdict printed is the one measured (parity.suggest.verdict)."""
    from parity.config.load import SAMPLE_IMAGES, config_from_dict, load_config
    from parity.suggest.generate import suggest
    from parity.suggest.verdict import MIN_SIDE, Verdict, verdict_images, verify

    spec = str(args.config)
    path = args.config.resolve()
    if "::" not in spec and _is_parity_config(path):  # its reference, images and client format
        cfg = load_config(path)
    else:  # an MMPretrain config, a file or 'mmpretrain::path/in/package.py': verified on the sample images
        cfg = config_from_dict({"reference": {"config": spec if "::" in spec else str(path)},
                                "dali": {"pipeline": "unused.py:f"}, "images": [str(SAMPLE_IMAGES)]},
                               Path.cwd() / "parity-suggest")
    input_format = args.input_format or cfg.dali["input_format"]
    input_name = cfg.dali["input_name"] or "INPUT"
    reference = {"test_pipeline": cfg.test_pipeline, "data_preprocessor": cfg.data_preprocessor}
    suggestion = suggest(cfg.test_pipeline, cfg.data_preprocessor, input_format=input_format, input_name=input_name)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline.py").write_text(suggestion.source)
    print(f"wrote {out / 'pipeline.py'}")
    for line in suggestion.unsupported:
        print(f"NOT REPRODUCED | {line}")
    for line in suggestion.notes:
        print(f"NOTE | {line}")
    groups, below = verdict_images(out / "verdict_images", SAMPLE_IMAGES, args.random_images)
    given = [p for p in cfg.images if p.resolve().parent != SAMPLE_IMAGES.resolve()]  # samples: in "bundled"
    groups = {"given": given, **groups}
    parity_cfg: dict = {"reference": reference, "images": [str(p) for paths in groups.values() for p in paths],
                        "dali": {"pipeline": "pipeline.py:preprocess", "input_name": input_name,
                                 "input_format": input_format}}
    (out / "parity_suggested.py").write_text("".join(f"{k} = {v!r}\n" for k, v in parity_cfg.items()))
    print(f"wrote {out / 'parity_suggested.py'} (run `parity check` on it any time)")
    if args.triton:
        _write_triton(out, suggestion, input_format)
    result = verify(load_config(out / "parity_suggested.py"), groups, below)
    print(f"\nmeasured on {result.overall.images} images:")
    for line in result.stage_lines:
        print(f"  {line}")
    for m in [*result.groups, result.below_minimum]:
        print(f"  {m.name:<14} {m.images:3d} images: {m.verdict.name}, max {m.pixel_max:.3g} levels before "
              f"normalization (worst mean {m.pixel_mean:.3g})" + (f", failing {', '.join(m.failed[:5])}" if m.failed
                                                                  else ""))
    print(f"  (below_minimum: short side under {MIN_SIDE} px, reported apart, not in the verdict)")
    overall = result.overall
    claims = {Verdict.EXACT: f"EXACT: within {overall.pixel_max:.3g} uint8 level(s) before normalization on every "
                             "image",
              Verdict.APPROXIMATE: f"APPROXIMATE: passes the tolerances, but differs by up to {overall.pixel_max:.3g} "
                                   f"uint8 levels before normalization (model input max "
                                   f"{overall.model_input_max:.3g})",
              Verdict.MISMATCH: f"MISMATCH on {len(overall.failed)} images ({', '.join(overall.failed[:5])}): "
                                "this pipeline is not claimed to match; see `parity check`"}
    if suggestion.unsupported:
        print("INCOMPLETE: some transforms are not reproduced (above); the measurement covers what was generated")
    print(claims[result.verdict])
    return EXIT_OK if result.verdict != Verdict.MISMATCH and suggestion.complete else EXIT_MISMATCH


def _is_parity_config(path: Path) -> bool:
    """Whether ``path`` is a parity config (it has a ``reference`` section) rather than an MMPretrain config."""
    from parity.config.file import read_config_file
    from parity.errors import ParityConfigError

    if not path.is_file():
        raise ParityConfigError(f"config not found: {path}")
    try:
        return "reference" in read_config_file(path)
    except ParityConfigError:
        return False  # not plain Python settings: an MMPretrain config for mmengine to read


def _write_triton(out: Path, suggestion, input_format: str) -> None:
    """model.dali (serialized) and a config.pbtxt for Triton's dali backend, in out/triton/preprocess."""
    from parity.dali.runner import load_function, serialize_function

    spec = "pipeline.py:preprocess"
    data = serialize_function(load_function(spec, out), spec, batch_size=32, num_threads=4)
    model = out / "triton" / "preprocess"
    (model / "1").mkdir(parents=True, exist_ok=True)
    (model / "1" / "model.dali").write_bytes(data)
    dims = "[ -1 ]" if input_format == "encoded" else "[ -1, -1, 3 ]"
    (model / "config.pbtxt").write_text(
        f'name: "preprocess"\nbackend: "dali"\nmax_batch_size: 32\n'
        f'input [ {{ name: "{suggestion.input_name}" data_type: TYPE_UINT8 dims: {dims} }} ]\n'
        'output [ { name: "PREPROCESSED" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] } ]\n'
        "instance_group [ { kind: KIND_GPU count: 1 } ]\n")
    print(f"wrote {model} (model.dali serialized on this machine; device_id is set when it is built there)")


if __name__ == "__main__":
    sys.exit(main())
