"""What a CPU verdict means on the GPU: the published CPU-vs-GPU differences of DALI operators and of
TensorRT engines, as data citing their sources, and per pipeline stage the margins of the operators on its
path that were written for the GPU but ran on the CPU.

Every number is one published in DALI's, nvImageCodec's or TensorRT's own code, tests or issues, cited per
row, and marked verified (read there) or inferred (derived from it). Nothing here was measured on a GPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import Enum

from parity.dali.runner import DaliStage

GPU_DEVICES = ("gpu", "mixed")


class Unit(str, Enum):
    """What a margin's value counts: integer steps of the operator's output (for uint8, levels), the
    output's own float units, or a share of the value."""

    LEVELS = "levels"
    ABSOLUTE = "absolute"
    RELATIVE = "relative"


class Evidence(str, Enum):
    """How the notes hold the number: read in the cited source, or inferred from it (not measured)."""

    VERIFIED = "verified"
    INFERRED = "inferred"


@dataclass(frozen=True)
class Margin:
    """One row of the table: how far the GPU implementation of an operator may be from the CPU one."""

    key: str
    operator: str  # as the user writes it, e.g. "decode (mixed)"
    value: float | None  # greatest |GPU - CPU| expected, in ``unit``; None: no published comparison
    unit: Unit
    condition: str  # where the difference arises
    source: str
    evidence: Evidence
    mean: float | None = None  # the mean bound, where a source gives one

    @property
    def amount(self) -> str:
        if self.value is None:
            return "no published CPU-vs-GPU number"
        if self.value == 0:
            return "exact"
        if self.unit is Unit.RELATIVE:
            return f"rtol {self.value:g}"
        if self.unit is Unit.ABSOLUTE:
            return f"up to {self.value:g}"
        return "±1 level" if self.value == 1 else f"up to {self.value:g} levels"

    def line(self) -> str:
        """``resize: ±1 level on rounding ties on the GPU``."""
        mean = f" (mean ≤{self.mean:g})" if self.mean is not None else ""
        return f"{self.operator}: {self.amount}{mean} {self.condition}".rstrip()

    def record(self) -> dict:
        return dict(key=self.key, operator=self.operator, value=self.value, unit=self.unit.value, mean=self.mean,
                    condition=self.condition, source=self.source, evidence=self.evidence.value)


_V, _I = Evidence.VERIFIED, Evidence.INFERRED
_DECODE_TESTS = "DALI dali/test/python/decoder/test_image.py, test_imgcodec.py"
_NVIMAGECODEC = "NVIDIA/nvImageCodec test/python/utils.py (get_max_diff_threshold)"
_TIES = "on rounding ties on the GPU (the CPU rounds .5 away from zero, the GPU half to even)"

