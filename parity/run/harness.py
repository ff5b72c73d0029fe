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

from parity.compare.align import StagePair, align
from parity.compare.arrays import StageResult, compare_arrays
from parity.config.load import ParityConfig
from parity.dali.determinism import DeterminismResult, check_determinism, random_operators
from parity.dali.runner import DaliRunner, open_pipeline
from parity.diagnose.stage import Operator, OwnSource, StageCase, StageDiagnoser
from parity.errors import ParityUsageError
from parity.gpu.compare import GpuCompareResult
from parity.gpu.coverage import gpu_coverage
from parity.gpu.lint import GpuLintResult, lint, reference_decoder
from parity.images import check_image, client_input, image_ids
from parity.reference import open_reference
from parity.reference.channels import reversed_channels
from parity.reference.mmpretrain import one_torch_thread
from parity.reference.protocol import Reference, RefStage
from parity.run.stacks import loading_stacks
from parity.serving.model import ModelCheck, ModelResult
from parity.serving.triton import TritonCheck


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
        with loading_stacks():  # torch, MMPretrain and DALI load here: kept out of the collector's walks
            self._load(config)

    def _load(self, config: ParityConfig) -> None:
        if not config.reference_read:
            raise ValueError(f"{config.path}: loaded with reference=False, which runs nothing")
        self.config = config
        self.reference: Reference = open_reference(config)
        dali = config.dali
        self.dali: DaliRunner = open_pipeline(
            pipeline=dali.pipeline, serialized=dali.serialized, base_dir=config.base_dir,
            input_name=dali.input_name, device=dali.device, batch_size=dali.batch_size,
            num_threads=dali.num_threads)
        names = self.reference.stage_names
        self.pairs: list[StagePair] = align(self.dali.stages, self.dali.outputs[0], names,
                                            self.reference.geometry_stages, dali.input_format)
        config.check_tolerance_labels(self.stage_labels)
        self.image_ids = image_ids(config.images)
        self.model: ModelCheck | None = None
        if config.model:
            self.model = ModelCheck(config.model, model_cfg=config.model_cfg, source=config.reference_source,
                                    base_dir=config.base_dir, recorded=config.snapshot is not None)
        self.repository = None  # the served repository against what is tested (triton_repository)
        if config.triton and config.triton.repository:
            from parity.serving.triton_repository import check_repository

            onnx = config.model.onnx if config.model else None
            self.repository = check_repository((config.base_dir / config.triton.repository).resolve(),
                                               tested=self.dali.stages, input_name=self.dali.input_name,
                                               onnx=(config.base_dir / onnx).resolve() if onnx else None)
        self._final_index = next(i for i, p in enumerate(self.pairs) if p.final)
        self._final = self.pairs[self._final_index]
        # DALI's pixel stages before the model input, last first: where the model input's own source is found
        self._pixel_sources = [p for p in reversed(self.pairs[:self._final_index]) if p.pixels and p.channels]
        # the DALI stages an image's comparison reads: a many-operator pipeline's other intermediates are not
        # copied out of DALI
        self._compared = {p.dali.name for p in self.pairs if p.ref_index is not None or p.final} | {
            p.dali.name for p in self._pixel_sources}
        geometry = [p.dali for p in self.pairs if p.dali.changes_shape and not p.final]
        self.diagnoser = StageDiagnoser(
            mean=self.reference.mean, std=self.reference.std, to_rgb=self.reference.to_rgb,
            normalizers=[(p.dali.op, p.dali.where, p.dali.args, p.channels) for p in self.pairs
                         if p.dali.op in ("CropMirrorNormalize", "Normalize")],
            add_after=geometry[-1].where if geometry else "", random_operators=random_operators(self.dali.stages))
        self.gpu = gpu_coverage(self.dali.stages, self.pairs, ran_on=self.dali.device,
                                deployed=self.model.deployed.name if self.model else None,
                                trt_precision=config.model.trt_precision if config.model else None)

    def gpu_lint(self, *, strict: bool) -> GpuLintResult:
        """The GPU-only risks of the pipeline graph, found before any image (``--strict-gpu`` fails on them)."""
        return lint(self.dali.stages, source=self.dali.source, outputs=self.dali.outputs,
                    reference_decoder=reference_decoder(self.reference.pipeline_cfg), strict=strict)

    def _first_batch(self) -> tuple[list, list[str]]:
        """What the client sends for the first batch's images, and their ids (images the reference cannot
        read are left out: their own items report them)."""
        ids = dict(zip(self.config.images, self.image_ids))
        feed, names = [], []
        for path in self.config.images[: self.config.dali.batch_size]:
            try:
                check_image(path)  # before any decode: the images' own items report what is wrong
                first = self.reference.run(path)[0]
            except ParityUsageError:
                continue
            feed.append(client_input(first.array, first.channels, path, self.config.dali.input_format))
            names.append(ids[path])
        return feed, names

    def gpu_vs_cpu(self) -> GpuCompareResult:
        """Where a GPU is present: the pipeline as written on the GPU against its CPU rewrite, on the first
        batch, each stage's measured difference next to its published margin (skipped without a GPU)."""
        from parity.gpu.compare import run_on_both

        feed, names = self._first_batch()
        dali = self.config.dali
        results = run_on_both(feed, names, pipeline=dali.pipeline, serialized=dali.serialized,
                              base_dir=self.config.base_dir, input_name=dali.input_name,
                              batch_size=dali.batch_size, num_threads=dali.num_threads) if feed else []
        if not results:
            return GpuCompareResult("skipped", "all images", skip_reason="no image of the first batch could be read")
        return next((r for r in results if r.status == "failed"), results[0])

    def determinism(self) -> DeterminismResult:
        """DALI run twice on the client inputs of the first batch's images: a training-time random operator
        left in the inference pipeline changes its output between runs (and is named from the graph)."""
        feed, _ = self._first_batch()
        if not feed:
            return DeterminismResult("skipped", skip_reason="no image of the first batch could be read")
        try:
            return check_determinism(self.dali, feed)
        except ParityUsageError as exc:  # the images' own results say which input DALI fails on
            return DeterminismResult("skipped", skip_reason=f"DALI failed on the first batch ({exc})")

    @property
    def stage_labels(self) -> list[str]:
        return [p.label for p in self.pairs]

    def run(self, images: list[Path] | None = None, *, keep_views=None) -> Iterator[ImageResult]:
        """Yield one :class:`ImageResult` per image, in order, a DALI batch at a time.

        While one batch is compared, the next is prepared in a worker thread, its images run through the
        reference by a pool of threads (one per CPU core, torch's own threads at one meanwhile): decoding,
        resizing and the comparisons spend most of their time in native code that releases the GIL. Only the
        batch in hand and the one being prepared are held in memory; ``keep_views(image_id)`` says which
        images keep their compared tensors (for the HTML report).
        """
        paths = list(images) if images is not None else self.config.images
        ids = dict(zip(self.config.images, self.image_ids))
        step = self.config.dali.batch_size
        chunks = [paths[start:start + step] for start in range(0, len(paths), step)]
        triton = TritonCheck(self.config.triton, self.config.base_dir, self.model,
                             self.repository) if self.config.triton else None
        workers = max(1, min(step, len(os.sched_getaffinity(0))))
        with one_torch_thread(), \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="parity-prepare") as pool, \
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
                    model = self._run_model(image, ref, out, stages)
                    divergence = next((r.stage for r in stages if r.status == "failed"), "")
                    yield ImageResult(image, path, stages, views or {}, _consequence(model, divergence),
                                      _consequence(served, divergence))

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

    def _reference_of(self, path: Path) -> list[RefStage]:
        """The reference's stages of one image, checked first from its header (an image parity cannot compare, or
        one over the pixel limit, is that image's error: the other images are still judged)."""
        check_image(path)
        return self.reference.run(path)

    def _prepare(self, references: ThreadPoolExecutor, chunk: list[Path]):
        """(reference stages, DALI outputs, client input) per image of a chunk; an image whose reference or
        DALI run fails gets its exception in place of its results, and the others go on."""
        refs = list(references.map(_or_error(self._reference_of), chunk))
        feed = [None if isinstance(r, Exception) else
                client_input(r[0].array, r[0].channels, p, self.config.dali.input_format) for r, p in zip(refs, chunk)]
        outs = iter(self.dali.run_each([f for f in feed if f is not None], [str(p) for p, f in zip(chunk, feed)
                                                                            if f is not None], self._compared))
        return refs, [None if f is None else next(outs) for f in feed], feed

    def compare(self, image: str, ref: list[RefStage], out: dict[str, np.ndarray], views=None) -> list[StageResult]:
        """Compare every stage pair of one image; ``views``, when a dict, receives the compared tensors."""
        results: list[StageResult] = []
        for pair in self.pairs:
            results.append(self._compare_pair(image, pair, ref, out, views, results))
        return _mark_first_divergence(results, self.config.path, self.reference.kind)

    def _own_source(self, out) -> OwnSource | None:
        """DALI's last pixel stage before the model input, as (C,H,W): the value mistake at the model input is
        measured from it when the geometry diverged too."""
        source = next((p for p in self._pixel_sources if out[p.dali.name].ndim == 3), None)
        if source is None or source.channels is None:
            return None
        return OwnSource(self._chw(source.dali.name, out[source.dali.name]), source.channels, source.label)

    def _compare_pair(self, image: str, pair: StagePair, ref: list[RefStage], out, views,
                      upstream: list[StageResult]) -> StageResult:
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
            return self._compare_final(actual, layout, target, common, self._own_source(out), upstream)
        if actual.ndim != 3:
            return StageResult(status="skipped", skip_reason=f"not an image (shape {actual.shape})", **common)
        expected = _to_layout(target.array, target.layout, layout)
        notes = []
        if pair.channels and target.channels and pair.channels != target.channels:
            expected = reversed_channels(expected, layout.index("C"))
            notes.append(f"reference channels reordered {target.channels}->{pair.channels} to match DALI here")
        if not pair.pixels or not target.pixels:
            # only the geometry is comparable once one side's values are transformed
            problems = [] if actual.shape == expected.shape else [
                f"Shape mismatch: DALI {actual.shape}, reference {expected.shape}"]
            result = StageResult(status="failed" if problems else "passed", problems=tuple(problems),
                                 notes=("values are transformed at this point; only the shape is compared",), **common)
            return self._diagnosed(result, actual, expected, layout, ref, pair, upstream)
        if views is not None:
            views[pair.label] = StageView(actual, expected, layout, pair.channels, True)
        if actual.dtype != expected.dtype:
            notes.append(f"dtypes differ (DALI {actual.dtype}, reference {expected.dtype}); values compared as float")
        result = compare_arrays(actual, expected, self.config.tolerance_for(pair.label), notes=notes,
                                channel_axis=layout.index("C") if "C" in layout else 0, **common)
        return self._diagnosed(result, actual, expected, layout, ref, pair, upstream)

    def _compare_final(self, actual, layout, target: RefStage, common, own: OwnSource | None,
                       upstream: list[StageResult]) -> StageResult:
        problems, notes = [], []
        expected_layout = self.config.dali.output_layout
        if actual.ndim == 3 and layout != expected_layout:
            problems.append(f"Layout mismatch: DALI emits {layout} {tuple(actual.shape)}, the model expects "
                            f"{expected_layout} (dali.output_layout)")
        chw = _to_layout(actual, layout, "CHW")
        if chw is not actual:
            notes.append(f"DALI's {layout} output transposed to CHW to compare values")
        takes = self.model.input_dtype if self.model is not None else None
        expected_dtype = target.array.dtype
        if actual.dtype != expected_dtype and takes is not None and actual.dtype == takes:
            # the dtype policy (docs/diagnosis.md): the deployed model takes DALI's dtype, so only values count
            notes.append(f"DALI emits {actual.dtype}, which the deployed model takes; values compared as float "
                         f"against the reference's {expected_dtype}")
            expected_dtype = actual.dtype
        elif actual.dtype != expected_dtype:
            problems.append(f"Dtype mismatch: DALI {actual.dtype}, model input {expected_dtype}")
        std = self.reference.std
        tol = self.config.tolerance_for("model_input", normalized_by=float(np.min(std)) if std is not None else None)
        result = compare_arrays(chw, target.array, tol, problems=problems, notes=notes, **common)
        final = self._final.dali
        case = StageCase(chw, target.array, tol, shape=actual.shape, shape_layout=layout, normalized=True,
                         operator=Operator(final.op, final.args, final.where), own=own,
                         model_channels=target.channels or "", emitted_layout=layout if actual.ndim == 3 else "",
                         expected_layout=expected_layout, expected_dtype=expected_dtype)
        return self.diagnoser.diagnose(result, case, upstream)

    def _diagnosed(self, result: StageResult, actual, expected, layout, ref: list[RefStage], pair: StagePair,
                   upstream: list[StageResult]) -> StageResult:
        if result.status != "failed":
            return result  # the diagnoser leaves it as it is: its case (a copy of the step's input) is not built
        steps = self.reference.pipeline_cfg
        index = pair.ref_index
        before = ref[index - 1] if index else None
        case = StageCase(actual, expected, result.tolerance or self.config.tolerance_for(pair.label), layout=layout,
                         shape=actual.shape, shape_layout=layout, ref_layout=layout,
                         operator=Operator(pair.dali.op, pair.dali.args, pair.dali.where),
                         ref_step=steps[index] if index is not None and index < len(steps) else None,
                         step_input_hw=before.array.shape[:2] if before is not None else None,
                         input_hw=ref[0].array.shape[:2], step_input=self._step_input(before, pair, layout))
        return self.diagnoser.diagnose(result, case, upstream)

    @staticmethod
    def _step_input(before: RefStage | None, pair: StagePair, layout: str) -> np.ndarray | None:
        """The reference's input to this stage's step as DALI's (H,W,C) pixels in DALI's channel order (None
        unless both are pixel images)."""
        if before is None or not before.pixels or before.array.dtype != np.uint8 or layout != "HWC":
            return None
        image = _to_layout(before.array, before.layout, "HWC")
        if pair.channels and before.channels and pair.channels != before.channels:
            image = image[..., ::-1]
        return np.ascontiguousarray(image)

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


