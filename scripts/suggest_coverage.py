"""Regenerate docs/suggest_coverage.md: which classification configs shipped in mmpretrain (every folder,
recursively) `parity suggest` reproduces exactly, approximately, or not, with the verdict `parity suggest`
itself gives (parity.suggest.verdict, same images).

Each config is read the way `parity suggest mmpretrain::PATH` reads it; configs sharing a test pipeline and
data preprocessor are measured once.
Run: .venv/bin/python scripts/suggest_coverage.py   (about 17 minutes on 2 cores; one process per pipeline)
"""

import enum
import json
import tempfile
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from parity.config.load import SAMPLE_IMAGES, config_from_dict
from parity.errors import ParityPipelineWarning, ParityUsageError
from parity.suggest.generate import suggest
from parity.suggest.verdict import BELOW_MINIMUM, GENERATED, LARGE, MIN_SIDE, verdict_images, verify

ROOT = Path(__file__).resolve().parents[1]


class Outcome(enum.Enum):
    EXACT = "exact"
    APPROXIMATE = "approximate"
    MISMATCH = "mismatch"
    UNSUPPORTED = "unsupported"  # a transform is not generated
    NOT_MEASURABLE = "not measurable"  # no image-file test pipeline the harness can run (not in the goal)


@dataclass
class Row:
    configs: list
    steps: str
    outcome: Outcome
    detail: str


def shipped_configs():
    import importlib.util

    spec = importlib.util.find_spec("mmpretrain")
    root = Path(next(iter(spec.submodule_search_locations))) / ".mim" / "configs"
    for path in sorted(root.rglob("*.py")):
        if not any(part.startswith("_") for part in path.relative_to(root).parts[:-1]):
            yield path.relative_to(root).as_posix()


def classification_configs():
    """(name, test_pipeline, data_preprocessor) of each ImageClassifier config, or (name, None, why)."""
    from mmengine import Config

    root = Path(__file__).parent
    for name in shipped_configs():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = (Config.fromfile(_package_path(name)).to_dict().get("model") or {})
        except Exception as exc:  # listed, not hidden
            yield name, None, f"mmengine cannot load it: {type(exc).__name__}: {str(exc)[:80]}"
            continue
        if model.get("type") != "ImageClassifier":
            continue
        try:
            with warnings.catch_warnings(record=True) as caught:  # pipelines that differ: one line each
                cfg = config_from_dict({"reference": {"config": f"mmpretrain::{name}"},
                                        "dali": {"pipeline": "x.py:f"}, "images": [str(SAMPLE_IMAGES)]},
                                       root / "coverage.py")
            for w in caught:
                if issubclass(w.category, ParityPipelineWarning):
                    print(f"warning: {w.message}", flush=True)
        except ParityUsageError as exc:
            yield name, None, str(exc).split(": ", 1)[-1][:120]
            continue
        yield name, cfg.test_pipeline, cfg.data_preprocessor


def _package_path(name: str) -> str:
    import importlib.util

    spec = importlib.util.find_spec("mmpretrain")
    return str(Path(next(iter(spec.submodule_search_locations))) / ".mim" / "configs" / name)


def _steps(pipeline: list) -> str:
    keys = ("scale", "crop_size", "crop_padding", "edge", "backend", "interpolation")
    return " → ".join(s["type"] + "".join(f" {k}={v}" for k, v in s.items() if k in keys) for s in pipeline)


def measure(pipeline, dp, folder: Path, groups, below) -> tuple[Outcome, str]:
    suggestion = suggest(pipeline, dp)
    if not pipeline[0]["type"].endswith("LoadImageFromFile"):
        return Outcome.NOT_MEASURABLE, "no LoadImageFromFile: the dataset yields decoded arrays, not image files"
    if suggestion.unsupported:
        return Outcome.UNSUPPORTED, "; ".join(suggestion.unsupported)
    folder.mkdir()
    (folder / "pipeline.py").write_text(suggestion.source)
    cfg = config_from_dict({"reference": {"test_pipeline": pipeline, "data_preprocessor": dp},
                            "dali": {"pipeline": "pipeline.py:preprocess", "input_name": "INPUT"},
                            "images": [str(p) for paths in groups.values() for p in paths]}, folder / "cfg.py")
    try:
        result = verify(cfg, groups, below)
    except ParityUsageError as exc:  # the reference cannot run this pipeline
        return Outcome.NOT_MEASURABLE, f"{type(exc).__name__}: {str(exc)[:150]}"
    parts = [f"{m.name}: max {m.pixel_max:.3g} / mean {m.pixel_mean:.2g}"
             + (f", failing {', '.join(m.failed)}" if m.failed else "") for m in result.groups]
    b = result.below_minimum
    parts.append(f"below {MIN_SIDE} px (not in the verdict): {b.verdict.value}, max {b.pixel_max:.3g}"
                 + (f", failing {', '.join(f.split('_')[-1][:-4] for f in b.failed)}" if b.failed else ""))
    return Outcome(result.verdict.value), "; ".join(parts)


