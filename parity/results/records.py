"""``parity check --json FILE``: the run as one JSON document for machines (schema ``parity-result``,
documented in docs/json.md). Each record is spelled out field by field, so the schema changes only when
its version does."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np

FORMAT, SCHEMA = "parity-result", 2


def plain(value):
    """numpy scalars and arrays as JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)


def cause_record(c) -> dict:
    """One :class:`~parity.diagnose.causes.Cause`, field by field (``sentence``/``numbers`` as in schema 1's first form)."""
    e, a = c.evidence, c.advice
    return dict(kind=str(c.kind), finding=c.finding, confidence=str(c.confidence), sentence=c.sentence,
                numbers=c.numbers,
                advice=None if a is None else dict(text=a.text, argument=a.argument, value=a.value, where=a.where),
                evidence=None if e is None else dict(model=e.model, params=e.params, residual_max=e.residual_max,
                                                     residual_mean=e.residual_mean, residual_beyond=e.residual_beyond,
                                                     limit=e.limit, allowed_beyond=e.allowed_beyond, unit=e.unit))


def stage_record(r) -> dict:
    tol = r.tolerance
    failed = r.status == "failed"
    return dict(
        stage=r.stage, status=r.status, headline=r.headline if failed else "", message=r.message() if failed else "",
        dali_op=r.dali_op, reference=r.reference, problems=list(r.problems),
        notes=list(r.notes),
        statistics=dict(mismatched=r.mismatched, total=r.total, mismatch_fraction=r.mismatch_fraction,
                        max_abs=r.max_abs, mean_abs=r.mean_abs, p99_abs=r.p99_abs, max_rel=r.max_rel),
        tolerance=None if tol is None else dict(atol=tol.atol, rtol=tol.rtol, max_mismatch=tol.max_mismatch,
                                                mean_atol=tol.mean_atol, border=tol.border, unit=tol.unit),
        causes=[cause_record(c) for c in (r.diagnosis.causes if r.diagnosis else ())],
        first_divergence=r.first_divergence, skip_reason=r.skip_reason)


def answer_record(r) -> dict:
    """A model or Triton answer (:class:`~parity.serving.model.ModelResult`)."""
    failed = r.status == "failed"
    return dict(backend=r.backend, status=r.status, headline=r.headline if failed else "",
                message=r.message() if failed else "", reference_top1=r.ref_top1, reference_prob=r.ref_prob,
                top1=r.dali_top1, prob=r.dali_prob, topk=r.topk, topk_overlap=r.topk_overlap,
                topk_counted=r.topk_counted, kl=r.kl, max_abs_logit=r.max_abs_logit,
                conversion_max_abs=r.conversion_max_abs, problems=list(r.problems), notes=list(r.notes),
                preprocessing=r.preprocessing, skip_reason=r.skip_reason, finite=r.finite,
                fingerprint=list(r.fingerprint))


def image_record(image, *, seconds: float = 0.0, labels: tuple = ()) -> dict:
    """One image, JSON-able: what the summary, the report index, JUnit, pytest-xdist workers and ``parity
    merge`` read. ``labels`` name the checks an image that could not be checked counts as errored."""
    return _json_values(dict(id=image.image, path=str(image.path), passed=image.passed, error=image.error or None,
                seconds=round(seconds, 4), labels=list(labels) if image.error else [],
                stages=[stage_record(r) for r in image.stages],
                model=None if image.model is None else answer_record(image.model),
                triton=None if image.triton is None else answer_record(image.triton)))


def _json_values(record: dict) -> dict:
    """Plain JSON types only (numpy scalars converted): records cross processes (pytest-xdist) and files."""
    return json.loads(json.dumps(record, default=plain))


def run_identity(config: Path, ids: list[str]) -> dict:
    """What ``parity merge`` checks its shards against: the config file's content and every image id of the
    whole config (as a count and a digest), so shards of another config or another image set are refused."""
    from parity.reference.snapshot import file_sha256

    return dict(config_sha256=file_sha256(config), images=len(ids), image_ids_sha256=ids_sha256(ids))