def _consequence(result, divergence: str):
    """A failed model or Triton answer on an image whose preprocessing diverged is that divergence's
    consequence: it still fails, and says so first."""
    if result is None or result.status != "failed" or not divergence:
        return result
    return dataclasses.replace(result, consequence_of=f"{divergence} divergence on {result.image}")


def _shown(path: Path) -> str:
    """``path`` as the user can type it from here: relative to the working directory when under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _mark_first_divergence(results: list[StageResult], config_path: Path, library: str) -> list[StageResult]:
    failed = [i for i, r in enumerate(results) if r.status == "failed"]
    if not failed:
        return results
    first = failed[0]
    matched = [r.stage for r in results[:first] if r.status == "passed"]
    out = list(results)
    head = results[first]
    out[first] = dataclasses.replace(head, first_divergence=(
        f"First divergence: this stage ({head.stage}); earlier stages matched: {', '.join(matched) or 'none'}.\n"
        + (f"Fix: `parity suggest {_shown(config_path)}` writes the DALI pipeline that reproduces this reference "
           "(test_pipeline + data_preprocessor) and reports the parity it measured." if library == "mmpretrain" else
           f"Fix: each cause above names the fn. argument to change; docs/config.md#timm-and-torchvision shows a DALI "
           f"graph that reproduces {library}'s eval transform exactly.")))
    for i in failed[1:]:
        out[i] = dataclasses.replace(results[i], first_divergence=(
            f"First divergence: stage {head.stage!r} ({head.dali_op}); this stage follows from it."))
    return out
