"""Run the bug zoo and count: broken pipelines detected, causes named correctly, false alarms.

Used by tests/test_zoo.py and benchmarks/zoo_figures.py (test support, not part of the installed package), so the figures printed are the ones tested.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from parity.config import ParityConfig, config_from_dict
from parity.engine import Harness

ZOO = Path(__file__).resolve().parents[1] / "fixtures" / "zoo"
SEED = ZOO.parent / "seed"


@dataclass
class ZooOutcome:
    name: str
    expected: str | None  # cause kind, None for a correct pipeline
    failed_images: list = field(default_factory=list)
    named: dict = field(default_factory=dict)  # image -> cause kinds of its first failing stage

    @property
    def detected(self) -> bool:
        return bool(self.failed_images)

    @property
    def named_correctly(self) -> bool:
        return self.detected and all(self.expected in kinds for kinds in self.named.values())


def manifest():
    spec = importlib.util.spec_from_file_location("parity_zoo_manifest", ZOO / "manifest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CORRECT, module.BROKEN


def zoo_config(name: str) -> ParityConfig:
    """The parity config of one zoo pipeline against the seed's HRNet reference and the bundled images."""
    return config_from_dict(dict(
        reference=dict(config=str(SEED / "hrnet_w30_512x384.py")),
        dali=dict(pipeline=f"pipelines.py:{name}", input_name="INPUT", input_format="BGR", output_layout="CHW"),
        images=[str(ZOO.parent / "images" / "*.png")]), ZOO / "zoo_config.py")


def run_entry(name: str, expected: str | None, images=None) -> ZooOutcome:
    outcome = ZooOutcome(name, expected)
    for result in Harness(zoo_config(name)).run(images):
        failure = result.first_failure
        if failure is not None:
            outcome.failed_images.append(result.image)
            outcome.named[result.image] = failure.diagnosis.kinds if failure.diagnosis else ()
    return outcome


def run_zoo() -> list[ZooOutcome]:
    correct, broken = manifest()
    return [run_entry(n, None) for n in correct] + [run_entry(n, k) for n, k in broken.items()]


def figures(outcomes: list[ZooOutcome]) -> str:
    broken = [o for o in outcomes if o.expected]
    correct = [o for o in outcomes if not o.expected]
    lines = [f"{'pipeline':<30} {'expected':<24} {'failed images':>13}  named"]
    for o in outcomes:
        named = sorted({k for kinds in o.named.values() for k in kinds}) or ["-"]
        lines.append(f"{o.name:<30} {o.expected or '(correct)':<24} {len(o.failed_images):>13}  {', '.join(named)}")
    lines.append(f"broken detected: {sum(o.detected for o in broken)}/{len(broken)}; "
                 f"named correctly: {sum(o.named_correctly for o in broken)}/{len(broken)}; "
                 f"false alarms: {sum(o.detected for o in correct)}/{len(correct)} correct pipelines")
    return "\n".join(lines)
