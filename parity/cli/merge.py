"""``parity merge``: one verdict from the result files of N shards."""

from __future__ import annotations

import shutil
from pathlib import Path

from parity.cli.console import paint
from parity.results.exit import EXIT_OK

DEFAULT_SHARE = 0.9  # result files that did not record the share: model.degenerate_share's default


def run(args) -> int:
    """One verdict from the result files of N shards: their images together, as one run would report them."""
    from parity.errors import ParityUsageError
    from parity.outputs.junit import cases, config_classname, write_junit
    from parity.results.records import read_json, write_json
    from parity.results.verdict import DEGENERATE, RunResults

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
    share = next((d["degenerate"].get("share") or DEFAULT_SHARE for d in documents if d.get("degenerate")), None)
    results = RunResults(degenerate_share=share)  # every verdict recomputed from the records
    seen: dict = {}
    try:
        for path, document in zip(args.results, documents):
            for record in document["images"]:
                if record["id"] in seen:
                    raise ParityUsageError(f"{path}: image {record['id']!r} is also in {seen[record['id']]}: "
                                           "shards overlap (use the same N, each K once)")
                seen[record["id"]] = path
                results.add(record)
        degenerate = results.judge_degenerate()
        # a shard that could not run (a usage error, a bug: exit 2 or 3) has no records to recompute from
        code = max([results.exit_code(), *(d["exit_code"] for d in documents if d["exit_code"] not in (0, 1))])
        seconds = sum(d["seconds"] for d in documents)
        for line in results.lines():
            print(paint(line))
        failing = [f"{p}: {d['verdict']}" + (f" ({d['error']})" if d["error"] else "") for p, d in
                   zip(args.results, documents) if d["exit_code"] != EXIT_OK]
        for line in failing:
            print(line)
        print(paint(f"{results.summary.verdict_line} ({len(documents)} result files, {seconds:.1f} s in all)"))
        base = documents[0]
        if args.json:
            write_json(args.json, config=base["config"], reference=base["reference"], records=results.records(),
                       degenerate=degenerate, seconds=seconds, exit_code=code, shards=shards, degenerate_share=share)
        if args.junit_xml:
            write_junit(args.junit_xml, cases(config_classname(Path(base["config"])), results.records(),
                                              checks=[(DEGENERATE, degenerate)]), seconds=seconds)
        if args.report:
            print(f"HTML report: {_merge_reports(args, documents, results)}")
    finally:
        results.close()
    return code


def _merge_reports(args, documents, results) -> Path:
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
                    results.records(), results.summary)
        (folder / MARKER).write_text("Written by parity merge; replaced whole by the next report written here.\n")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    publish(folder, target)
    return target / "index.html"
