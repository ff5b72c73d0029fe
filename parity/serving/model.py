"""The model stage: what the deployed model answers on DALI's input, against what the reference model
answers on the reference input, per image; and a check across images for collapsed outputs (the seed's
"class 0 with probability 1 for every request"), which needs no reference model at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.config.sections import ModelSection
from parity.reference.protocol import RefStage
from parity.results.logits import fingerprint, softmax
from parity.results.protocol import CheckResult
from parity.serving.backends import OnnxRuntimeRunner, ParityModelError, Runner, TensorRTRunner, reference_network


def topk_overlap(ref_logits: np.ndarray, other_logits: np.ndarray, k: int, tie: float = 0.01) -> float:
    """Share of the reference's top-k classes found in the other's top-k. Only classes the reference
    ranks clearly above its k-th (by more than ``tie`` logits, about 1% in probability) are counted, so
    a reference that finds many classes equally likely does not make the overlap arbitrary."""
    certain = clear_topk(ref_logits, k, tie)
    if certain.size == 0:
        return 1.0
    chosen = set(np.argsort(-other_logits)[:k].tolist())
    return float(np.mean([c in chosen for c in certain]))


def clear_topk(ref_logits: np.ndarray, k: int, tie: float = 0.01) -> np.ndarray:
    """The classes the reference ranks above its k-th by more than ``tie`` logits: the ones a top-k
    overlap can fairly demand."""
    kth = np.sort(ref_logits)[::-1][min(k, len(ref_logits)) - 1]
    return np.flatnonzero(ref_logits > kth + tie)


def answer_fields(ref_logits: np.ndarray, logits: np.ndarray, probabilities: np.ndarray, k: int) -> dict:
    """The numbers a :class:`ModelResult` reports for one answer against the reference's logits."""
    p_ref = softmax(ref_logits)
    return dict(ref_top1=int(p_ref.argmax()), ref_prob=float(p_ref.max()), dali_top1=int(probabilities.argmax()),
                dali_prob=float(probabilities.max()), topk_overlap=topk_overlap(ref_logits, logits, k), topk=k,
                topk_counted=len(clear_topk(ref_logits, k)), kl=kl_divergence(p_ref, probabilities),
                max_abs_logit=float(np.abs(logits - ref_logits).max()))


