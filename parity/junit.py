"""JUnit XML from image records, with the identities pytest gives the same checks.

pytest names an item ``cfg.py::astronaut::model_input`` and its junitxml plugin writes it as classname
``cfg.astronaut``, name ``model_input`` (the path relative to the rootdir, ``/`` as ``.``, without
``.py``). ``parity check``, ``parity merge`` and ``pytest --parity-config`` write the same, so a CI
system's test history survives switching between them.
"""

from __future__ import annotations

import datetime
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

REPOSITORY, DEGENERATE = "triton_repository", "degenerate"


def config_classname(config: Path, rootdir: Path | None = None) -> str:
    """``fixtures/seed/parity_deployed.py`` -> ``fixtures.seed.parity_deployed``, as pytest's junitxml does."""
    config, rootdir = Path(config).resolve(), (rootdir or Path.cwd()).resolve()
    try:
        relative = config.relative_to(rootdir).as_posix()
    except ValueError:
        relative = config.name
    return relative[:-3].replace("/", ".") if relative.endswith(".py") else relative.replace("/", ".")


def _stage_text(stage: dict) -> tuple[str, str]:
    return stage.get("headline") or stage["stage"], stage.get("message") or ""


def cases(base: str, records, *, checks=()):
    """(classname, name, status, message, text, seconds) per check: every stage, model and Triton answer
    of every image record, then the whole-run checks ``(name, result)``."""
    for name, result in checks:
        if name == REPOSITORY and result is not None:
            yield base, name, result.status, result.message().split("\n")[0], result.message(), 0.0
    for record in records:
        classname, seconds = f"{base}.{record['id']}", record.get("seconds", 0.0)
        if record.get("error"):
            for label in record.get("labels", ()):
                yield classname, label, "error", record["error"].split("\n")[0], record["error"], seconds
                seconds = 0.0
            continue
        answers = [(label, record[label]) for label in ("model", "triton") if record.get(label) is not None]
        for stage in record["stages"]:
            headline, text = _stage_text(stage)
            yield classname, stage["stage"], stage["status"], headline or stage.get("skip_reason", ""), text, seconds
            seconds = 0.0
        for label, answer in answers:
            yield classname, label, answer["status"], answer.get("headline") or label, answer.get("message", ""), 0.0
    for name, result in checks:
        if name != REPOSITORY and result is not None:
            yield base, name, result.status, result.message().split("\n")[0], result.message(), 0.0


def write_junit(path: Path, rows, *, seconds: float, error: str | None = None, suite: str = "parity") -> None:
    """One ``<testsuite>`` with time, timestamp and hostname (as pytest writes them) of ``rows`` from
    :func:`cases`, streamed: the cases go to a file beside ``path`` first, since the counts head the suite.
    A usage error is one errored case that names it."""
    counts = dict(tests=0, failures=0, errors=0, skipped=0)
    outcome = {"failed": ("failure", "failures"), "error": ("error", "errors"), "skipped": ("skipped", "skipped")}
    if error:
        rows = [*rows, (suite, "usage", "error", error.split("\n")[0], error, 0.0)]
    path.parent.mkdir(parents=True, exist_ok=True)
    body = path.with_name(f".{path.name}.cases")
    try:
        with open(body, "w", encoding="utf-8") as out:
            for classname, name, status, message, text, took in rows:
                counts["tests"] += 1
                case = ET.Element("testcase", classname=classname, name=name, time=f"{took:.3f}")
                if status in outcome:
                    tag, counter = outcome[status]
                    counts[counter] += 1
                    ET.SubElement(case, tag, message=message).text = text if tag != "skipped" else None
                out.write("  " + ET.tostring(case, encoding="unicode") + "\n")
        suite_el = ET.Element("testsuite", name=suite, **{k: str(v) for k, v in counts.items()},
                              time=f"{seconds:.3f}", timestamp=datetime.datetime.now().astimezone().isoformat(),
                              hostname=socket.gethostname())
        head = ET.tostring(suite_el, encoding="unicode").replace(" />", ">")
        with open(path, "w", encoding="utf-8") as out, open(body, encoding="utf-8") as cases_file:
            out.write(f"<?xml version='1.0' encoding='utf-8'?>\n<testsuites>\n{head}\n")
            for line in cases_file:
                out.write(line)
            out.write("</testsuite>\n</testsuites>\n")
    finally:
        body.unlink(missing_ok=True)
