"""GPU-only risks in a DALI pipeline graph, found before any image: where the GPU deployment computes
differently from the CPU operators parity runs, each named with the operator, its source line and the
argument to set. Works on any stage list (a ``pipeline_def`` function or a Triton ``model.dali``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from parity.compare.align import data_path
from parity.dali.runner import DaliStage
from parity.gpu.margins import GPU_DEVICES, MARGINS, RESIZE_OPS, Margin, is_decoder, margin_of, output_dtypes
from parity.results.protocol import CheckResult

# Reference decoders built on libjpeg(-turbo) with its default fancy (interpolating) chroma upsampling:
# cv2 is the cited one (opencv grfmt_jpeg.cpp keeps libjpeg's defaults); Pillow and PyTurboJPEG leave the
# same default untouched.
LIBJPEG_DECODERS = ("cv2", "pillow", "turbojpeg")


class Rule(str, Enum):
    DECODER_UPSAMPLING = "decoder-upsampling"  # mixed decoder without interpolated chroma upsampling
    HW_DECODER = "hw-decoder-load"  # part of the images decoded by the hardware decoder
    ROUNDING = "gpu-rounding"  # float to integer where the GPU rounds ties to even
    DIFFERENT_ALGORITHM = "different-algorithm"  # the CPU and GPU operators are different algorithms


@dataclass(frozen=True)
class GpuRisk:
    """One place where the GPU deployment may not compute what parity checked on the CPU."""

    rule: Rule
    operator: str  # as the user wrote it, e.g. "decoders.image"
    where: str  # source line, else the output name in the graph
    argument: str  # what to set, e.g. "jpeg_fancy_upsampling=True"
    detail: str  # what differs on the GPU
    margin: Margin | None = None  # the difference to expect if it stays

    def line(self) -> str:
        return f"{self.where}: {self.operator}: {self.detail}; set {self.argument}"

    def record(self) -> dict:
        return dict(rule=self.rule.value, operator=self.operator, where=self.where, argument=self.argument,
                    detail=self.detail, margin=self.margin.record() if self.margin else None)


@dataclass(frozen=True)
class GpuLintResult(CheckResult):
    """The ``gpu_risk`` check item: warned (or failed, when strict) where a risk was found."""

    status: str  # passed | warned | failed
    source: str  # the pipeline spec or model.dali path
    risks: tuple[GpuRisk, ...] = ()
    strict: bool = False

    def message(self) -> str:
        if not self.risks:
            return f"The DALI pipeline {self.source} computes on the GPU what parity checks on the CPU, within the " \
                   "published margins."
        tail = ["", "These fail the run with --strict-gpu."] if not self.strict else []
        return "\n".join([f"The DALI pipeline {self.source} may compute differently on the GPU than on the CPU "
                          "parity checked!", "", *(f"- {r.line()}" for r in self.risks), *tail])

    def record(self) -> dict:
        return dict(status=self.status, source=self.source, strict=self.strict, risks=[r.record() for r in self.risks])


def reference_decoder(test_pipeline: list[dict]) -> str | None:
    """The decoder of the reference's LoadImageFromFile (MMCV's ``imdecode_backend``, 'cv2' by default)."""
    for step in test_pipeline:
        if str(step.get("type", "")).endswith("LoadImageFromFile"):
            return step.get("imdecode_backend", "cv2")
    return None


def _hw_default(op: str) -> float | None:
    """DALI's default hw_decoder_load for a decoder, from the installed schema (None without DALI)."""
    try:
        from nvidia.dali import backend

        return float(backend.GetSchema(op).GetArgumentDefaultValueString("hw_decoder_load"))  # type: ignore[attr-defined]
    except Exception:  # DALI absent, or a decoder without the argument
        return None


def _decoder_risks(s: DaliStage, ref_decoder: str | None) -> list[GpuRisk]:
    risks = []
    if not s.args.get("jpeg_fancy_upsampling") and (ref_decoder is None or ref_decoder in LIBJPEG_DECODERS):
        reference = f"the reference decodes with {ref_decoder} (libjpeg, interpolating)" if ref_decoder else \
            "a libjpeg reference (cv2, Pillow) interpolates"
        risks.append(GpuRisk(Rule.DECODER_UPSAMPLING, s.display, s.where, "jpeg_fancy_upsampling=True",
                             f"the mixed decoder (nvJPEG, hardware decoder) upsamples chroma without interpolation "
                             f"where {reference}: {MARGINS['decode'].amount} at chroma edges", MARGINS["decode"]))
    given = "hw_decoder_load" in s.args
    load = s.args["hw_decoder_load"] if given else _hw_default(s.op)
    if load is None or float(load) > 0:
        share = "part of the images" if load is None else f"{float(load):.0%} of the images"
        default = "" if given else "by DALI's default, "
        risks.append(GpuRisk(Rule.HW_DECODER, s.display, s.where, "hw_decoder_load=0",
                             f"{default}{share} go to the hardware JPEG decoder, the rest to the CUDA decoder: the "
                             "decode path can change per image within a batch", margin_of(s, None)))
    return risks


def lint(stages: list[DaliStage], *, source: str, outputs: list[str] | None = None,
         reference_decoder: str | None = "cv2", strict: bool = False) -> GpuLintResult:
    """Find the GPU-only risks among the operators written for the GPU ('gpu'/'mixed' devices).

    Args:
        stages (list[DaliStage]): the pipeline's operators in graph order (``DaliRunner.stages``).
        source (str): the pipeline spec or model.dali path, for the message.
        outputs (list[str] | None): the pipeline's outputs; only their data path is linted. Defaults to all stages.
        reference_decoder (str | None): what the reference decodes with (:func:`reference_decoder`); None: unknown.
        strict (bool): a risk fails the item (``--strict-gpu``) instead of warning. Defaults to False.
    """
    path = data_path(stages, outputs) if outputs else stages
    dtypes = output_dtypes(stages)
    risks: list[GpuRisk] = []
    resized = set()  # outputs downstream of a resize
    for s in path:
        parent = s.inputs[0] if s.inputs else ""
        if s.op in RESIZE_OPS or parent in resized:
            resized.add(s.name)
        if s.device not in GPU_DEVICES:
            continue
        if is_decoder(s) and s.device == "mixed":
            risks.extend(_decoder_risks(s, reference_decoder))
            continue
        margin = margin_of(s, dtypes.get(parent))
        if margin is None:
            continue
        if margin.key == "cast-float-int" and (dtypes.get(parent) is not None or parent in resized):
            risks.append(GpuRisk(Rule.ROUNDING, s.display, s.where, "dtype=types.FLOAT (keep float to the model)",
                                 "casts float to integer: the CPU rounds .5 away from zero, the GPU half to even, "
                                 f"{margin.amount} on ties", margin))
        elif margin.key in ("cmn-int", "normalize-int") and parent in resized:
            risks.append(GpuRisk(Rule.ROUNDING, s.display, s.where, "dtype=types.FLOAT",
                                 "rounds resized values to integers: the CPU rounds .5 away from zero, the GPU half "
                                 f"to even, {margin.amount} on ties", margin))
        elif margin.key == "csc":
            risks.append(GpuRisk(Rule.DIFFERENT_ALGORITHM, s.display, s.where,
                                 "device='cpu' (the conversion as OpenCV computes it), or a tolerance of ±1 level "
                                 "at this stage and after",
                                 "the CPU converts with OpenCV cvtColor, the GPU with a CUDA kernel (float BT.601 "
                                 f"coefficients): {margin.amount}", margin))
    status = "passed" if not risks else ("failed" if strict else "warned")
    return GpuLintResult(status, source, tuple(risks), strict)
