"""What a CPU verdict covers on the GPU, stated with every run: which operators ran as their CPU
implementations, the margin a GPU run may differ by on each stage (:mod:`parity.gpu.margins`, from
published numbers), and, where ONNX Runtime stood in for TensorRT, the tolerance a TensorRT engine would
be held to. The CLI summary, the report, JUnit properties and the JSON all print this one object."""

from __future__ import annotations

from dataclasses import dataclass, field

from parity.gpu.margins import CpuStandIn, StageMargins, cpu_stand_in, onnxruntime_stand_in, stage_margins


@dataclass(frozen=True)
class GpuCoverage:
    stand_in: CpuStandIn | None  # None: DALI ran on the device the pipeline was written for
    margins: dict = field(default_factory=dict)  # stage label -> StageMargins (only stages with a margin)
    model: str = ""  # "ONNX Runtime stood in for TensorRT; ..." when it did

    def lines(self) -> list[str]:
        lines = [self.stand_in.line()] if self.stand_in else []
        lines += [f"  {label}: {m.line()}" for label, m in self.margins.items()]
        return lines + ([self.model] if self.model else [])

    def margin_of(self, stage: str) -> str:
        """The JUnit property of a stage's test case ('' when no margin applies)."""
        margins = self.margins.get(stage)
        return margins.line() if margins else ""

    def record(self) -> dict:
        return dict(cpu_stand_in=self.stand_in.record() if self.stand_in else None,
                    stages={label: m.record() for label, m in self.margins.items()}, model=self.model or None)


def gpu_coverage(stages, pairs, *, ran_on: str, deployed: str | None, trt_precision: str | None) -> GpuCoverage:
    """From the DALI graph (``DaliRunner.stages``), the aligned stage pairs, and the backend that answered
    for the deployed model (None without a model section)."""
    by_name: dict[str, StageMargins] = stage_margins(stages, ran_on=ran_on)
    margins = {p.label: by_name[p.dali.name] for p in pairs if p.dali.name in by_name and by_name[p.dali.name].applies}
    return GpuCoverage(cpu_stand_in(stages, ran_on=ran_on), margins,
                       onnxruntime_stand_in(trt_precision) if deployed == "onnxruntime" else "")
