"""JUnit XML from image records, with the identities pytest gives the same checks.

pytest names an item ``cfg.py::astronaut::model_input`` and its junitxml plugin writes it as classname
``cfg.astronaut``, name ``model_input`` (the path relative to the rootdir, ``/`` as ``.``, without
``.py``). ``parity check``, ``parity merge`` and ``pytest --parity-config`` write the same, so a CI
system's test history survives switching between them.
"""

from __future__ import annotations

import datetime
import shutil
import socket
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from parity.results.verdict import DEGENERATE


def config_classname(config: Path, rootdir: Path | None = None) -> str:
    """``fixtures/seed/parity_deployed.py`` -> ``fixtures.seed.parity_deployed``, as pytest's junitxml does."""
    config, rootdir = Path(config).resolve(), (rootdir or Path.cwd()).resolve()
    try:
        relative = config.relative_to(rootdir).as_posix()
    except ValueError:
        relative = config.name
    return relative[:-3].replace("/", ".") if relative.endswith(".py") else relative.replace("/", ".")


@dataclass(frozen=True)
class Case:
    classname: str
    name: str
    status: str  # passed | failed | error | skipped
    message: str = ""
    text: str = ""
    seconds: float = 0.0
    properties: tuple = ()  # (name, value): e.g. the stage's GPU margin


def _check_case(base: str, name: str, result) -> Case:
    status = "passed" if result.status == "warned" else result.status
    return Case(base, name, status, result.headline, result.message(),
                properties=(("warning", result.headline),) if result.status == "warned" else ())


def cases(base: str, records, *, checks=(), margins=None):
    """One :class:`Case` per check: the whole-run checks before the images (``(name, result)``, the
    degenerate-output check after them), then every stage, model and Triton answer of every image
    record. ``margins(stage)`` gives a stage's GPU margin, written as a property."""
    before = [(n, r) for n, r in checks if n != DEGENERATE and r is not None]
    for name, result in before:
        yield _check_case(base, name, result)
    for record in records:
        classname, seconds = f"{base}.{record['id']}", record.get("seconds", 0.0)
        if record.get("error"):
            for label in record.get("labels", ()):
                yield Case(classname, label, "error", record["error"].split("\n")[0], record["error"], seconds)
                seconds = 0.0
            continue
        for stage in record["stages"]:
            margin = margins(stage["stage"]) if margins else ""
            yield Case(classname, stage["stage"], stage["status"], stage["headline"] or stage["skip_reason"],
                       stage["message"], seconds, (("gpu_margin", margin),) if margin else ())
            seconds = 0.0
        for label in ("model", "triton"):
            answer = record.get(label)
            if answer is not None:
                yield Case(classname, label, answer["status"], answer["headline"] or answer["skip_reason"],
                           answer["message"])
    for name, result in checks:
        if name == DEGENERATE and result is not None:
            yield _check_case(base, name, result)


def write_junit(path: Path, rows, *, seconds: float, error: str | None = None, suite: str = "parity",
                suite_properties: tuple = ()) -> None:
    """One ``<testsuite>`` with time, timestamp and hostname (as pytest writes them) of ``rows`` from
    :func:`cases`, streamed: the cases go to a file beside ``path`` first, since the counts head the suite;
    ``path`` is replaced whole (:func:`parity.outputs.files.replaced_whole`).
    A usage error is one errored case that names it."""
    from parity.outputs.files import replaced_whole

    counts = dict(tests=0, failures=0, errors=0, skipped=0)
    outcome = {"failed": ("failure", "failures"), "error": ("error", "errors"), "skipped": ("skipped", "skipped")}
    if error:
        rows = [*rows, Case(suite, "usage", "error", error.split("\n")[0], error)]
    path.parent.mkdir(parents=True, exist_ok=True)
    # the cases are spooled to an unnamed file in the target's folder: nothing to plant or to clean up
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="backslashreplace", dir=path.parent) as body:
        for row in rows:
            counts["tests"] += 1
            case = ET.Element("testcase", classname=row.classname, name=row.name, time=f"{row.seconds:.3f}")
            if row.properties:
                properties = ET.SubElement(case, "properties")
                for name, value in row.properties:
                    ET.SubElement(properties, "property", name=name, value=value)
            if row.status in outcome:
                tag, counter = outcome[row.status]
                counts[counter] += 1
                ET.SubElement(case, tag, message=row.message).text = row.text if tag != "skipped" else None
            body.write("  " + ET.tostring(case, encoding="unicode") + "\n")
        suite_el = ET.Element("testsuite", {"name": suite, **{k: str(v) for k, v in counts.items()},
                                            "time": f"{seconds:.3f}",
                                            "timestamp": datetime.datetime.now().astimezone().isoformat(),
                                            "hostname": socket.gethostname()})
        head = ET.tostring(suite_el, encoding="unicode").replace(" />", ">")
        if suite_properties:  # which reference, resolved how, by which library versions
            listed = ET.Element("properties")
            for name, value in suite_properties:
                ET.SubElement(listed, "property", name=name, value=str(value))
            head += "\n  " + ET.tostring(listed, encoding="unicode")
        body.seek(0)
        with replaced_whole(path) as out:
            out.write(f"<?xml version='1.0' encoding='utf-8'?>\n<testsuites>\n{head}\n")
            shutil.copyfileobj(body, out)
            out.write("</testsuite>\n</testsuites>\n")
