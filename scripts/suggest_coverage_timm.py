"""Regenerate docs/suggest_timm_coverage.md (and its measurements, docs/suggest_timm_coverage.json): which
timm pretrained checkpoints and torchvision classification weights `parity suggest` reproduces exactly,
approximately, or not, with the verdict `parity suggest` itself gives (parity.suggest.verdict, same images).

A checkpoint's eval transform is decided by its resolved data config (input_size, crop_pct, crop_mode,
interpolation, mean, std: what ``timm.data.create_transform(is_training=False)`` reads), a torchvision
preset's by its crop and resize sizes, interpolation, mean and std: each distinct one is measured once,
through the reference `parity suggest timm::NAME` opens for its first checkpoint, and counted for all.
Run: .venv/bin/python scripts/suggest_coverage_timm.py   (resumes: transforms already in the JSON are kept;
     201 transforms: 37 minutes on a shared 2-core machine, 8 s each on an idle core)
     --limit N: measure N more transforms and stop
     --render: rewrite the page from the JSON alone (what tests/test_suggest_timm.py compares)
"""

import argparse
import enum
import json
import sys
import tempfile
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "suggest_timm_coverage.md"
DATA = ROOT / "docs" / "suggest_timm_coverage.json"
GROUPS_PER_PROCESS = 8  # DALI keeps each pipeline's buffers (12 Mpx mosaics) until its process ends


class Outcome(enum.Enum):
    EXACT = "exact"
    APPROXIMATE = "approximate"
    MISMATCH = "mismatch"
    UNSUPPORTED = "unsupported"  # a step is not generated, or the reference cannot be built: the reason
    PENDING = "not measured yet"  # the scan stopped before it (--limit, interrupted): resumed by the next run


def timm_groups() -> dict:
    """{data config as JSON: [checkpoints]} over ``timm.list_pretrained()``, resolved from each
    checkpoint's pretrained_cfg as ``resolve_model_data_config`` resolves it (timm's default: train size)."""
    import timm
    from timm.data import resolve_data_config
    from timm.models import get_pretrained_cfg

    groups: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in timm.list_pretrained():
            data = resolve_data_config(pretrained_cfg=get_pretrained_cfg(name).to_dict())
            key = json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}, sort_keys=True)
            groups.setdefault(key, []).append(name)
    return groups


def torchvision_groups() -> dict:
    """{preset as JSON: [weights]} over torchvision's classification models' weights."""
    from torchvision import models

    groups: dict = {}
    for model in models.list_models(module=models):
        for weights in models.get_model_weights(model):
            preset = weights.transforms()
            name = f"{type(weights).__name__}.{weights.name}"
            if type(preset).__name__ != "ImageClassification":
                key = json.dumps({"preset": type(preset).__name__})
            else:
                key = json.dumps(dict(crop_size=list(preset.crop_size), resize_size=list(preset.resize_size),
                                      interpolation=preset.interpolation.value, antialias=preset.antialias,
                                      mean=list(preset.mean), std=list(preset.std)), sort_keys=True)
            groups.setdefault(key, []).append(name)
    return groups