def main():
    groups_by_key: dict[str, list] = {}
    pipelines, skipped = {}, []
    for name, pipeline, dp in classification_configs():
        if pipeline is None:
            skipped.append((name, dp))
            continue
        key = json.dumps([pipeline, dp], sort_keys=True, default=str)
        groups_by_key.setdefault(key, []).append(name)
        pipelines[key] = (pipeline, dp)
    rows = []
    with tempfile.TemporaryDirectory(prefix="parity-coverage-") as folder:  # removed however the run ends
        tmp = Path(folder)
        images, below = verdict_images(tmp / "images", SAMPLE_IMAGES)
        # one process per pipeline: DALI keeps each pipeline's buffers (12 Mpx images) until its process ends
        with ProcessPoolExecutor(max_workers=1, max_tasks_per_child=1, mp_context=get_context("spawn")) as pool:
            for i, (key, configs) in enumerate(sorted(groups_by_key.items(), key=lambda kv: -len(kv[1]))):
                pipeline, dp = pipelines[key]
                outcome, detail = pool.submit(measure, pipeline, dp, tmp / f"p{i}", images, below).result()
                rows.append(Row(configs, _steps(pipeline), outcome, detail))
                print(f"{len(configs):3d} {outcome.value:12s} {configs[0]}: {detail}", flush=True)
    rows += [Row([name], "-", Outcome.NOT_MEASURABLE, why) for name, why in skipped]
    counts = Counter()
    for row in rows:
        counts[row.outcome] += len(row.configs)
    write(rows, counts)
    print({k.value: v for k, v in counts.items()})


def write(rows: list, counts: Counter) -> None:
    deterministic = sum(v for k, v in counts.items() if k is not Outcome.NOT_MEASURABLE)
    matched = counts[Outcome.EXACT] + counts[Outcome.APPROXIMATE]
    sizes = ", ".join(f"{h}×{w}" for h, w in GENERATED)
    text = [
        "# `parity suggest` coverage of MMPretrain's shipped classification configs", "",
        "Regenerated by `python scripts/suggest_coverage.py`: every `ImageClassifier` config under "
        "`mmpretrain/.mim/configs`, recursively, read as `parity suggest mmpretrain::PATH` reads it. Each distinct "
        "test pipeline + data preprocessor is generated and given the verdict `parity suggest` gives "
        "(`parity/suggest/verdict.py`), on the same images: the bundled samples, generated noisy gradients "
        f"({sizes}) and mosaics of the samples ({', '.join(f'{h}×{w}' for h, w in LARGE)}, downscaled ~10×). "
        f"Images with a side under {MIN_SIDE} px ({', '.join(f'{h}×{w}' for h, w in BELOW_MINIMUM)}) are measured "
        "and reported apart, not in the verdict.", "",
        "*exact*: within 1 uint8 level on every image; *approximate*: within the default tolerances, with the "
        "measured maximum (levels, before normalization); *mismatch*: fails them on some image; *unsupported*: "
        "a transform has no generated equivalent; *not measurable*: no test pipeline on image files that the "
        "harness can run (listed with the reason, outside the goal).", "",
        f"Configs: {sum(counts.values())}; " + ", ".join(f"{k.value}: {counts[k]}" for k in Outcome) + ".", "",
        f"Exact + approximate: {matched} of {deterministic} configs with a measurable test pipeline "
        f"({100 * matched / max(deterministic, 1):.1f} %).", "",
        "| configs | test pipeline | verdict | measured (levels: max / worst image mean) |", "| --- | --- | --- | --- |"]
    for row in rows:
        example = row.configs[0] + (f" (+{len(row.configs) - 1})" if len(row.configs) > 1 else "")
        text.append(f"| {example} | {row.steps} | {row.outcome.value} | {row.detail.replace('|', '/')} |")
    (ROOT / "docs" / "suggest_coverage.md").write_text("\n".join(text) + "\n")
    print("wrote docs/suggest_coverage.md")


if __name__ == "__main__":
    main()