def ids_sha256(ids) -> str:
    """The digest of a set of image ids, whatever their order."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def write_json(path: Path, *, config: str, reference: str | None, records, degenerate, seconds: float,
               exit_code: int, error: str | None = None, repository=None, shard: str | None = None,
               shards: list | None = None, report: Path | None = None, checks: dict | None = None,
               gpu=None, degenerate_share: float | None = None, run: dict | None = None,
               reference_identity: dict | None = None) -> None:
    """The document, its ``images`` streamed from ``records`` (one line each) so a long run holds none;
    ``path`` is replaced whole, never written through a symlink."""
    from parity import __version__

    verdict = {0: "passed", 1: "failed"}.get(exit_code, "error")
    head = dict(
        format=FORMAT, schema=SCHEMA, parity=__version__, config=config, reference=reference, verdict=verdict,
        exit_code=exit_code, error=error, seconds=round(seconds, 3), run=run, shard=shard, shards=shards,
        reference_identity=reference_identity,
        report=None if report is None else os.path.relpath(report, path.resolve().parent),
        checks={name: r.record() for name, r in (checks or {}).items()}, gpu=gpu.record() if gpu else None,
        repository=None if repository is None else dict(status=repository.status, path=str(repository.repository),
                                                        problems=list(repository.problems)),
        degenerate=None if degenerate is None else dict(status=degenerate.status, images=degenerate.images,
                                                        findings=list(degenerate.findings), hint=degenerate.hint,
                                                        share=degenerate_share))
    from parity.outputs.files import replaced_whole

    with replaced_whole(path) as out:
        out.write(json.dumps(_strict(head), indent=1, default=plain, allow_nan=False)[:-2] + ',\n "images": [')
        for i, record in enumerate(records):
            out.write(("," if i else "") + "\n  " + json.dumps(_strict(record), default=plain, allow_nan=False))
        out.write("\n ]\n}\n")


NON_FINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_NUMBER_KEYS = ("statistics", "tolerance", "evidence", "params")  # dicts whose values are numbers
_ANSWER_NUMBERS = ("reference_prob", "prob", "topk_overlap", "kl", "max_abs_logit", "conversion_max_abs")


def _strict(value):
    """``value`` as strict JSON: a NaN or infinite number (an atol of inf, a NaN in DALI's output) becomes the
    string "NaN", "Infinity" or "-Infinity" (JSON has no such numbers; :func:`read_json` reads them back)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _numbers(value):
    """The numbers :func:`_strict` spelled as strings, read back (in the dicts of numbers only)."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return NON_FINITE.get(value, value) if isinstance(value, str) else value


def _read_numbers(document: dict) -> None:
    for record in document.get("images") or ():
        if not isinstance(record, dict):
            continue
        for stage in record.get("stages") or ():
            for key in _NUMBER_KEYS[:2]:
                if isinstance(stage, dict) and isinstance(stage.get(key), dict):
                    stage[key] = _numbers(stage[key])
            for cause in (stage.get("causes") or ()) if isinstance(stage, dict) else ():
                if isinstance(cause, dict) and isinstance(cause.get("evidence"), dict):
                    cause["evidence"] = {k: _numbers(v) if k in _NUMBER_KEYS or k.startswith(("residual", "limit"))
                                         else v for k, v in cause["evidence"].items()}
        for answer in (record.get("model"), record.get("triton")):
            if isinstance(answer, dict):
                answer.update({k: _numbers(answer[k]) for k in _ANSWER_NUMBERS if k in answer})


def read_json(path: Path) -> dict:
    """A result file written by ``parity check --json`` (for ``parity merge``); refused when not one."""
    from parity.errors import ParityUsageError

    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ParityUsageError(f"{path}: not a parity result file ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ParityUsageError(f"{path}: not a parity result file (no \"format\": \"{FORMAT}\")")
    if document.get("schema") != SCHEMA:
        raise ParityUsageError(f"{path}: result schema {document.get('schema')!r}; this parity reads schema {SCHEMA}")
    _read_numbers(document)
    return document
