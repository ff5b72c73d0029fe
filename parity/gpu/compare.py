"""Where a GPU exists, the CPU verdict is checked on it: the same DALI pipeline runs as written (its 'gpu'
operators and 'mixed' decoder on the GPU) and rewritten to the CPU, and each stage's measured GPU-vs-CPU
difference is reported next to the margin the published numbers allow.

The comparison (:func:`compare_devices`) is plain numpy on two dicts of arrays, so it is tested without a
GPU; only :func:`run_on_both` needs one, and it skips with its reason where DALI sees none.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity.gpu.margins import StageMargins, stage_margins
from parity.results.protocol import CheckResult

NO_GPU = "no CUDA device visible to DALI: the GPU-vs-CPU comparison runs where a GPU is present"
NOTHING_ON_GPU = "the pipeline has no operator written for the GPU: it computes the same on both devices"


@dataclass(frozen=True)
class DeviceDifference:
    """One stage: how far the GPU's output is from the CPU's, against the margin of its path."""

    stage: str  # DALI output name
    where: str  # the operator's source line
    status: str  # passed | failed | unbounded (an operator on the path has no published number)
    margins: StageMargins
    max_abs: float = 0.0
    mean_abs: float = 0.0
    beyond: int = 0  # elements beyond the margin
    total: int = 0
    problem: str = ""  # why the outputs cannot be compared element by element

    def line(self) -> str:
        if self.problem:
            return f"{self.where}: {self.problem}"
        verdict = {"passed": "within", "failed": f"{self.beyond} of {self.total} elements beyond",
                   "unbounded": "reported against"}[self.status]
        return (f"{self.where}: GPU vs CPU max |Δ| {self.max_abs:.4g}, mean {self.mean_abs:.4g}: {verdict} the "
                f"margin {self.margins.bound.line()} ({self.margins.line()})")

    def record(self) -> dict:
        return dict(stage=self.stage, where=self.where, status=self.status, max_abs=self.max_abs,
                    mean_abs=self.mean_abs, beyond=self.beyond, total=self.total, problem=self.problem,
                    margins=self.margins.record())


@dataclass(frozen=True)
class GpuCompareResult(CheckResult):
    """One image's ``gpu-vs-cpu`` check: failed where a stage is beyond its margin."""

    status: str  # passed | failed | skipped
    image: str
    differences: tuple[DeviceDifference, ...] = ()
    skip_reason: str = ""

    def message(self) -> str:
        if self.status == "skipped":
            return f"GPU-vs-CPU comparison of {self.image!r} was not run: {self.skip_reason}"
        head = ("DALI on the GPU and on the CPU agree within the published margins" if self.status == "passed" else
                "DALI on the GPU differs from DALI on the CPU beyond the published margins")
        return "\n".join([f"{head} on image {self.image!r}!", "", *(f"- {d.line()}" for d in self.differences)])

    def record(self) -> dict:
        return dict(status=self.status, image=self.image, skip_reason=self.skip_reason,
                    differences=[d.record() for d in self.differences])


def _difference(name: str, where: str, gpu: np.ndarray, cpu: np.ndarray, margins: StageMargins) -> DeviceDifference:
    if gpu.shape != cpu.shape:
        return DeviceDifference(name, where, "failed", margins,
                                problem=f"the GPU output has shape {gpu.shape}, the CPU output {cpu.shape}")
    g, c = gpu.astype(np.float64), cpu.astype(np.float64)
    diff = np.abs(g - c)
    max_abs = float(diff.max()) if diff.size else 0.0
    mean_abs = float(diff.mean()) if diff.size else 0.0
    bound = margins.bound
    if bound.atol is None:
        return DeviceDifference(name, where, "unbounded", margins, max_abs, mean_abs, total=diff.size)
    beyond = int(np.count_nonzero(diff > bound.atol + bound.rtol * np.abs(c)))
    return DeviceDifference(name, where, "failed" if beyond else "passed", margins, max_abs, mean_abs, beyond,
                            diff.size)


def compare_devices(gpu: dict[str, np.ndarray], cpu: dict[str, np.ndarray], margins: dict[str, StageMargins], *,
                    image: str, where: dict[str, str] | None = None) -> GpuCompareResult:
    """Compare one image's stage outputs from the GPU run with the CPU run's.

    Args:
        gpu (dict[str, np.ndarray]): stage output name -> array, from the pipeline run as written on the GPU.
        cpu (dict[str, np.ndarray]): the same, from the pipeline rewritten to the CPU.
        margins (dict[str, StageMargins]): from :func:`~parity.gpu.margins.stage_margins` with ``ran_on='cpu'``;
            its order (graph order) is the report's, and only stages behind a GPU operator are compared.
        image (str): the image's name.
        where (dict[str, str] | None): stage name -> source line, for the report. Defaults to the stage names.
    """
    where = where or {}
    differences = tuple(_difference(name, where.get(name, name), gpu[name], cpu[name], m)
                        for name, m in margins.items() if m.applies and name in gpu and name in cpu)
    failed = any(d.status == "failed" for d in differences)
    return GpuCompareResult("failed" if failed else "passed", image, differences)


def run_on_both(inputs: list[np.ndarray], names: list[str], *, pipeline: str | None, serialized: str | None,
                base_dir: Path, input_name: str | None, batch_size: int, num_threads: int) -> list[GpuCompareResult]:
    """Run the pipeline (arguments as :func:`parity.dali.runner.open_pipeline` takes them) on the GPU as written and
    rewritten to the CPU, and compare each image's stages; one skipped result where no GPU is present."""
    from parity.dali.runner import gpu_available, open_pipeline

    if not gpu_available():
        return [GpuCompareResult("skipped", "all images", skip_reason=NO_GPU)]
    open_on = functools.partial(open_pipeline, pipeline=pipeline, serialized=serialized, base_dir=base_dir,
                                input_name=input_name, batch_size=batch_size, num_threads=num_threads)
    on_gpu = open_on(device="gpu")
    margins = stage_margins(on_gpu.stages, ran_on="cpu")
    if not any(m.applies for m in margins.values()):
        return [GpuCompareResult("skipped", "all images", skip_reason=NOTHING_ON_GPU)]
    on_cpu = open_on(device="cpu")
    where = {s.name: s.where for s in on_gpu.stages}
    return [compare_devices(g, c, margins, image=name, where=where)
            for g, c, name in zip(on_gpu.run(inputs), on_cpu.run(inputs), names)]
