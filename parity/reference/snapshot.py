"""Reference snapshots: the MMPretrain reference recorded once in the training environment, and compared
against where only the serving stack lives (DALI, ONNX Runtime/TensorRT, Triton; no torch, no MMPretrain).

A snapshot is a folder::

    manifest.json         format and schema version; the reference as the parity config named it (to refuse
                          a snapshot of another reference); the resolved test_pipeline and data_preprocessor;
                          mean/std/to_rgb; each stage's name, layout, channel order and value space; the
                          tolerances; package versions; one entry per image (id, path, sha256, bytes, size)
    images/<sha256>.npz   every stage of one image exactly (uint8 stays uint8, the model input float32) and,
                          when a model was configured, the reference network's logits (:func:`save_arrays`)

It plays the reference's part in :class:`parity.run.harness.Harness` (:class:`Snapshot` has the attributes of
:class:`parity.reference.mmpretrain.ReferencePipeline`), so verdicts, causes and reports are the live run's.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import stat
import threading
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import numpy as np

from parity.config.sections import ModelSection, ReferenceSection
from parity.errors import ParitySnapshotError, ParityUsageError
from parity.reference.protocol import Reference, RefStage, versions
from parity.reference.snapshot_file import check_sizes, decoder, load_arrays, save_arrays

FORMAT, SCHEMA = "parity-snapshot", 2
READS = (1, 2)  # schema 1: every stage stored (same/palette encodings only), still read
MANIFEST = "manifest.json"
_LAYOUTS, _CHANNELS = {"HWC", "CHW"}, {"RGB", "BGR"}
_MANIFEST_FIELDS = {"created": str, "parity_config": str, "source": str, "reference": dict, "test_pipeline": list,
                    "data_preprocessor": (dict, None), "preprocessor": dict, "stages": list, "logits": bool,
                    "images": list}
_PREPROCESSOR = {"to_rgb": bool, "normalizes": bool, "mean": (list, None), "std": (list, None)}
_STAGE = {"name": str, "layout": _LAYOUTS, "channels": _CHANNELS, "pixels": bool}
_ENTRY = {"id": str, "path": str, "sha256": str, "file": str}
_VERSIONED = ("parity", "mmpretrain", "mmcv", "mmcv-lite", "mmengine", "timm", "torch", "torchvision", "numpy",
              "Pillow", "opencv-python", "opencv-python-headless")
KINDS = ("mmpretrain", "timm", "torchvision")  # the references a snapshot can record


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def reference_identity(config_path: Path, reference: ReferenceSection, model: ModelSection | None) -> dict:
    """What names the reference in a parity config, computed without MMPretrain: the config as written and
    the sha256 of a local config file, inline overrides, and the reference network's config and checkpoint.
    ``None`` marks what cannot be known here (a package config, a checkpoint not present)."""

    def local_sha(spec: str | None) -> str | None:
        if not spec or "::" in spec:
            return None
        target = config_path.parent / spec
        return file_sha256(target) if target.is_file() else None

    identity = {"config": reference.config, "config_sha256": local_sha(reference.config),
                "test_pipeline": reference.test_pipeline,
                "data_preprocessor": reference.data_preprocessor}
    if reference.library != "mmpretrain":  # a timm checkpoint or torchvision preset, and its overrides
        identity.update(timm=reference.timm, torchvision=reference.torchvision,
                        eval_transform=reference.eval_transform_args())
    if model and model.reference_model:
        identity.update(model_config=model.config, checkpoint=model.checkpoint,
                        checkpoint_sha256=local_sha(model.checkpoint))
    return json.loads(json.dumps(identity, default=repr))  # as the manifest stores it (tuples as lists)


def _identity_differences(recorded: dict, current: dict) -> list[str]:
    """The fields on which two identities disagree; a hash counts only where both sides could compute it."""
    names = {"config": "reference.config", "config_sha256": "the content of reference.config",
             "test_pipeline": "reference.test_pipeline", "data_preprocessor": "reference.data_preprocessor",
             "timm": "reference.timm", "torchvision": "reference.torchvision",
             "eval_transform": "the reference's overrides (use_test_size, input_size, crop_pct, ...)",
             "model_config": "model.config", "checkpoint": "model.checkpoint",
             "checkpoint_sha256": "the content of model.checkpoint"}
    out = []
    for key, label in names.items():
        if key not in current or (key.endswith("sha256") and (recorded.get(key) is None or current[key] is None)):
            continue
        if recorded.get(key) != current[key]:
            shown = ("(another file)" if key.endswith("sha256")
                     else f"{recorded.get(key)!r} in the snapshot, {current[key]!r} in the config")
            out.append(f"{label}: {shown}")
    return out


def read_manifest(folder: Path) -> dict:
    """The manifest of a snapshot folder, checked for format and schema."""
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ParitySnapshotError(f"reference snapshot not found: {folder} (write one with `parity snapshot CFG "
                                  f"--out {folder}` in the training environment)")
    if not path.is_file():
        raise ParitySnapshotError(f"{folder}: not a parity snapshot (no {MANIFEST}); write one with "
                                  f"`parity snapshot CFG --out {folder}`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParitySnapshotError(f"{path}: truncated or corrupt snapshot manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ParitySnapshotError(f"{path}: not a parity snapshot manifest (format {FORMAT!r} expected)")
    if manifest.get("schema") not in READS:
        raise ParitySnapshotError(f"{path}: snapshot schema {manifest.get('schema')!r}, this parity reads schemas "
                                  f"{', '.join(map(str, READS))}: write the snapshot again with this parity version")
    _check_manifest(path, manifest)
    return manifest


def _check_manifest(path: Path, manifest: dict) -> None:
    """Refuse a manifest whose fields are not what :func:`write_snapshot` writes, whose stages are not those
    of its own test_pipeline and data preprocessor, or whose image files lie outside the snapshot folder."""
    from parity.results.fields import require, require_value

    try:
        require(path, "", manifest, _MANIFEST_FIELDS)
        pre = manifest["preprocessor"]
        require(path, "preprocessor", pre, _PREPROCESSOR)
        for key in ("mean", "std"):
            if pre["normalizes"] and (pre[key] is None or len(pre[key]) != 3):
                raise ParitySnapshotError(f"{path}: preprocessor.{key}: expected 3 numbers, one per channel, where "
                                          f"normalizes is true; found {pre[key]!r}")
            for i, value in enumerate(pre[key] or ()):
                require_value(path, f"preprocessor.{key}[{i}]", value, Real)
        for i, step in enumerate(manifest["test_pipeline"]):
            require(path, f"test_pipeline[{i}]", step, {"type": str})
        for i, stage in enumerate(manifest["stages"]):
            require(path, f"stages[{i}]", stage, _STAGE)
        for i, entry in enumerate(manifest["images"]):
            require(path, f"images[{i}]", entry, _ENTRY)
            file = Path(entry["file"])
            if file.is_absolute() or not file.parts or any(part in ("..", ".") for part in file.parts):
                raise ParitySnapshotError(f"{path}: images[{i}].file: {entry['file']!r} is not a path inside the "
                                          "snapshot folder")
    except ParitySnapshotError:
        raise
    except ParityUsageError as exc:
        raise ParitySnapshotError(f"{exc}: not a manifest `parity snapshot` wrote; write the snapshot again") from None
    names = [s["name"] for s in manifest["stages"]]
    kind = manifest.get("kind", "mmpretrain")
    if kind not in KINDS:
        raise ParitySnapshotError(f"{path}: kind: {kind!r} is not a reference parity records ({', '.join(KINDS)})")
    steps = [step["type"] for step in manifest["test_pipeline"]]
    # MMPretrain's steps each give a stage, its data preprocessor the rest; timm's and torchvision's last step
    # (ToTensor and Normalize) gives the model input
    expected = steps + ["to_rgb"] * (pre["to_rgb"] and pre["normalizes"]) if kind == "mmpretrain" else steps[:-1]
    if names != expected + ["model_input"]:
        raise ParitySnapshotError(
            f"{path}: stages: {len(names)} stages ({', '.join(names)}) where its test_pipeline and data "
            f"preprocessor give {len(expected) + 1} ({', '.join(expected + ['model_input'])}): the snapshot does not "
            "match its pipeline; write the snapshot again")


def shard_of_sha(sha256: str, count: int) -> int:
    """The 1-based shard among ``count`` of an image whose file has this SHA-256 (``--shard K/N``)."""
    return int(sha256[:16], 16) % count + 1


def _recorded_shard(folder: Path, manifest: dict) -> tuple[int, int] | None:
    """(K, N) of the shard a snapshot holds, or None when it holds every image."""
    recorded = manifest.get("shard")
    if recorded is None:
        return None
    match = re.fullmatch(r"(\d+)/(\d+)", recorded) if isinstance(recorded, str) else None
    if match is None or not 1 <= int(match[1]) <= int(match[2]):
        raise ParitySnapshotError(f"{folder / MANIFEST}: shard: {recorded!r} is not K/N; write the snapshot again")
    return int(match[1]), int(match[2])


def recorded_shard(folder: Path) -> str | None:
    """For ``parity check --reference DIR --shard K/N``: the shard the snapshot in ``folder`` holds (None: all)."""
    shard = _recorded_shard(folder, read_manifest(folder))
    return shard and f"{shard[0]}/{shard[1]}"


def recorded_reference(folder: Path, config_path: Path, reference: ReferenceSection, model: ModelSection | None):
    """For the config loader: (source, test_pipeline, data_preprocessor, has_logits) of a snapshot, after
    refusing one recorded from another reference than the one ``reference``/``model`` name."""
    manifest = read_manifest(folder)
    if reference.config or reference.test_pipeline or reference.data_preprocessor or reference.library != "mmpretrain":
        current = reference_identity(config_path, reference, model)
        recorded = manifest["reference"]
        if "model_config" not in recorded:  # recorded without a reference network: nothing to compare there
            current = {k: v for k, v in current.items() if k not in ("model_config", "checkpoint", "checkpoint_sha256")}
        differences = _identity_differences(recorded, current)
        if differences:
            raise ParitySnapshotError(
                f"{folder}: recorded from another reference than {config_path.name} names ("
                f"{'; '.join(differences)}): run `parity snapshot {config_path.name} --out {folder}` again")
    return (f"snapshot {folder} of {manifest['source']}", manifest["test_pipeline"], manifest["data_preprocessor"],
            manifest["logits"])


@dataclass(frozen=True)
class SnapshotWritten:
    folder: Path
    images: int
    bytes: int
    seconds: float


def write_snapshot(config, out: Path, *, progress: Callable[[str], None] | None = None,
                   shard=None) -> SnapshotWritten:
    """Run the live reference (and reference network) on every image of ``config`` (of ``shard``, a
    :class:`parity.run.shard.Shard`, when given) and record it in ``out``.

    Images stream through a thread pool a batch at a time, so memory does not grow with their number; the
    folder is written beside ``out`` and renamed into place, so a failed run leaves no half snapshot.
    """
    import time

    from parity.images import check_image, image_ids
    from parity.reference import open_reference
    from parity.reference.mmpretrain import one_torch_thread

    start = time.perf_counter()
    from parity.outputs.files import fresh_folder, publish

    out = Path(out).resolve()
    work = fresh_folder(out, MANIFEST, "--out")
    try:
        items = [(p, i) for p, i in zip(config.images, image_ids(config.images)) if shard is None or shard.selects(p)]
        for path in dict.fromkeys(p for p, _ in items):
            check_image(path)
        reference = open_reference(config)  # the live one: a config loaded with live=True names no snapshot
        classifier = _reference_network(config)
        (work / "images").mkdir()
        stages: list[dict] = []

        def record(item: tuple[Path, str]) -> dict:
            path, image = item
            run = reference.run(path)
            meta = [dict(name=s.name, layout=s.layout, channels=s.channels, pixels=s.pixels) for s in run]
            sha = file_sha256(path)
            arrays = {f"stage{i}": s.array for i, s in enumerate(run)}
            if classifier is not None:
                arrays["logits"] = classifier.infer(run[-1].array[None].astype(np.float32))[0]
            # named by content: the same image twice is one file (written whole, then renamed into place)
            partial = work / "images" / f"{sha}.{threading.get_ident()}.partial.npz"
            save_arrays(partial, arrays, image=path, channels=run[0].channels, mean=reference.mean, std=reference.std)
            os.replace(partial, work / "images" / f"{sha}.npz")
            height, width = run[0].array.shape[:2]
            return dict(id=image, path=os.path.relpath(path, config.base_dir), sha256=sha, bytes=path.stat().st_size,
                        height=height, width=width, file=f"images/{sha}.npz", stages=meta)

        step = config.dali.batch_size
        workers = max(1, min(step, len(os.sched_getaffinity(0))))
        entries_file = work / "entries.jsonl"  # per-image entries stream to disk, the manifest reads them back
        with one_torch_thread(), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="parity-snapshot") as pool, \
                open(entries_file, "w") as entries:
            for index in range(0, len(items), step):
                for entry in pool.map(record, items[index:index + step]):
                    meta = entry.pop("stages")
                    stages = stages or meta
                    if meta != stages:
                        raise RuntimeError(f"stage layout of {entry['id']} differs from the first image's: {meta}")
                    entries.write(json.dumps(entry) + "\n")
                    if progress:
                        progress(entry["id"])
        if not stages and config.images:  # a shard without images still records what the stages are
            stages = [dict(name=s.name, layout=s.layout, channels=s.channels, pixels=s.pixels)
                      for s in reference.run(config.images[0])]
        _write_manifest(work, config, reference, stages, classifier is not None, shard)
        entries_file.unlink()
        size = sum(f.stat().st_size for f in work.rglob("*") if f.is_file())
        publish(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return SnapshotWritten(out, len(items), size, time.perf_counter() - start)


def _reference_network(config):
    model = config.model
    if not model or not model.reference_model or not config.model_cfg:
        return None
    from parity.serving.backends import reference_network

    checkpoint = (config.base_dir / model.checkpoint).resolve() if model.checkpoint else None
    return reference_network(config.model_cfg, checkpoint, config.reference_source)


def _write_manifest(work: Path, config, reference, stages: list[dict], logits: bool, shard) -> None:
    head = dict(
        format=FORMAT, schema=SCHEMA, created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        parity_config=config.path.name, source=config.reference_source, kind=reference.kind,
        identity=reference.identity(),
        reference=reference_identity(config.path, config.reference, config.model),
        test_pipeline=reference.pipeline_cfg, data_preprocessor=reference.data_preprocessor_cfg,
        preprocessor=dict(to_rgb=reference.to_rgb, normalizes=reference.normalizes,
                          mean=None if reference.mean is None else reference.mean.tolist(),
                          std=None if reference.std is None else reference.std.tolist()),
        stages=stages, logits=logits, tolerances=config.tolerances.entries, versions=versions(*_VERSIONED),
        decoder=decoder(), shard=shard and str(shard))
    text = json.dumps(head, indent=1, default=repr)
    # the image list is streamed in from entries.jsonl rather than held in memory
    with open(work / MANIFEST, "w") as manifest, open(work / "entries.jsonl") as entries:
        manifest.write(text[:-2] + ',\n "images": [\n')
        for i, line in enumerate(entries):
            manifest.write(("  " if i == 0 else ",\n  ") + line.rstrip("\n"))
        manifest.write("\n ]\n}\n")


class Snapshot(Reference):
    """A recorded reference: what the live reference (MMPretrain, timm, torchvision) gives, read from disk."""

    kind = "mmpretrain"  # the library whose stages were recorded (set from the manifest)

    def __init__(self, folder: Path, images: list[Path], base_dir: Path):
        self.folder = folder
        manifest = read_manifest(folder)
        self.kind = manifest.get("kind", "mmpretrain")
        self._recorded_identity = manifest.get("identity")  # the live reference's (absent in older snapshots)
        self.source = f"snapshot {folder} of {manifest['source']}"
        self.pipeline_cfg = manifest["test_pipeline"]
        self.data_preprocessor_cfg = manifest["data_preprocessor"]
        pre = manifest["preprocessor"]
        self.to_rgb, self.normalizes = pre["to_rgb"], pre["normalizes"]
        self.mean = None if pre["mean"] is None else np.asarray(pre["mean"], np.float64)
        self.std = None if pre["std"] is None else np.asarray(pre["std"], np.float64)
        self.stages = manifest["stages"]
        self.stage_names = [s["name"] for s in self.stages]
        self.logits = manifest["logits"]
        self._base_dir = base_dir
        self.shard = _recorded_shard(folder, manifest)
        self._files = self._match(manifest, images, base_dir)

    def identity(self) -> dict:
        """The live reference's identity as recorded (its resolved config, its library versions), read from here."""
        recorded = self._recorded_identity if isinstance(self._recorded_identity, dict) else {}
        return {**super().identity(), **recorded, "source": self.source}

    def _match(self, manifest: dict, images: list[Path], base_dir: Path) -> dict:
        """{image path: its .npz}, refusing images the snapshot lacks or that changed since it was written."""
        by_sha = {e["sha256"]: e for e in manifest["images"]}
        by_name = {k: e for e in manifest["images"] for k in (e["path"], e["id"])}
        files = {}
        for path in images:
            sha = file_sha256(path)
            entry = by_sha.get(sha)
            if entry is None and self.shard is not None and shard_of_sha(sha, self.shard[1]) != self.shard[0]:
                continue  # another shard's image: refused only if this run asks for it (run())
            if entry is None:
                recorded = by_name.get(os.path.relpath(path, base_dir)) or by_name.get(path.stem)
                if recorded is not None:
                    raise ParitySnapshotError(
                        f"{path}: changed since the snapshot was written (sha256 {sha[:12]}…, recorded "
                        f"{recorded['sha256'][:12]}… on {manifest['created']}): run `parity snapshot` again")
                raise ParitySnapshotError(
                    f"{path}: not in the snapshot {self.folder} ({len(manifest['images'])} images recorded from "
                    f"{manifest['parity_config']}): run `parity snapshot` again with this image")
            files[path] = self._file(entry["file"])
        return files

    def _file(self, name: str) -> Path:
        """A recorded image's .npz: refused when it leaves the snapshot folder (a symlink out) or is not a
        regular file (a FIFO or device would block or never end), without opening it."""
        folder = self.folder.resolve()
        file = (folder / name).resolve()
        if not file.is_relative_to(folder):
            raise ParitySnapshotError(f"{self.folder / name}: leaves the snapshot folder (to {file}); a snapshot's "
                                      "files lie inside it")
        try:
            regular = stat.S_ISREG(os.stat(file).st_mode)
        except OSError as exc:
            raise ParitySnapshotError(f"{self.folder / name}: cannot be read ({exc.strerror}); run `parity "
                                      "snapshot` again") from None
        if not regular:
            raise ParitySnapshotError(f"{self.folder / name}: not a regular file; a snapshot's files are .npz files")
        return file

    def _stage_array(self, file: Path, data: dict, i: int) -> np.ndarray:
        """Stage ``i`` of a loaded .npz, refused unless it is the 3-channel image the manifest says it is."""
        stage, array = self.stages[i], data.get(f"stage{i}")
        channel_axis = 2 if stage["layout"] == "HWC" else 0
        if array is None or array.ndim != 3 or array.shape[channel_axis] != 3 or array.dtype.kind not in "uif":
            found = "missing" if array is None else f"a {array.dtype} array of shape {array.shape}"
            raise ParitySnapshotError(f"{file}: stage{i} ({stage['name']}): {found}, where the manifest records a "
                                      f"3-channel {stage['layout']} image; run `parity snapshot` again")
        return array

    def run(self, path: Path) -> list[RefStage]:
        """Every recorded stage of one image; the model input carries the recorded logits."""
        file = self._files.get(path) or self._match(read_manifest(self.folder), [path], self._base_dir).get(path)
        if file is None:
            shard = f"{self.shard[0]}/{self.shard[1]}" if self.shard else ""
            raise ParitySnapshotError(f"{path}: not in the snapshot {self.folder}, which holds shard {shard} of the "
                                      f"images only: check with --shard {shard}")
        try:
            check_sizes(file)
            data = load_arrays(file, image=path, channels=self.stages[0]["channels"], mean=self.mean, std=self.std)
        except (OSError, ValueError, KeyError, IndexError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ParitySnapshotError(f"{file}: truncated or corrupt snapshot file ({type(exc).__name__}: {exc}); "
                                      "run `parity snapshot` again") from None
        if f"stage{len(self.stages)}" in data:
            raise ParitySnapshotError(f"{file}: holds more stages than the manifest's {len(self.stages)}: the "
                                      "manifest does not match its files; run `parity snapshot` again")
        arrays = [self._stage_array(file, data, i) for i in range(len(self.stages))]
        logits = data.get("logits") if self.logits else None
        if self.logits and (logits is None or logits.ndim != 1 or logits.dtype.kind != "f"):
            raise ParitySnapshotError(f"{file}: logits: missing or not a vector of floats, though the manifest "
                                      "records logits; run `parity snapshot` again")
        last = len(arrays) - 1
        return [RefStage(s["name"], a, s["layout"], s["channels"], s["pixels"], logits if i == last else None)
                for i, (s, a) in enumerate(zip(self.stages, arrays))]
