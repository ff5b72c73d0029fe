"""``parity merge``: one verdict from the result files of N shards.

A result file is an input like any other, so nothing in it is taken on trust: every verdict is recomputed
from the image records (a record's stages and answers decide whether it passed), and a set of shards that
does not add up to one run of one config is refused (exit 2, naming the file and field): another config,
parity version or image set, a record or exit code that contradicts its records, overlapping or missing
images, a report folder parity did not write beside the result file."""

from __future__ import annotations

import os
import shutil
from numbers import Real
from pathlib import Path

from parity.cli.console import paint
from parity.results.exit import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE

DEFAULT_SHARE = 0.9  # result files that did not record the share: model.degenerate_share's default
STATUSES = {"passed", "failed", "skipped"}
_CHECK_STATUSES = STATUSES | {"warned"}
# What the verdict, the summary, JUnit and the report read from a record: checked before any is read.
_HEAD = {"parity": str, "config": str, "reference": (str, None), "verdict": {"passed", "failed", "error"},
         "exit_code": int, "error": (str, None), "seconds": Real, "shard": str, "run": dict, "checks": dict,
         "repository": (dict, None), "degenerate": (dict, None), "images": list, "report": (str, None)}
_RUN = {"config_sha256": str, "images": int, "image_ids_sha256": str}
_RECORD = {"id": str, "path": str, "passed": bool, "error": (str, None), "seconds": Real, "labels": list,
           "stages": list, "model": (dict, None), "triton": (dict, None)}
_STAGE = {"stage": str, "status": STATUSES, "headline": str, "message": str, "skip_reason": str, "causes": list,
          "statistics": dict}
_ANSWER = {"backend": str, "status": STATUSES, "headline": str, "message": str, "skip_reason": str, "top1": int,
           "reference_top1": int, "prob": Real, "reference_prob": Real, "problems": list}


def run(args) -> int:
    """One verdict from the result files of N shards: their images together, as one run would report them."""
    from parity.errors import ParityUsageError
    from parity.outputs.files import check_writable, refuse_inputs
    from parity.outputs.junit import cases, write_junit
    from parity.results.records import ids_sha256, read_json, write_json
    from parity.results.verdict import DEGENERATE, RunResults

    for path, flag in ((args.json, "--json"), (args.junit_xml, "--junit-xml"), (args.report, "--report")):
        if path is not None:
            check_writable(path.resolve(), flag)
    refuse_inputs(args, args.results)
    documents = [read_json(path) for path in args.results]
    for path, document in zip(args.results, documents):
        _check_document(path, document)
    shards = _check_set(args.results, documents)
    if args.report:  # before any output: a shard report that cannot be merged stops the merge
        from parity.outputs.html import MARKER

        reports = [_shard_report(path, document, MARKER) for path, document in zip(args.results, documents)]
    base = documents[0]
    seen: dict = {}
    share = _degenerate_share(documents)
    results = RunResults(degenerate_share=share)  # every verdict recomputed from the records, by one judge
    try:
        for path, document in zip(args.results, documents):
            for record in document["images"]:
                if record["id"] in seen:
                    raise ParityUsageError(f"{path}: image {record['id']!r} is also in {seen[record['id']]}: "
                                           "shards overlap (use the same N, each K once)")
                seen[record["id"]] = path
                results.add(record)
        expected = base["run"]
        if len(seen) != expected["images"] or ids_sha256(seen) != expected["image_ids_sha256"]:
            raise ParityUsageError(
                f"{args.results[0]}: run.images: the config has {expected['images']} images, the shards hold "
                f"{len(seen)}" + (" of other ids" if len(seen) == expected["images"] else "") +
                ": a result file lacks images or holds others (edited, or cut short)")
        degenerate = results.judge_degenerate()
        failed_checks = [f"{path}: {name.replace('_', '-')} check: FAILED" for path, d in zip(args.results, documents)
                         for name, r in _whole_run_checks(d) if r["status"] == "failed"]
        code = results.exit_code()
        if code == EXIT_OK and failed_checks:  # a shard's own whole-run check (repository, determinism...)
            code = EXIT_MISMATCH
        seconds = sum(d["seconds"] for d in documents)
        for line in results.lines() + failed_checks:
            print(paint(line))
        print(paint(f"{results.summary.verdict_line} ({len(documents)} result files, {seconds:.1f} s in all)"))
        if args.json:
            write_json(args.json, config=base["config"], reference=base["reference"], records=results.records(),
                       degenerate=degenerate, seconds=seconds, exit_code=code, shards=shards, degenerate_share=share,
                       run=base["run"])
        if args.junit_xml:
            from parity.outputs.junit import config_classname

            write_junit(args.junit_xml, cases(config_classname(Path(base["config"])), results.records(),
                                              checks=[(DEGENERATE, degenerate)]), seconds=seconds)
        if args.report:
            print(f"HTML report: {_merge_reports(args.report, reports, documents, results)}")
    finally:
        results.close()
    return code


