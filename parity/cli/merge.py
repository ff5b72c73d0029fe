"""``parity merge``: one verdict from the result files of N shards."""

from __future__ import annotations

import shutil
from pathlib import Path

from parity.cli.console import EXIT_MISMATCH, EXIT_OK, paint


def run(args) -> int:
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
    named = [s for s in shards if s]  # every one, as checked above
    twice = sorted({s for s in named if named.count(s) > 1})
    missing = sorted(set(range(1, int(counts.pop()) + 1)) - {int(s.split("/")[0]) for s in named})
    if twice or missing:
        raise ParityUsageError(f"shards {', '.join(named)}: " + "; ".join(
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
            print(paint(line))
        failing = [f"{p}: {d['verdict']}" + (f" ({d['error']})" if d["error"] else "") for p, d in
                   zip(args.results, documents) if d["exit_code"] != EXIT_OK]
        for line in failing:
            print(line)
        print(paint(f"{recorder.summary.verdict_line} ({len(documents)} result files, {seconds:.1f} s in all)"))
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