def measure(library: str, name: str, key: str, folder: str, groups: dict, below: list) -> tuple[str, str, str]:
    """(outcome, eval transform, measured) for the reference ``library=name``, as `parity suggest` gives it."""
    from parity.config.load import config_from_dict
    from parity.errors import ParityReferenceError
    from parity.reference import open_reference
    from parity.suggest import eval_transform
    from parity.suggest.verdict import MIN_SIDE, verify

    work = Path(folder)
    work.mkdir()
    cfg = config_from_dict({"reference": {library: name}, "images": [str(p) for paths in groups.values() for p in paths],
                            "dali": {"pipeline": "pipeline.py:preprocess", "input_name": "INPUT"}}, work / "cfg.py")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = open_reference(cfg)
    except ParityReferenceError as exc:
        return Outcome.UNSUPPORTED.value, "-", f"the reference cannot be built: {str(exc)[:200]}"
    if library == "timm":  # the reference resolves what the group's key says (the fast path above)
        resolved = {k: list(v) if isinstance(v, tuple) else v for k, v in ref.data_config.items()}
        if resolved != json.loads(key):
            raise AssertionError(f"{name}: resolved {resolved}, grouped as {key}")
    steps = ref.pipeline_cfg[1:]
    shown = " → ".join(_step(s) for s in steps)
    suggestion = eval_transform.suggest(steps, source=ref.source, input_format="BGR")
    if suggestion.unsupported:
        return Outcome.UNSUPPORTED.value, shown, "; ".join(suggestion.unsupported)
    (work / "pipeline.py").write_text(suggestion.source)
    result = verify(cfg, groups, below, source=ref.source)
    parts = [f"{m.name}: max {m.pixel_max:.3g} / mean {m.pixel_mean:.2g}"
             + (f", failing {', '.join(m.failed)}" if m.failed else "") for m in result.groups]
    w = result.widened
    if not result.default_gate:  # the failing images fail only by a share of elements: the config carries it
        parts.append(f"default tolerances fail; max_mismatch={w.max_mismatch:g}, carried by the generated config, "
                     + ("passes" if w.passes else "still fails") if w else "default tolerances fail")
    b = result.below_minimum
    parts.append(f"below {MIN_SIDE} px (not in the verdict): {b.verdict.value}, max {b.pixel_max:.3g}"
                 + (f", failing {', '.join(f.split('_')[-1][:-4] for f in b.failed)}" if b.failed else ""))
    return Outcome(result.verdict.value).value, shown, "; ".join(parts)


def _step(cfg: dict) -> str:
    keys = ("size", "longest", "interpolation", "fill", "mean", "std")
    return cfg["type"] + "".join(f" {k}={v}" for k, v in cfg.items() if k in keys)


def scan(data: dict, limit: int | None) -> None:
    """Measure the transforms ``data`` has not measured yet, largest groups first, writing the JSON and the
    page after each one: an interrupted scan resumes where it stopped."""
    from parity.config.load import SAMPLE_IMAGES
    from parity.suggest.verdict import verdict_images

    done = {(r["library"], json.dumps(r["key"], sort_keys=True)): r for r in data["rows"]
            if r["outcome"] != Outcome.PENDING.value}
    todo = [("timm", key, names) for key, names in timm_groups().items()]
    todo += [("torchvision", key, names) for key, names in torchvision_groups().items()]
    todo.sort(key=lambda t: -len(t[2]))
    data["rows"] = [done.get((library, key)) or dict(library=library, key=json.loads(key), checkpoints=names,
                                                     outcome=Outcome.PENDING.value, transform="-", measured="-")
                    for library, key, names in todo]
    pending = [(i, r) for i, r in enumerate(data["rows"]) if r["outcome"] == Outcome.PENDING.value][:limit]
    with tempfile.TemporaryDirectory(prefix="parity-timm-coverage-") as folder:  # removed however the run ends
        tmp = Path(folder)
        images, below = verdict_images(tmp / "images", SAMPLE_IMAGES)
        with ProcessPoolExecutor(max_workers=1, max_tasks_per_child=GROUPS_PER_PROCESS,
                                 mp_context=get_context("spawn")) as pool:
            for i, row in pending:
                if "preset" in row["key"]:
                    outcome, shown, detail = (Outcome.UNSUPPORTED.value, row["key"]["preset"],
                                              "its preset is not ImageClassification (resize, crop, normalize)")
                else:
                    outcome, shown, detail = pool.submit(measure, row["library"], row["checkpoints"][0],
                                                         json.dumps(row["key"], sort_keys=True), str(tmp / f"g{i}"),
                                                         images, below).result()
                row.update(outcome=outcome, transform=shown, measured=detail)
                write(data)
                print(f"{len(row['checkpoints']):4d} {outcome:12s} {row['library']} {row['checkpoints'][0]}: {detail}",
                      flush=True)


def write(data: dict) -> None:
    DATA.write_text(json.dumps(data, indent=1) + "\n")
    PAGE.write_text(render(data) + "\n")