MARGINS: dict[str, Margin] = {m.key: m for m in (
    Margin("decode", "decode (mixed)", 44, Unit.LEVELS, "at chroma edges unless jpeg_fancy_upsampling=True",
           f"{_NVIMAGECODEC}: max ≤44 vs cv2 without fancy upsampling; {_DECODE_TESTS} "
           "(_testimpl_image_decoder_consistency): CPU vs mixed mean ≤4; DALI issues #3610, #4257", _V, mean=4),
    Margin("decode-fancy", "decode (mixed, jpeg_fancy_upsampling=True)", 4, Unit.LEVELS,
           "from the IDCT and colour conversion",
           f"{_NVIMAGECODEC}: max ≤4 vs cv2 with fancy upsampling; {_DECODE_TESTS} (test_fancy_upsampling): "
           "mean ≤1", _V, mean=1),
    Margin("resize", "resize", 1, Unit.LEVELS, _TIES,
           "DALI dali/kernels/imgproc/resample/resampling_impl_cpu.h (+0.5, truncate) vs resampling_impl.cuh "
           "(__float2int_rn); DALI issue #1602 ('+/-1')", _I),
    Margin("warp_affine", "warp_affine", 1, Unit.LEVELS,
           "from sub-ulp coordinate drift (rarely a flipped nearest-neighbour pick), and " + _TIES,
           "DALI dali/kernels/imgproc/warp_cpu.h vs warp/block_warp.cuh", _I),
    Margin("cast-float-int", "cast (float to integer)", 1, Unit.LEVELS, _TIES,
           "DALI include/dali/core/convert.h (std::round vs __float2int_rn); dali/test/python/operator_1/"
           "test_cast.py nudges .5 inputs because 'rounding is different for CPU and GPU'", _V),
    Margin("cast", "cast", 0, Unit.LEVELS, "(no float-to-integer rounding)",
           "DALI dali/test/python/operator_1/test_cast.py: array_equal on both devices", _V),
    Margin("cmn-float", "crop_mirror_normalize (float output)", 1e-6, Unit.ABSOLUTE,
           "(fmaf on the GPU, (x - mean) * inv_std on the CPU)",
           "DALI dali/kernels/slice/slice_flip_normalize_permute_pad_cpu.h vs slice_hwc2chw_normalize_gpu.cu; "
           "operator_1/test_crop_mirror_normalize.py (test_cmn_optimized_vs_cpu): mean ≤1e-7", _I),
    Margin("cmn-int", "crop_mirror_normalize (integer output)", 1, Unit.LEVELS, _TIES,
           "DALI slice_flip_normalize_permute_pad_cpu.h (ConvertSat) vs slice_hwc2chw_normalize_gpu.cu; "
           "include/dali/core/convert.h", _I),
    Margin("normalize", "normalize (given mean and stddev)", 1e-6, Unit.ABSOLUTE, "(the same formula on both)",
           "DALI dali/test/python/operator_1/test_normalize.py (the same formula on both devices); float output "
           "as crop_mirror_normalize's", _I),
    Margin("normalize-data", "normalize (mean/stddev from the data)", 1e-3, Unit.RELATIVE,
           "(the reductions run in a different order)",
           "DALI dali/test/python/operator_1/test_normalize.py: rtol 1e-3 per device vs numpy", _V),
    Margin("normalize-int", "normalize (integer output)", 2, Unit.LEVELS, _TIES,
           "DALI dali/test/python/operator_1/test_normalize.py: integer output atol 2", _V),
    Margin("csc-swap", "color_space_conversion (RGB↔BGR)", 0, Unit.LEVELS, "(a channel swap)",
           "DALI dali/operators/image/color/color_space_conversion.{cc,cu}", _I),
    Margin("csc", "color_space_conversion", 1, Unit.LEVELS,
           "from different algorithms: OpenCV cvtColor on the CPU, a CUDA kernel with float BT.601 "
           "coefficients on the GPU",
           "DALI dali/operators/image/color/color_space_conversion.{cc,cu}, dali/kernels/imgproc/"
           "color_manipulation/color_space_conversion_impl.h (DALI's own CPU-vs-GPU test is unverified)", _I),
    Margin("crop", "crop / slice", 0, Unit.LEVELS, "(a copy, and the fill value where padded)",
           "DALI dali/test/python/operator_1/test_crop.py (test_crop_cpu_vs_gpu: mean ≤1e-7), test_slice.py", _V),
    Margin("unlisted", "", None, Unit.LEVELS, "(not covered by the CPU verdict)",
           "no CPU-vs-GPU comparison found in DALI's tests or issues", _I),
)}

# Operators that only move or fill bytes: the same on any device by construction, so they carry no row.
_MOVES_BYTES = re.compile(r"^(ExternalSource|_ExternalSource|MakeContiguous|Copy|Transpose|Reshape|Reinterpret|"
                          r"ExpandDims|Squeeze|Flip|Pad)$")
_DECODER = re.compile(r"decoders__Image|^ImageDecoder")
RESIZE_OPS = ("Resize", "ResizeCropMirror", "RandomResizedCrop", "TensorResize")

# nvidia.dali.types.DALIDataType / DALIImageType codes, as a serialized pipeline stores them
UINT8, FLOAT = 0, 9
_FLOATS = {8, 9, 10}
_INTEGERS = set(range(0, 8))
_SWAPS = {(0, 1), (1, 0), (0, 0), (1, 1)}  # RGB/BGR to RGB/BGR


def is_decoder(stage: DaliStage) -> bool:
    return bool(_DECODER.search(stage.op))


