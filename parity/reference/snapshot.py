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
import io
import json
import os
import shutil
import threading
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity.config.sections import ModelSection, ReferenceSection
from parity.errors import ParitySnapshotError
from parity.reference.protocol import Reference, RefStage

FORMAT, SCHEMA = "parity-snapshot", 1
MANIFEST = "manifest.json"
_VERSIONED = ("parity", "mmpretrain", "mmcv", "mmcv-lite", "mmengine", "torch", "torchvision", "numpy", "Pillow",
              "opencv-python", "opencv-python-headless")


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
    if model and model.reference_model:
        identity.update(model_config=model.config, checkpoint=model.checkpoint,
                        checkpoint_sha256=local_sha(model.checkpoint))
    return json.loads(json.dumps(identity, default=repr))  # as the manifest stores it (tuples as lists)


def _identity_differences(recorded: dict, current: dict) -> list[str]:
    """The fields on which two identities disagree; a hash counts only where both sides could compute it."""
    names = {"config": "reference.config", "config_sha256": "the content of reference.config",
             "test_pipeline": "reference.test_pipeline", "data_preprocessor": "reference.data_preprocessor",
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
    if manifest.get("schema") != SCHEMA:
        raise ParitySnapshotError(f"{path}: snapshot schema {manifest.get('schema')!r}, this parity reads schema "
                                  f"{SCHEMA}: write the snapshot again with this parity version")
    return manifest


def recorded_reference(folder: Path, config_path: Path, reference: ReferenceSection, model: ModelSection | None):
    """For the config loader: (source, test_pipeline, data_preprocessor, has_logits) of a snapshot, after
    refusing one recorded from another reference than the one ``reference``/``model`` name."""
    manifest = read_manifest(folder)
    if reference.config or reference.test_pipeline or reference.data_preprocessor:
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


def _versions() -> dict:
    from importlib import metadata

    found = {}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


@dataclass(frozen=True)
class SnapshotWritten:
    folder: Path
    images: int
    bytes: int
    seconds: float


def write_snapshot(config, out: Path, *, progress: Callable[[str], None] | None = None) -> SnapshotWritten:
    """Run the live reference (and reference network) on every image of ``config`` and record it in ``out``.

    Images stream through a thread pool a batch at a time, so memory does not grow with their number; the
    folder is written beside ``out`` and renamed into place, so a failed run leaves no half snapshot.
    """
    import time

    from parity.images import check_image, image_ids
    from parity.reference.mmpretrain import ReferencePipeline, one_torch_thread

    start = time.perf_counter()
    from parity.outputs.files import fresh_folder, publish

    out = Path(out).resolve()
    work = fresh_folder(out, MANIFEST, "--out")
    try:
        for path in dict.fromkeys(config.images):
            check_image(path)
        reference = ReferencePipeline(config.test_pipeline, config.data_preprocessor, source=config.reference_source)
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
            save_arrays(partial, arrays)
            os.replace(partial, work / "images" / f"{sha}.npz")
            height, width = run[0].array.shape[:2]
            return dict(id=image, path=os.path.relpath(path, config.base_dir), sha256=sha, bytes=path.stat().st_size,
                        height=height, width=width, file=f"images/{sha}.npz", stages=meta)

        items = list(zip(config.images, image_ids(config.images)))
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
        _write_manifest(work, config, reference, stages, classifier is not None)
        entries_file.unlink()
        size = sum(f.stat().st_size for f in work.rglob("*") if f.is_file())
        publish(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return SnapshotWritten(out, len(items), size, time.perf_counter() - start)


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An .npz (np.load reads it), compressed by encoding rather than by deflate, and exact:

    - an array equal to an earlier one (MMPretrain's NumpyToPIL/PILToNumpy steps copy their input) is
      stored once and named in ``_encoding``;
    - a float (C, H, W) array with at most 256 distinct values per channel (the model input normalized
      from 8-bit pixels, a colour stage in float) is stored as a uint8 index into a per-channel table: 4x.

    Members are not deflated: deflate (level 1) saved a further 35% but made reading a snapshot slower
    than running MMPretrain's own steps again (docs/benchmarks.md); CI artifact uploads compress anyway.
    """
    encoding: list[str] = []
    seen: dict[tuple, str] = {}
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            array = np.ascontiguousarray(array)
            key = (array.dtype.str, array.shape, hashlib.sha1(array.data).digest())
            if key in seen:
                encoding.append(f"{name}:same:{seen[key]}")
                continue
            seen[key] = name
            palette = _palette(array)
            if palette is None:
                _write_member(archive, name, array)
            else:
                encoding.append(f"{name}:palette:")
                _write_member(archive, f"{name}.index", palette[0])
                _write_member(archive, f"{name}.table", palette[1])
        _write_member(archive, "_encoding", np.array(encoding, dtype=str))


def _palette(array: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(uint8 index, per-channel table) that give back ``array`` exactly, or None."""
    if array.dtype.kind != "f" or array.ndim != 3:
        return None
    tables, indices = [], []
    for channel in array:
        values, index = np.unique(channel, return_inverse=True)
        if len(values) > 256:
            return None
        tables.append(np.resize(values, 256))
        indices.append(index.reshape(channel.shape).astype(np.uint8))
    return np.stack(indices), np.stack(tables)


def _write_member(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue())


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """What :func:`save_arrays` wrote, every array in its original dtype and shape."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    for entry in arrays.pop("_encoding").tolist():
        name, kind, other = entry.split(":", 2)
        if kind == "same":
            arrays[name] = arrays[other]
        else:
            index, table = arrays.pop(f"{name}.index"), arrays.pop(f"{name}.table")
            arrays[name] = np.stack([t[i] for t, i in zip(table, index)])
    return arrays


def _reference_network(config):
    model = config.model
    if not model or not model.reference_model or not config.model_cfg:
        return None
    from parity.serving.backends import TorchClassifier

    checkpoint = (config.base_dir / model.checkpoint).resolve() if model.checkpoint else None
    return TorchClassifier(config.model_cfg, checkpoint, config.reference_source)


def _write_manifest(work: Path, config, reference, stages: list[dict], logits: bool) -> None:
    head = dict(
        format=FORMAT, schema=SCHEMA, created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        parity_config=config.path.name, source=config.reference_source,
        reference=reference_identity(config.path, config.reference, config.model),
        test_pipeline=reference.pipeline_cfg, data_preprocessor=reference.data_preprocessor_cfg,
        preprocessor=dict(to_rgb=reference.to_rgb, normalizes=reference.normalizes,
                          mean=None if reference.mean is None else reference.mean.tolist(),
                          std=None if reference.std is None else reference.std.tolist()),
        stages=stages, logits=logits, tolerances=config.tolerances.entries, versions=_versions())
    text = json.dumps(head, indent=1, default=repr)
    # the image list is streamed in from entries.jsonl rather than held in memory
    with open(work / MANIFEST, "w") as manifest, open(work / "entries.jsonl") as entries:
        manifest.write(text[:-2] + ',\n "images": [\n')
        for i, line in enumerate(entries):
            manifest.write(("  " if i == 0 else ",\n  ") + line.rstrip("\n"))
        manifest.write("\n ]\n}\n")


class Snapshot(Reference):
    """A recorded reference: what :class:`~parity.reference.mmpretrain.ReferencePipeline` gives, read from disk."""

    kind = "mmpretrain"  # the library whose stages were recorded

    def __init__(self, folder: Path, images: list[Path], base_dir: Path):
        self.folder = folder
        manifest = read_manifest(folder)
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
        self._files = self._match(manifest, images, base_dir)

    def _match(self, manifest: dict, images: list[Path], base_dir: Path) -> dict:
        """{image path: its .npz}, refusing images the snapshot lacks or that changed since it was written."""
        by_sha = {e["sha256"]: e for e in manifest["images"]}
        by_name = {k: e for e in manifest["images"] for k in (e["path"], e["id"])}
        files = {}
        for path in images:
            sha = file_sha256(path)
            entry = by_sha.get(sha)
            if entry is None:
                recorded = by_name.get(os.path.relpath(path, base_dir)) or by_name.get(path.stem)
                if recorded is not None:
                    raise ParitySnapshotError(
                        f"{path}: changed since the snapshot was written (sha256 {sha[:12]}…, recorded "
                        f"{recorded['sha256'][:12]}… on {manifest['created']}): run `parity snapshot` again")
                raise ParitySnapshotError(
                    f"{path}: not in the snapshot {self.folder} ({len(manifest['images'])} images recorded from "
                    f"{manifest['parity_config']}): run `parity snapshot` again with this image")
            files[path] = self.folder / entry["file"]
        return files

    def run(self, path: Path) -> list[RefStage]:
        """Every recorded stage of one image; the model input carries the recorded logits."""
        file = self._files.get(path) or self._match(read_manifest(self.folder), [path], self._base_dir)[path]
        try:
            data = load_arrays(file)
            arrays = [data[f"stage{i}"] for i in range(len(self.stages))]
            logits = data["logits"] if self.logits else None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ParitySnapshotError(f"{file}: truncated or corrupt snapshot file ({type(exc).__name__}: {exc}); "
                                      "run `parity snapshot` again") from None
        last = len(arrays) - 1
        return [RefStage(s["name"], a, s["layout"], s["channels"], s["pixels"], logits if i == last else None)
                for i, (s, a) in enumerate(zip(self.stages, arrays))]