def render(data: dict) -> str:
    from parity.suggest.verdict import BELOW_MINIMUM, GENERATED, LARGE, MIN_SIDE

    sizes = ", ".join(f"{h}×{w}" for h, w in GENERATED)
    text = [
        "# `parity suggest` coverage of timm checkpoints and torchvision weights", "",
        "Regenerated by `python scripts/suggest_coverage_timm.py` "
        f"(timm {data['versions']['timm']}, torchvision {data['versions']['torchvision']}): every checkpoint of "
        "`timm.list_pretrained()`, its eval transform resolved as `parity suggest timm::NAME` resolves it "
        "(timm's default, the training input size), and the weights of every torchvision classification model. "
        "Checkpoints whose data configs are equal (input_size, crop_pct, crop_mode, interpolation, mean, std: "
        "what `timm.data.create_transform(is_training=False)` reads) share one eval transform, and so do "
        "torchvision presets with equal sizes, interpolation, mean and std: each distinct transform is "
        "generated and given the verdict `parity suggest` gives (`parity/suggest/verdict.py`) once, through the "
        "reference of its first checkpoint, and counted for every checkpoint that shares it. The images are "
        f"`parity suggest`'s: the bundled samples, generated noisy gradients ({sizes}) and mosaics of the "
        f"samples ({', '.join(f'{h}×{w}' for h, w in LARGE)}). Images with a side under {MIN_SIDE} px "
        f"({', '.join(f'{h}×{w}' for h, w in BELOW_MINIMUM)}) are measured and reported apart, not in the "
        "verdict.", "",
        "*exact*: within 1 uint8 level on every image; *approximate*: within the default tolerances, with the "
        "measured maximum (levels, before normalization); *mismatch*: fails them on some image, and nothing is "
        "claimed; *unsupported*: a step has no generated equivalent (the reason is given). Each claim is the "
        "measurement beside it: `tests/test_suggest_timm.py` checks that no row with a failing image is called "
        "exact or approximate, that every exact row's maxima are within 1 level, and measures one group again.", ""]
    for library in ("timm", "torchvision"):
        rows = [r for r in data["rows"] if r["library"] == library]
        counts = Counter()
        for r in rows:
            counts[r["outcome"]] += len(r["checkpoints"])
        total = sum(counts.values())
        measured = total - counts[Outcome.PENDING.value]
        matched = counts["exact"] + counts["approximate"]
        pending = sum(r["outcome"] == Outcome.PENDING.value for r in rows)
        text += [f"## {library}", "",
                 f"{'Checkpoints' if library == 'timm' else 'Weights'}: {total} in {len(rows)} distinct eval "
                 "transforms; " + ", ".join(f"{o.value}: {counts[o.value]}" for o in Outcome) + ".", "",
                 f"Exact + approximate: {matched} of {measured} measured ({100 * matched / max(measured, 1):.1f} %)"
                 + (f"; {pending} transforms are not measured yet: the scan stopped before them, and the next run "
                    "of the script resumes there." if pending else ".")
                 + f" {sum(len(r['checkpoints']) for r in rows if 'carried by the generated config' in r['measured'])}"
                 " of the approximate ones fail the default tolerances on some verdict image only by the share of "
                 "elements beyond 5 levels, and the generated config carries the `max_mismatch` that passes them.",
                 "",
                 "| checkpoints | eval transform | verdict | measured (levels: max / worst image mean) |",
                 "| --- | --- | --- | --- |"]
        for r in rows:
            names = r["checkpoints"]
            example = names[0] + (f" (+{len(names) - 1})" if len(names) > 1 else "")
            text.append(f"| {example} | {r['transform']} | {r['outcome']} | {r['measured'].replace('|', '/')} |")
        text.append("")
    return "\n".join(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render", action="store_true", help="rewrite the page from the JSON, measuring nothing")
    parser.add_argument("--limit", type=int, default=None, help="measure N more transforms, then stop")
    args = parser.parse_args(argv)
    import timm
    import torchvision

    versions = dict(timm=timm.__version__, torchvision=torchvision.__version__.split("+")[0])
    data = json.loads(DATA.read_text()) if DATA.is_file() else {}
    if args.render:
        write(data)
    else:  # measurements of other library versions are not reused
        scan(data if data.get("versions") == versions else dict(versions=versions, rows=[]), args.limit)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