def _check_document(path: Path, document: dict) -> None:
    """Refuse a result file whose fields are not what `parity check` writes, or whose verdicts contradict its
    own image records: each record's ``passed``, and the file's ``exit_code`` and ``verdict``."""
    from parity.errors import ParityUsageError
    from parity.results.fields import require

    require(path, "", document, _HEAD)
    require(path, "run", document["run"], _RUN)
    if document["error"] is not None:
        raise ParityUsageError(f"{path}: error: its run did not finish ({document['error']}); run that shard again")
    for name, check in _whole_run_checks(document):
        require(path, "repository" if name == "triton_repository" else f"checks.{name}", check,
                {"status": _CHECK_STATUSES})
    if document["degenerate"] is not None:
        require(path, "degenerate", document["degenerate"], {"status": STATUSES, "share": (Real, None)})
    errors = failed = 0
    for i, record in enumerate(document["images"]):
        where = f"images[{i}]"
        require(path, where, record, _RECORD)
        for j, stage in enumerate(record["stages"]):
            require(path, f"{where}.stages[{j}]", stage, _STAGE)
            require(path, f"{where}.stages[{j}].statistics", stage["statistics"], {"total": int, "max_abs": (Real, None)})
            for k, cause in enumerate(stage["causes"]):
                require(path, f"{where}.stages[{j}].causes[{k}]", cause, {"kind": str})
        for label in ("model", "triton"):
            if record[label] is not None:
                require(path, f"{where}.{label}", record[label], _ANSWER)
                _texts(path, f"{where}.{label}.problems", record[label]["problems"])
        _texts(path, f"{where}.labels", record["labels"])
        passed = _passed(record)
        if record["passed"] != passed:
            raise ParityUsageError(f"{path}: {where}.passed: {str(record['passed']).lower()} contradicts the record "
                                   f"of image {record['id']!r}, whose checks say it " + ("passed" if passed else
                                                                                         "failed"))
        errors += bool(record["error"])
        failed += not passed
    judged = [r for _, r in _whole_run_checks(document)] + [document["degenerate"]]
    code = EXIT_USAGE if errors else EXIT_MISMATCH if failed or any(
        r is not None and r["status"] == "failed" for r in judged) else EXIT_OK
    if document["exit_code"] != code:
        raise ParityUsageError(f"{path}: exit_code: {document['exit_code']} contradicts its records, which say "
                               f"{code} ({failed} failed images, {errors} not checked)")
    if document["verdict"] != ("passed", "failed", "error")[code]:
        raise ParityUsageError(f"{path}: verdict: {document['verdict']!r} contradicts its exit_code {code}")


def _texts(path: Path, field: str, values: list) -> None:
    from parity.results.fields import require_value

    for i, value in enumerate(values):
        require_value(path, f"{field}[{i}]", value, str)


def _passed(record: dict) -> bool:
    """An image passed when it was checked and no stage, model or Triton answer failed (as ImageResult.passed)."""
    answers = [a for a in (record["model"], record["triton"]) if a is not None]
    return not record["error"] and all(s["status"] != "failed" for s in [*record["stages"], *answers])


def _whole_run_checks(document: dict) -> list:
    """(name, record) of the run-wide checks a result file holds: the repository check and ``checks``."""
    return [*((("triton_repository", document["repository"]),) if document["repository"] is not None else ()),
            *document["checks"].items()]