def output_dtypes(stages: list[DaliStage]) -> dict[str, int | None]:
    """The DALIDataType of every stage's output, where the graph says it (None: not known)."""
    dtypes: dict[str, int | None] = {}
    for s in stages:
        parent = dtypes.get(s.inputs[0]) if s.inputs else None
        if isinstance(s.args.get("dtype"), int):
            dtypes[s.name] = s.args["dtype"]
        elif s.op in ("ExternalSource", "_ExternalSource") or is_decoder(s):
            dtypes[s.name] = UINT8  # images and encoded bytes
        elif s.op in ("CropMirrorNormalize", "Normalize"):
            dtypes[s.name] = FLOAT
        elif _MOVES_BYTES.match(s.op) or s.op in RESIZE_OPS or s.op in ("Crop", "Slice", "ColorSpaceConversion",
                                                                      "WarpAffine"):
            dtypes[s.name] = parent
        else:
            dtypes[s.name] = None
    return dtypes


def margin_of(stage: DaliStage, input_dtype: int | None) -> Margin | None:
    """The table's row for one operator as written (None: it only moves bytes)."""
    op, args = stage.op, stage.args
    if is_decoder(stage):
        if stage.device != "mixed":
            return None  # the CPU decoder is what ran
        return MARGINS["decode-fancy" if args.get("jpeg_fancy_upsampling") else "decode"]
    if _MOVES_BYTES.match(op):
        return None
    out_integer = args.get("dtype", FLOAT) in _INTEGERS
    if op in RESIZE_OPS:
        return MARGINS["resize"]
    if op == "WarpAffine":
        return MARGINS["warp_affine"]
    if op in ("Crop", "Slice"):
        return MARGINS["crop"]
    if op == "Cast":
        float_in = input_dtype is None or input_dtype in _FLOATS  # unknown input: the risky reading
        return MARGINS["cast-float-int" if out_integer and float_in else "cast"]
    if op == "CropMirrorNormalize":
        return MARGINS["cmn-int" if out_integer else "cmn-float"]
    if op == "Normalize":
        if out_integer:
            return MARGINS["normalize-int"]
        return MARGINS["normalize" if "mean" in args and "stddev" in args else "normalize-data"]
    if op == "ColorSpaceConversion":
        pair = (int(args.get("image_type", 0)), int(args.get("output_type", 0)))
        return MARGINS["csc-swap" if pair in _SWAPS else "csc"]
    return replace(MARGINS["unlisted"], operator=stage.display)


def _gain(stage: DaliStage) -> float | None:
    """How much a difference in an operator's input can grow through it (None: it depends on the data).
    Resampling and conversions average with weights summing to 1; normalizing divides by the std."""
    key = {"CropMirrorNormalize": "std", "Normalize": "stddev"}.get(stage.op)
    if key is None:
        return 1.0
    if key not in stage.args:
        return None if stage.op == "Normalize" else 1.0  # Normalize then divides by the data's own std
    std = stage.args[key] if isinstance(stage.args[key], list) else [stage.args[key]]
    return float(stage.args.get("scale", 1.0)) / min(abs(float(s)) for s in std)


@dataclass(frozen=True)
class AppliedMargin:
    """A row of the table applied to one operator of the user's pipeline."""

    margin: Margin
    stage: str  # the operator's output name
    where: str  # its source line
    written_for: str  # 'gpu' or 'mixed'

    def line(self) -> str:
        return self.margin.line()

    def record(self) -> dict:
        return {**self.margin.record(), "stage": self.stage, "where": self.where, "written_for": self.written_for}


@dataclass(frozen=True)
class Bound:
    """The greatest |GPU - CPU| the margins on a stage's path add up to, in the stage's own units:
    elementwise ``atol + rtol * |cpu|``. ``atol`` is None when an operator has no published number."""

    atol: float | None
    rtol: float = 0.0

    def line(self) -> str:
        if self.atol is None:
            return "no bound (an operator on the path has no published number)"
        return f"atol {self.atol:.3g}" + (f", rtol {self.rtol:g}" if self.rtol else "")