def answer_problems(fields: dict, who: str, kl: float, kl_key: str) -> list[str]:
    """Top-1 and KL verdicts of one answer (``fields`` from :func:`answer_fields`)."""
    problems = []
    if fields["dali_top1"] != fields["ref_top1"]:
        problems.append(f"Top-1 differs: {who} {fields['dali_top1']}, reference {fields['ref_top1']}")
    if fields["kl"] > kl:
        problems.append(f"KL divergence {fields['kl']:.4g} > {kl} allowed ({kl_key})")
    return problems


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats, guarded against zeros."""
    eps = 1e-12
    return float(np.sum(p * (np.log(p + eps) - np.log(q + eps))))


@dataclass(frozen=True)
class ModelResult(CheckResult):
    """One image: reference model on reference input vs deployed model on DALI input (and on reference
    input, which isolates conversion error from preprocessing error)."""

    image: str
    backend: str
    status: str  # passed | failed | skipped
    ref_top1: int = -1
    ref_prob: float = 0.0
    dali_top1: int = -1
    dali_prob: float = 0.0
    topk_overlap: float = 0.0
    topk: int = 5
    topk_counted: int = 0  # how many of the reference's top-k classes are clearly ranked (the overlap's base)
    kl: float = 0.0
    max_abs_logit: float = 0.0
    conversion_max_abs: float | None = None  # deployed vs reference model, both on the reference input
    problems: tuple = ()
    preprocessing: str = ""  # the preprocessing verdict of this image, when it failed
    skip_reason: str = ""
    notes: tuple = ()  # how the answer was obtained (e.g. CPU stand-ins in an embedded Triton server)
    finite: bool = True  # the deployed logits hold no NaN/Inf
    fingerprint: tuple = ()  # of the deployed logits, for the degenerate-output judge (parity.results.degenerate)
    consequence_of: str = ""  # e.g. "model_input divergence on astronaut": set when preprocessing diverged

    def message(self) -> str:
        if self.status == "skipped":
            return f"Model stage of {self.image!r} was not run: {self.skip_reason}"
        verb = "agree" if self.status == "passed" else "disagree"
        lines = [f"{self.image}: {self.backend}: consequence of the {self.consequence_of}", ""] \
            if self.consequence_of else []
        lines += [f"Deployed model ({self.backend}) on DALI's input and the reference model {verb} on image "
                  f"{self.image!r}!", ""]
        lines.extend(self.problems)
        if self.dali_top1 >= 0:  # there is an answer to compare (not a refused request)
            lines.append(f"Top-1: deployed {self.dali_top1} (p={self.dali_prob:.3f}), reference {self.ref_top1} "
                         f"(p={self.ref_prob:.3f})")
            overlap = (f"{100 * self.topk_overlap:.0f}% of the {self.topk_counted} class"
                       f"{'es' if self.topk_counted != 1 else ''} the reference ranks clearly in its top {self.topk}"
                       if self.topk_counted else f"not judged (the reference's top {self.topk} are tied)")
            lines.append(f"Top-{self.topk} overlap: {overlap}; KL(reference || deployed): "
                         f"{self.kl:.4g}; greatest logit difference: {self.max_abs_logit:.4g}")
        lines.extend(f"Note: {n}" for n in self.notes)
        if self.conversion_max_abs is not None:
            lines.append(f"Conversion alone (deployed vs reference model, both on the reference input): greatest "
                         f"logit difference {self.conversion_max_abs:.4g}")
        if self.preprocessing:
            lines.append("")
            lines.append(self.preprocessing)
        return "\n".join(lines)


_ONNX_DTYPES: dict[str, np.dtype] = {"tensor(float)": np.dtype(np.float32), "tensor(float16)": np.dtype(np.float16),
                                     "tensor(double)": np.dtype(np.float64), "tensor(uint8)": np.dtype(np.uint8)}


class ModelCheck:
    """Runs the reference classifier and the deployed backends; keeps only per-image summaries."""

    def __init__(self, cfg: ModelSection, *, model_cfg: dict | None, source: str, base_dir, recorded: bool = False):
        self.cfg = cfg
        self.reference: Runner | None = None
        # recorded: the reference's logits arrive with its model input (a snapshot), no network is built
        self.has_reference = bool(cfg.reference_model and (model_cfg or recorded))
        if cfg.reference_model and model_cfg and not recorded:
            checkpoint = (base_dir / cfg.checkpoint).resolve() if cfg.checkpoint else None
            self.reference = reference_network(model_cfg, checkpoint, source)
        self.deployed: Runner = self._deployed(cfg, base_dir)
        library = (model_cfg or {}).get("library")
        self._network = f"the {source} network (model.checkpoint)" if library else "model.config"
        self._last_reference: tuple[str, np.ndarray] | None = None

    def reference_logits(self, image: str, ref: RefStage) -> np.ndarray:
        """The reference network's logits (recorded, else inferred; the deployed model's without a reference
        network) for an image's model input; the model and Triton stages of the same image share one."""
        if self.has_reference and ref.logits is not None:
            return ref.logits
        if self._last_reference is None or self._last_reference[0] != image:
            runner = self.reference or self.deployed
            self._last_reference = (image, runner.infer(ref.array[None].astype(np.float32))[0])
        return self._last_reference[1]

    @property
    def input_dtype(self) -> np.dtype | None:
        """The dtype the deployed model takes (its ONNX input or TensorRT binding), None when unknown."""
        spec = getattr(self.deployed, "input", None)
        if spec is not None:
            return np.dtype(spec.dtype)
        session = getattr(self.deployed, "session", None)
        return _ONNX_DTYPES.get(session.get_inputs()[0].type) if session is not None else None

    @property
    def _deployed_name(self) -> str:
        return f"model.{'onnx' if self.deployed.name == 'onnxruntime' else 'tensorrt'}"

    def _check_input(self, shape: tuple) -> None:
        """The deployed model must take the reference's model input (a static dimension that differs is the
        wrong model, or the wrong export; dynamic ones are named by strings or -1)."""
        declared = getattr(self.deployed, "input_shape", None)
        if declared is None:
            return
        fixed = [(d, s) for d, s in zip(declared[1:], shape) if isinstance(d, int) and d > 0]
        if len(declared) != len(shape) + 1 or any(d != s for d, s in fixed):
            raise ParityModelError(f"{self._deployed_name}: takes input of shape {tuple(declared)}, the reference's "
                                   f"model input is (N, {', '.join(map(str, shape))}): is it the model of this "
                                   "preprocessing (its export input size)?")

    @staticmethod
    def _deployed(cfg: ModelSection, base_dir) -> Runner:
        backend = cfg.backend
        if backend == "auto":
            from parity.dali.runner import gpu_available

            backend = "tensorrt" if gpu_available() and (cfg.tensorrt or cfg.onnx) else "onnxruntime"
        if backend == "tensorrt":
            return TensorRTRunner(engine_path=(base_dir / cfg.tensorrt) if cfg.tensorrt else None,
                                  onnx_path=(base_dir / cfg.onnx) if cfg.onnx else None,
                                  precision=cfg.trt_precision)
        if not cfg.onnx:
            raise ParityModelError("model.onnx is required for the onnxruntime backend")
        return OnnxRuntimeRunner((base_dir / cfg.onnx).resolve())

    def check(self, image: str, ref: RefStage, dali_input: np.ndarray | None, preprocessing) -> ModelResult:
        """``ref`` is the reference's model input; ``dali_input`` is DALI's output as CHW, any dtype (None when
        it cannot feed the model)."""
        ref_input = ref.array
        backend = self.deployed.name
        self._check_input(ref_input.shape)
        if dali_input is None or dali_input.shape != ref_input.shape:
            return ModelResult(image, backend, "failed", problems=(
                f"DALI's output {None if dali_input is None else dali_input.shape} cannot feed a model that takes "
                f"the reference's {ref_input.shape}",), preprocessing=_preprocessing_note(preprocessing))
        dali_logits = self.deployed.infer(dali_input[None].astype(np.float32))[0]
        finite = bool(np.isfinite(dali_logits).all())
        p_dali = softmax(dali_logits)
        marks = tuple(fingerprint(dali_logits)) if finite else ()
        preprocessing_note = _preprocessing_note(preprocessing)
        if not self.has_reference:
            return ModelResult(image, backend, "skipped", dali_top1=int(p_dali.argmax()), dali_prob=float(p_dali.max()),
                               finite=finite, fingerprint=marks, preprocessing=preprocessing_note,
                               skip_reason="no reference model (model.reference_model=False or no model in the "
                                           "reference config): only the degenerate-output check runs")
        ref_logits = self.reference_logits(image, ref)
        if ref_logits.shape != dali_logits.shape:
            raise ParityModelError(f"{self._deployed_name}: answers {dali_logits.size} classes, the reference network "
                                   f"{ref_logits.size}: is it the model exported from {self._network}?")
        deployed_on_ref = self.deployed.infer(ref_input[None].astype(np.float32))[0]
        conversion = float(np.abs(deployed_on_ref - ref_logits).max())
        fields = answer_fields(ref_logits, dali_logits, p_dali, self.cfg.topk)
        problems = answer_problems(fields, "deployed", self.cfg.kl, "model.kl")
        if fields["topk_overlap"] < self.cfg.topk_overlap:
            problems.append(f"Top-{fields['topk']} overlap {100 * fields['topk_overlap']:.0f}% < "
                            f"{100 * self.cfg.topk_overlap:.0f}% allowed")
        scale = max(1.0, float(np.abs(ref_logits).max()))
        tolerance = getattr(self.deployed, "tolerance", None)  # a TensorRT engine of known precision
        if tolerance is not None:
            if tolerance.excess(deployed_on_ref, ref_logits) > 0:
                problems.append(f"Conversion error: the TensorRT {tolerance.description} engine differs from the "
                                f"reference model by {conversion:.4g} in logits on the same input (> {tolerance.line()} "
                                "allowed for its precision, docs/tolerances.md)")
        elif conversion > self.cfg.conversion_atol * scale:
            problems.append(f"Conversion error: the deployed model differs from the reference model by {conversion:.4g}"
                            f" in logits on the same input (> {self.cfg.conversion_atol} x {scale:.3g} allowed)")
        if not np.isfinite(dali_logits).all():
            problems.append("Deployed logits hold NaN/Inf")
        return ModelResult(image, backend, "failed" if problems else "passed", **fields, finite=finite,
                           fingerprint=marks, conversion_max_abs=conversion,
                           problems=tuple(problems), preprocessing=preprocessing_note)


def _preprocessing_note(stage_results) -> str:
    failed = [r for r in stage_results if r.status == "failed"]
    if not failed:
        return ""
    first, final = failed[0], failed[-1]
    ranges = ""
    if final.dali_channels and final.ref_channels:
        lo_d, hi_d = min(c.min for c in final.dali_channels), max(c.max for c in final.dali_channels)
        lo_r, hi_r = min(c.min for c in final.ref_channels), max(c.max for c in final.ref_channels)
        ranges = f" DALI's model input spans {lo_d:.3g}..{hi_d:.3g}, the reference's {lo_r:.3g}..{hi_r:.3g}."
    causes = ", ".join(final.diagnosis.kinds) if final.diagnosis else "not identified"
    return (f"Preprocessing already diverged at stage {first.stage!r}; at the model input: {causes}.{ranges}")