def _check_set(paths: list[Path], documents: list[dict]) -> list[str]:
    """The shards' K/N, once each, after refusing result files that are not one sharded run of one config
    by one parity version."""
    import re

    from parity.errors import ParityUsageError
    from parity.results.fields import shown

    first, base = paths[0], documents[0]
    for path, document in zip(paths, documents):
        match = re.fullmatch(r"([1-9]\d*)/([1-9]\d*)", document["shard"])
        if not match or int(match[1]) > int(match[2]):
            raise ParityUsageError(f"{path}: shard: expected K/N with 1 <= K <= N, found {shown(document['shard'])} "
                                   "(merge the result files of `parity check --shard K/N --json`)")
        for field, what in (("parity", "parity version"), ("config_sha256", "config (its content differs)"),
                            ("image_ids_sha256", "image set")):
            mine, theirs = (document, base) if field == "parity" else (document["run"], base["run"])
            if mine[field] != theirs[field]:
                where = field if field == "parity" else f"run.{field}"
                raise ParityUsageError(f"{path}: {where}: another {what} than {first}'s "
                                       f"({shown(mine[field])} vs {shown(theirs[field])}): merge the shards of one run")
    shards = [d["shard"] for d in documents]
    counts = {s.split("/")[1] for s in shards}
    if len(counts) != 1:
        raise ParityUsageError("expected the result files of one sharded run (`parity check --shard K/N --json`); "
                               f"their shards: {', '.join(shards)}")
    twice = sorted({s for s in shards if shards.count(s) > 1})
    missing = sorted(set(range(1, int(counts.pop()) + 1)) - {int(s.split("/")[0]) for s in shards})
    if twice or missing:
        raise ParityUsageError(f"shards {', '.join(shards)}: " + "; ".join(
            ([f"shard {', '.join(twice)} given twice"] if twice else []) +
            ([f"shard(s) {missing} missing"] if missing else [])))
    return shards


def _degenerate_share(documents) -> float | None:
    """The share the shards judged the degenerate-output check at (None: the config has no model section)."""
    judged = [d["degenerate"] for d in documents if d.get("degenerate")]
    return (judged[0].get("share") or DEFAULT_SHARE) if judged else None


def _merge_reports(report: Path, sources: list[Path], documents, results) -> Path:
    """One report: every shard's pictures and sections (from ``sources``), and an index over every record."""
    from parity.outputs.files import fresh_folder, publish
    from parity.outputs.html import MARKER, SECTIONS, write_index

    target = report.resolve()
    folder = fresh_folder(target, MARKER, "--report")
    try:
        for shard in sources:
            for item in _report_files(shard):
                if item.name not in ("index.html", MARKER):
                    (folder / item.relative_to(shard)).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(item, folder / item.relative_to(shard), follow_symlinks=False)
        (folder / SECTIONS).mkdir(exist_ok=True)
        write_index(folder, f"parity: {Path(documents[0]['config']).name} ({len(documents)} shards)",
                    results.records(), results.summary)
        (folder / MARKER).write_text("Written by parity merge; replaced whole by the next report written here.\n")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    publish(folder, target)
    return target / "index.html"


def _shard_report(path: Path, document: dict, marker: str) -> Path:
    """The report folder a result file names, if parity wrote it there: a real folder (no symlink on the way)
    in the result file's own folder, holding parity's marker file and an index."""
    from parity.errors import ParityUsageError

    name = document["report"]
    if name is None:
        raise ParityUsageError(f"{path}: report: its shard wrote no report: run the shards with --report DIR")
    home = path.resolve().parent
    parts = Path(name).parts
    if Path(name).is_absolute() or not parts or any(p in ("..", ".") for p in parts):
        raise ParityUsageError(f"{path}: report: {name!r} is not a folder beside the result file; merge reads only "
                               "reports written next to their result files")
    folder = home
    for part in parts:
        folder = folder / part
        if folder.is_symlink() or not folder.is_dir():
            raise ParityUsageError(f"{path}: report: {folder} is " + ("a symlink" if folder.is_symlink() else
                                                                       "not a folder") +
                                   "; merge reads only report folders that parity wrote there")
    for required in (marker, "index.html"):
        if (folder / required).is_symlink() or not (folder / required).is_file():
            raise ParityUsageError(f"{path}: report: {folder} holds no {required}: not a report parity wrote")
    return folder


def _report_files(folder: Path):
    """The regular files under a shard's report; a symlink or special file there is refused, never followed."""
    from parity.errors import ParityUsageError

    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            item = Path(root, name)
            if item.is_symlink() or not (item.is_dir() or item.is_file()):
                raise ParityUsageError(f"{item}: a symlink or special file in a shard's report; parity writes "
                                       "none there")
        yield from (Path(root, name) for name in sorted(files))
