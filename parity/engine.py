"""The one path from a config to results: load the reference and the DALI pipeline once, stream the
images through both in batches, and compare every aligned stage. pytest, the CLI and the assertions
all call :func:`Harness.run` and so give the same verdicts."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from parity.align import StagePair, align
from parity.compare import StageResult, compare_arrays
from parity.config import ParityConfig
from parity.dali import DaliRunner, open_pipeline
from parity.diagnose import (
    NORMALIZATION_KINDS,
    Cause,
    Diagnosis,
    attribute_causes,
    crop_anchor_fix,
    diagnose_shapes,
    diagnose_value_transform,
    diagnose_values,
    normalization_fix,
    resize_filter_cause,
    spatial_size,
)
from parity.images import check_image, client_input, image_ids
from parity.model import DegenerateResult, ModelCheck, ModelResult
from parity.reference import ReferencePipeline, RefStage, is_geometry_name
from parity.snapshot import Snapshot
from parity.triton import TritonCheck


@dataclass(frozen=True)
class StageView:
    """The two tensors of a stage as they were compared (same layout), kept only for the HTML report."""

    dali: np.ndarray
    reference: np.ndarray
    layout: str  # 'HWC' or 'CHW'
    channels: str | None  # channel order of both, as compared
    pixels: bool  # values are image intensities (else normalized)


@dataclass
class ImageResult:
    """Every stage result of one image, in DALI graph order (plus views when the report asked for them)."""

    image: str
    path: Path
    stages: list[StageResult]
    views: dict = field(default_factory=dict)
    model: ModelResult | None = None
    triton: ModelResult | None = None
    error: str = ""  # why this image could not be checked (its reference or DALI run failed); no stages then

    @property
    def passed(self) -> bool:
        return not self.error and all(self.stages) and all(r is None or bool(r) for r in (self.model, self.triton))

    @property
    def first_failure(self) -> StageResult | None:
        return next((r for r in self.stages if r.status == "failed"), None)

    @property
    def cause_kinds(self) -> tuple[str, ...]:
        """Every cause named along the failing stages, first divergence first (two mistakes, two kinds)."""
        kinds = [k for r in self.stages if r.status == "failed" and r.diagnosis for k in r.diagnosis.kinds]
        return tuple(dict.fromkeys(kinds))


def _to_layout(array: np.ndarray, src: str, dst: str) -> np.ndarray:
    if array.ndim != 3 or src == dst or not src or not dst:
        return array
    return np.transpose(array, [src.index(axis) for axis in dst])


def _guess_layout(array: np.ndarray, layout: str) -> str:
    if layout in ("HWC", "CHW") or array.ndim != 3:
        return layout
    return "HWC" if array.shape[-1] in (1, 3, 4) else "CHW"


class Harness:
    """A loaded parity check: reference pipeline, DALI pipeline and their stage pairing."""

    def __init__(self, config: ParityConfig):
        self.config = config
        self.reference: ReferencePipeline | Snapshot
        if config.snapshot is not None:
            self.reference = Snapshot(config.snapshot, config.images, config.base_dir)
        else:
            self.reference = ReferencePipeline(config.test_pipeline, config.data_preprocessor,
                                               source=config.reference_source)
        dali = config.dali
        self.dali: DaliRunner = open_pipeline(
            pipeline=dali["pipeline"], serialized=dali["serialized"], base_dir=config.base_dir,
            input_name=dali["input_name"], device=dali["device"], batch_size=dali["batch_size"],
            num_threads=dali["num_threads"])
        names = self.reference.stage_names
        self.pairs: list[StagePair] = align(self.dali.stages, self.dali.outputs[0], names,
                                            [is_geometry_name(n) for n in names],
                                            dali["input_format"])
        config.check_tolerance_labels(self.stage_labels)
        self.image_ids = image_ids(config.images)
        self.model: ModelCheck | None = None
        if config.model:
            self.model = ModelCheck(config.model, model_cfg=config.model_cfg, source=config.reference_source,
                                    base_dir=config.base_dir, recorded=config.snapshot is not None)
        self.repository = None  # the served repository against what is tested (triton::repository)
        if config.triton and config.triton["repository"]:
            from parity.triton_repository import check_repository

            onnx = config.model["onnx"] if config.model else None
            self.repository = check_repository((config.base_dir / config.triton["repository"]).resolve(),
                                               tested=self.dali.stages, input_name=self.dali.input_name,
                                               onnx=(config.base_dir / onnx).resolve() if onnx else None)
        self._final_index = next(i for i, p in enumerate(self.pairs) if p.final)
        self._final = self.pairs[self._final_index]

    @property
    def stage_labels(self) -> list[str]:
        return [p.label for p in self.pairs]

    def run(self, images: list[Path] | None = None, *, keep_views=None) -> Iterator[ImageResult]:
        """Yield one :class:`ImageResult` per image, in order, a DALI batch at a time.

        While one batch is compared, the next is prepared in a worker thread, its images run through the
        reference by a pool of threads (one per CPU core): decoding, resizing and the comparisons spend
        most of their time in native code that releases the GIL. Only the batch in hand and the one being
        prepared are held in memory; ``keep_views(image_id)`` says which images keep their compared
        tensors (for the HTML report).
        """
        paths = list(images) if images is not None else self.config.images
        ids = dict(zip(self.config.images, self.image_ids))
        for path in dict.fromkeys(paths):  # each file once, before any work: a bad image stops the run early
            check_image(path)
        step = self.config.dali["batch_size"]
        chunks = [paths[start:start + step] for start in range(0, len(paths), step)]
        triton = TritonCheck(self.config.triton, self.config.base_dir, self.model,
                             self.repository) if self.config.triton else None
        workers = max(1, min(step, len(os.sched_getaffinity(0))))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="parity-prepare") as pool, \
                ThreadPoolExecutor(max_workers=workers, thread_name_prefix="parity-reference") as references, \
                (triton or contextlib.nullcontext()):
            prepare = functools.partial(self._prepare, references)
            pending = pool.submit(prepare, chunks[0]) if chunks else None
            for index, chunk in enumerate(chunks):
                assert pending is not None
                refs, outs, feeds = pending.result()
                pending = pool.submit(prepare, chunks[index + 1]) if index + 1 < len(chunks) else None
                for path, ref, out, feed in zip(chunk, refs, outs, feeds):
                    image = ids.get(path, path.stem)
                    if isinstance(ref, Exception) or isinstance(out, Exception):
                        yield ImageResult(image, path, [], error=str(ref if isinstance(ref, Exception) else out))
                        continue
                    views: dict | None = {} if keep_views and keep_views(image) else None
                    stages = self.compare(image, ref, out, views)
                    served = triton.check(image, feed, ref[-1], stages) if triton else None
                    yield ImageResult(image, path, stages, views or {}, self._run_model(image, ref, out, stages),
                                      served)

    def _run_model(self, image: str, ref: list[RefStage], out, stages) -> ModelResult | None:
        if self.model is None:
            return None
        actual = out[self._final.dali.name]
        dali_input = self._chw(self._final.dali.name, actual) if actual.ndim == 3 else None
        return self.model.check(image, ref[-1], dali_input, stages)

    def _layout(self, name: str, array: np.ndarray) -> str:
        return _guess_layout(array, self.dali.layouts.get(name, ""))

    def _chw(self, name: str, array: np.ndarray) -> np.ndarray:
        """A DALI output as a (C,H,W) view."""
        return _to_layout(array, self._layout(name, array), "CHW")

    def degenerate(self) -> DegenerateResult | None:
        """The cross-image collapse check over every image run so far (None without a model section)."""
        return self.model.degenerate() if self.model else None

    def _prepare(self, references: ThreadPoolExecutor, chunk: list[Path]):
        """(reference stages, DALI outputs, client input) per image of a chunk; an image whose reference or
        DALI run fails gets its exception in place of its results, and the others go on."""
        refs = list(references.map(_or_error(self.reference.run), chunk))
        feed = [None if isinstance(r, Exception) else
                client_input(r[0].array, r[0].channels, p, self.config.dali["input_format"]) for r, p in zip(refs, chunk)]
        outs = iter(self.dali.run_each([f for f in feed if f is not None], [str(p) for p, f in zip(chunk, feed)
                                                                            if f is not None]))
        return refs, [None if f is None else next(outs) for f in feed], feed

    def compare(self, image: str, ref: list[RefStage], out: dict[str, np.ndarray], views=None) -> list[StageResult]:
        """Compare every stage pair of one image; ``views``, when a dict, receives the compared tensors."""
        results = [self._compare_pair(image, pair, ref, out, views) for pair in self.pairs]
        return _mark_first_divergence(self._with_own_value_causes(results, ref, out), self.config.path)

    def _with_own_value_causes(self, results: list[StageResult], ref: list[RefStage], out) -> list[StageResult]:
        """When the geometry diverged (before or at the model input), a normalization or channel mistake is
        hidden behind it in the comparison with the reference; measure it from DALI's own last pixel stage."""
        index = self._final_index
        final = results[index]
        named = set(final.diagnosis.kinds) if final.diagnosis else set()
        if final.status != "failed" or named & (NORMALIZATION_KINDS | {"channel_order", "value_scale"}):
            return results
        own = self._own_value_causes(ref, out)
        if not own:
            return results
        kinds = {c.kind for c in own}
        rest = tuple(c for c in (final.diagnosis.causes if final.diagnosis else ()) if c.kind not in kinds)
        results = list(results)
        results[index] = dataclasses.replace(final, diagnosis=Diagnosis(own + rest))
        return results

    def _own_value_causes(self, ref: list[RefStage], out) -> tuple:
        actual = out[self._final.dali.name]
        source = next((p for p in reversed(self.pairs[:self._final_index]) if p.pixels and p.channels
                       and out[p.dali.name].ndim == 3), None)
        if actual.ndim != 3 or source is None:
            return ()
        final = self._chw(self._final.dali.name, actual)
        pixels = self._chw(source.dali.name, out[source.dali.name])
        mean, std = self.reference.mean, self.reference.std
        ideals = []
        op, args = self._final.dali.op, self._final.dali.args
        for window in _mirrored(_crop_windows(pixels, final.shape, op, args), op, args):
            window = window.astype(np.float64)
            if ref[-1].channels and source.channels != ref[-1].channels:
                window = window[::-1]  # the model's channel order, as the reference's model input has it
            ideals.append(window if mean is None or std is None else (window - mean[:, None, None]) / std[:, None, None])
        causes = diagnose_value_transform(final.astype(np.float64), ideals, mean=mean, std=std,
                                          to_rgb=self.reference.to_rgb)
        lead = (f"Measured from DALI's own {source.label} output to its model input (same geometry, so the "
                "divergence before it does not hide this): ")
        return tuple(self._normalization_fix(Cause(c.kind, lead + c.sentence, c.numbers), ref[-1].channels)
                     for c in causes)

    def _normalization_fix(self, cause: Cause, model_channels: str) -> Cause:
        normalizers, after = self._normalizers
        return normalization_fix(cause, normalizers, self.reference.mean, self.reference.std, model_channels, after)

    @functools.cached_property
    def _normalizers(self) -> tuple[list[tuple], str]:
        """(op, where, args, channels) of the normalizing operators on the data path, and where a missing
        one would go (after the last geometry operator)."""
        normalizers = [(p.dali.op, p.dali.where, p.dali.args, p.channels) for p in self.pairs
                       if p.dali.op in ("CropMirrorNormalize", "Normalize")]
        geometry = [p.dali for p in self.pairs if p.dali.changes_shape and not p.final]
        return normalizers, geometry[-1].where if geometry else ""

    def _compare_pair(self, image: str, pair: StagePair, ref: list[RefStage], out, views) -> StageResult:
        where = pair.dali.where
        if pair.ref_index is None:
            return StageResult(image=image, stage=pair.label, dali_op=where, reference="-", status="skipped",
                               skip_reason=pair.reason)
        target = ref[pair.ref_index]
        actual = out[pair.dali.name]
        layout = self._layout(pair.dali.name, actual)
        common: dict[str, Any] = dict(image=image, stage=pair.label, dali_op=where,
                                      reference=self._describe(pair.ref_index))
        if pair.final:
            if views is not None and actual.ndim == 3:
                views[pair.label] = StageView(_to_layout(actual, layout, "CHW"), target.array, "CHW",
                                              target.channels, target.pixels)
            return self._compare_final(actual, layout, target, common)
        if actual.ndim != 3:
            return StageResult(status="skipped", skip_reason=f"not an image (shape {actual.shape})", **common)
        expected = _to_layout(target.array, target.layout, layout)
        notes = []
        if pair.channels and target.channels and pair.channels != target.channels:
            expected = np.flip(expected, layout.index("C"))
            notes.append(f"reference channels reordered {target.channels}->{pair.channels} to match DALI here")
        if not pair.pixels or not target.pixels:
            # only the geometry is comparable once one side's values are transformed
            problems = [] if actual.shape == expected.shape else [
                f"Shape mismatch: DALI {actual.shape}, reference {expected.shape}"]
            result = StageResult(status="failed" if problems else "passed", problems=tuple(problems),
                                 notes=("values are transformed at this point; only the shape is compared",), **common)
            return self._diagnosed(result, actual, expected, layout, ref, pair)
        if views is not None:
            views[pair.label] = StageView(actual, expected, layout, pair.channels, True)
        if actual.dtype != expected.dtype:
            notes.append(f"dtypes differ (DALI {actual.dtype}, reference {expected.dtype}); values compared as float")
        result = compare_arrays(actual, expected, self.config.tolerance_for(pair.label), notes=notes,
                                channel_axis=layout.index("C") if "C" in layout else 0, **common)
        return self._diagnosed(result, actual, expected, layout, ref, pair)

    def _compare_final(self, actual, layout, target: RefStage, common) -> StageResult:
        problems, notes = [], []
        expected_layout = self.config.dali["output_layout"]
        if actual.ndim == 3 and layout != expected_layout:
            problems.append(f"Layout mismatch: DALI emits {layout} {tuple(actual.shape)}, the model expects "
                            f"{expected_layout} (dali.output_layout)")
        chw = _to_layout(actual, layout, "CHW")
        if chw is not actual:
            notes.append(f"DALI's {layout} output transposed to CHW to compare values")
        if actual.dtype != target.array.dtype:
            problems.append(f"Dtype mismatch: DALI {actual.dtype}, model input {target.array.dtype}")
        std = self.reference.std
        tol = self.config.tolerance_for("model_input", normalized_by=float(np.min(std)) if std is not None else None)
        result = compare_arrays(chw, target.array, tol, problems=problems, notes=notes, **common)
        if result.status != "failed":
            return result
        attributes = attribute_causes(layout=layout if actual.ndim == 3 else "", expected_layout=expected_layout,
                                      dtype=actual.dtype, expected_dtype=target.array.dtype, values=actual)
        value_causes = self._diagnose(chw, target.array, "CHW", actual.shape, layout, normalized=True)
        if attributes and chw.shape == target.array.shape and result.mismatch_fraction == 0:
            value_causes = ()  # the values are right; only the layout or dtype is not
        if any(c.kind == "dtype" and "clipped" in c.sentence for c in attributes):
            value_causes = ()  # rounding and clipping to an integer range make any value analysis misleading
        final = self._final.dali
        fixed = tuple(crop_anchor_fix(self._normalization_fix(c, target.channels), final.op, final.args, final.where)
                      for c in value_causes)
        return dataclasses.replace(result, diagnosis=Diagnosis(fixed + tuple(attributes)))

    def _diagnosed(self, result: StageResult, actual, expected, layout, ref: list[RefStage],
                   pair: StagePair) -> StageResult:
        if result.status != "failed":
            return result
        causes = list(self._diagnose(actual, expected, layout, actual.shape, layout, ref_layout=layout,
                                     input_hw=ref[0].array.shape[:2]))
        steps = self.reference.pipeline_cfg
        if pair.dali.op == "Resize" and pair.ref_index is not None and pair.ref_index < len(steps) and \
                [c.kind for c in causes] == ["interpolation"]:
            # name the argument: the filter, antialiasing or sub-pixel scaling that differs from the reference's
            causes = [resize_filter_cause(pair.dali.args, steps[pair.ref_index], ref[pair.ref_index - 1].array.shape[:2],
                                          spatial_size(actual.shape, layout)) or causes[0]]
        causes = [crop_anchor_fix(c, pair.dali.op, pair.dali.args, pair.dali.where) for c in causes]
        return dataclasses.replace(result, diagnosis=Diagnosis(tuple(causes)))

    def _diagnose(self, actual, expected, layout, original_shape, original_layout, *, normalized=False,
                  ref_layout="CHW", input_hw=None) -> tuple:
        if actual.shape != expected.shape:
            return diagnose_shapes(original_shape, expected.shape, original_layout, ref_layout=ref_layout,
                                   input_hw=input_hw).causes
        chw_a, chw_e = _to_layout(actual, layout, "CHW"), _to_layout(expected, layout, "CHW")
        ref = self.reference
        return diagnose_values(chw_a.astype(np.float64), chw_e.astype(np.float64),
                               mean=ref.mean if normalized else None, std=ref.std if normalized else None,
                               to_rgb=ref.to_rgb).causes

    def _describe(self, index: int) -> str:
        names = self.reference.stage_names
        return f"{names[index]} (stage {index + 1} of {len(names)}: {' -> '.join(names)})"