@dataclass(frozen=True)
class StageMargins:
    """The GPU margins that apply at one stage: those of the rewritten operators on its data path."""

    stage: str  # DALI output name
    applied: tuple[AppliedMargin, ...] = ()
    bound: Bound = Bound(0.0)

    @property
    def applies(self) -> bool:
        """Whether an operator on this stage's path ran on the CPU in place of the GPU."""
        return bool(self.applied)

    def lines(self) -> list[str]:
        return [a.line() for a in self.applied]

    def line(self) -> str:
        """One sentence for a summary line: the margins that are not exact, else that all are exact."""
        if not self.applied:
            return "no operator on its path was rewritten to the CPU"
        inexact = [a.line() for a in self.applied if a.margin.value != 0]
        if inexact:
            return "; ".join(dict.fromkeys(inexact))
        return "exact on the GPU (every operator on its path computes the same on both devices)"

    def record(self) -> dict:
        return dict(stage=self.stage, margins=[a.record() for a in self.applied],
                    bound=dict(atol=self.bound.atol, rtol=self.bound.rtol))


def rewritten(stages: list[DaliStage], *, ran_on: str) -> list[DaliStage]:
    """The operators written for the GPU ('gpu' or 'mixed') that ran on the CPU instead."""
    return [s for s in stages if ran_on == "cpu" and s.device in GPU_DEVICES]


def stage_margins(stages: list[DaliStage], *, ran_on: str) -> dict[str, StageMargins]:
    """Per stage (by output name), the margins of the rewritten operators on its data path, in graph order.

    ``ran_on`` is the device DALI ran on ('cpu' or 'gpu'; DaliRunner.device). On the GPU nothing was
    rewritten and no margin applies. The path follows each operator's first input, as stage alignment does.
    """
    moved = {s.name for s in rewritten(stages, ran_on=ran_on)}
    dtypes = output_dtypes(stages)
    by_name = {s.name: s for s in stages}
    own: dict[str, AppliedMargin | None] = {}
    for s in stages:
        margin = margin_of(s, dtypes.get(s.inputs[0]) if s.inputs else None) if s.name in moved else None
        own[s.name] = AppliedMargin(margin, s.name, s.where, s.device) if margin else None
    result = {}
    for s in stages:
        path: list[str] = []
        name = s.name
        while name in by_name and name not in path:
            path.append(name)
            name = by_name[name].inputs[0] if by_name[name].inputs else ""
        path.reverse()
        atol: float | None = 0.0
        rtol = 0.0
        for step in path:
            gain = _gain(by_name[step])
            atol = None if atol is None or gain is None else atol * gain
            applied = own[step]
            if applied is None:
                continue
            margin = applied.margin
            if margin.value is None:
                atol = None
            elif margin.unit is Unit.RELATIVE:
                rtol += margin.value
            elif atol is not None:
                atol += margin.value
        applied_on_path = tuple(a for a in (own[p] for p in path) if a is not None)
        result[s.name] = StageMargins(s.name, applied_on_path, Bound(atol, rtol))
    return result


@dataclass(frozen=True)
class CpuStandIn:
    """That DALI ran rewritten CPU operators in place of the GPU ones the pipeline was written with."""

    operators: tuple[str, ...]  # "resize (gpu)", "decoders.image (mixed)", in graph order
    total: int  # operator outputs in the pipeline

    def line(self) -> str:
        return (f"DALI ran on the CPU: {len(self.operators)} of {self.total} operators were written for the GPU "
                f"({', '.join(self.operators)}) and ran as their CPU implementations; each stage states the margin "
                "a GPU run may differ by")

    def record(self) -> dict:
        return dict(operators=list(self.operators), total=self.total)


def cpu_stand_in(stages: list[DaliStage], *, ran_on: str) -> CpuStandIn | None:
    """What to say once per run where GPU operators ran on the CPU (None where none did)."""
    moved = rewritten(stages, ran_on=ran_on)
    if not moved:
        return None
    return CpuStandIn(tuple(f"{s.display} ({s.device})" for s in moved), len(stages))


# ---- TensorRT ----------------------------------------------------------------------------------

class TrtPrecision(str, Enum):
    """How a TensorRT engine computes: FP32 with TF32 off, FP32 with TF32 on (TensorRT's default on
    Ampere and later), or FP16."""

    FP32 = "fp32"
    TF32 = "tf32"
    FP16 = "fp16"