def _or_error(run):
    """``run`` returning a user-facing error (an image MMPretrain cannot process) instead of raising it."""
    from parity.errors import ParityUsageError

    def wrapped(path):
        try:
            return run(path)
        except ParityUsageError as exc:
            return exc
    return wrapped


def _crop_windows(pixels: np.ndarray, shape: tuple, op: str, args: dict) -> list[np.ndarray]:
    """The (C,H,W) windows of ``pixels`` that a final operator of output ``shape`` may have read: the
    whole tensor, or for a cropping crop_mirror_normalize its window with the anchor rounded either way."""
    if pixels.shape == shape:
        return [pixels]
    if op != "CropMirrorNormalize" or "crop" not in args or pixels.shape[0] != shape[0] or \
            pixels.shape[1] < shape[1] or pixels.shape[2] < shape[2]:
        return []
    anchors = [sorted({int(np.floor(v)), int(np.ceil(v))}) for v in (
        (pixels.shape[1] - shape[1]) * float(args.get("crop_pos_y", 0.5)),
        (pixels.shape[2] - shape[2]) * float(args.get("crop_pos_x", 0.5)))]
    return [pixels[:, y:y + shape[1], x:x + shape[2]] for y in anchors[0] for x in anchors[1]]


def _mirrored(windows: list[np.ndarray], op: str, args: dict) -> list[np.ndarray]:
    """crop_mirror_normalize(mirror=1) flips what it reads horizontally."""
    return [w[:, :, ::-1] for w in windows] if op == "CropMirrorNormalize" and args.get("mirror") else windows


def _shown(path: Path) -> str:
    """``path`` as the user can type it from here: relative to the working directory when under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _mark_first_divergence(results: list[StageResult], config_path: Path) -> list[StageResult]:
    failed = [i for i, r in enumerate(results) if r.status == "failed"]
    if not failed:
        return results
    first = failed[0]
    matched = [r.stage for r in results[:first] if r.status == "passed"]
    out = list(results)
    head = results[first]
    out[first] = dataclasses.replace(head, first_divergence=(
        f"First divergence: this stage ({head.stage}); earlier stages matched: {', '.join(matched) or 'none'}.\n"
        f"Fix: `parity suggest {_shown(config_path)}` writes the DALI pipeline that reproduces this reference "
        "(test_pipeline + data_preprocessor) and reports the parity it measured."))
    for i in failed[1:]:
        out[i] = dataclasses.replace(results[i], first_divergence=(
            f"First divergence: stage {head.stage!r} ({head.dali_op}); this stage follows from it."))
    return out