@dataclass(frozen=True)
class LogitTolerance:
    """Elementwise ``|trt - reference| <= atol + rtol * |reference|`` on the logits."""

    precision: TrtPrecision
    description: str
    atol: float
    rtol: float
    source: str
    also: str = ""  # checks beyond the elementwise bound

    def excess(self, got, reference) -> float:
        """The greatest amount by which a logit passes its bound (<= 0: within the tolerance)."""
        import numpy as np

        return float((np.abs(got - reference) - (self.atol + self.rtol * np.abs(reference))).max())

    def line(self) -> str:
        also = f" (and {self.also})" if self.also else ""
        return f"atol={self.atol:g}, rtol={self.rtol:g}{also}"

    def record(self) -> dict:
        return dict(precision=self.precision.value, description=self.description, atol=self.atol, rtol=self.rtol,
                    also=self.also, source=self.source)


TRT_TOLERANCES: dict[TrtPrecision, LogitTolerance] = {t.precision: t for t in (
    LogitTolerance(TrtPrecision.FP32, "FP32 with TF32 off", 1e-4, 1e-4,
                   "measured max 2.4e-7 vs ONNX Runtime (TensorRT issue #3279); Polygraphy's "
                   "default atol=rtol=1e-5 (tools/Polygraphy/polygraphy/comparator/compare.py), which clears TF32"),
    LogitTolerance(TrtPrecision.TF32, "FP32 with TF32 on", 1e-2, 1e-2,
                   "BuilderFlag.TF32 'Enabled by default' (TensorRT python/docstrings/infer/"
                   "pyCoreDoc.h): conv/matmul inputs rounded to 10 bits; torch2trt issue #879 (ResNet-18, "
                   "sum |Δ| 0.69 where FP32 gave 0.0017)"),
    LogitTolerance(TrtPrecision.FP16, "FP16", 5e-2, 1e-2,
                   "torch2trt issue #879 (ResNet-18, ~5e-3 per logit); TensorRT issue #2709 (ViT, "
                   "max 0.012, mean 0.005)", also="top-1 agreement and top-5 overlap"),
)}


def trt_tolerance(precision: str | TrtPrecision) -> LogitTolerance:
    return TRT_TOLERANCES[TrtPrecision(precision)]


def onnxruntime_stand_in(precision: str | TrtPrecision | None) -> str:
    """The sentence for a run where ONNX Runtime answered in place of TensorRT (no GPU)."""
    if precision is not None:
        tol = trt_tolerance(precision)
        return (f"ONNX Runtime stood in for TensorRT; a TensorRT {tol.description} engine would be held to "
                f"{tol.line()}")
    fp32, tf32, fp16 = (TRT_TOLERANCES[p] for p in TrtPrecision)
    return (f"ONNX Runtime stood in for TensorRT; a TensorRT engine would be held to {tf32.line()} as TensorRT "
            f"builds by default ({tf32.description}), {fp32.line()} with TF32 off, {fp16.line()} in FP16 "
            "(set model.trt_precision to say which)")


# ---- the tables of docs/gpu.md and docs/tolerances.md, generated so the documents cannot drift -------------

def _row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def margins_table() -> str:
    """The operator margins as a Markdown table (docs/gpu.md)."""
    rows = [_row(("operator", "GPU vs CPU", "where", "evidence", "source")), _row(("---",) * 5)]
    for m in MARGINS.values():
        operator = m.operator or "any other operator that computes values"
        mean = f" (mean ≤{m.mean:g})" if m.mean is not None else ""
        where = m.condition[1:-1] if m.condition.startswith("(") and m.condition.endswith(")") else m.condition
        rows.append(_row((operator, m.amount + mean, where, m.evidence.value, m.source)))
    return "\n".join(rows) + "\n"


def trt_table() -> str:
    """The TensorRT logit tolerances by precision as a Markdown table (docs/tolerances.md, docs/gpu.md)."""
    rows = [_row(("model.trt_precision", "engine", "atol", "rtol", "also checked", "source")), _row(("---",) * 6)]
    for t in TRT_TOLERANCES.values():
        rows.append(_row((f"`'{t.precision.value}'`", t.description, f"{t.atol:g}", f"{t.rtol:g}", t.also or "—",
                          t.source)))
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(margins_table())
    print(trt_table())
