"""Training-time randomness left in an inference pipeline (fn.random_resized_crop, a coin-flip mirror, a
random jitter): the same request gets a different tensor each time. Found two ways: the graph's random
operators (DALI marks them with a random-state argument), and two runs of the same input that differ."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.dali.runner import DaliRunner, DaliStage
from parity.results.protocol import CheckResult

# What replaces an operator that transforms the image at random; a random generator (coin_flip, uniform,
# normal, ...) is instead fixed at the argument it draws.
_REPLACE = {
    "RandomResizedCrop": "replace it with the reference's deterministic resize and centre crop (fn.resize, fn.crop)",
    "decoders__ImageRandomCrop": "use fn.decoders.image, which decodes the whole image",
    "experimental__decoders__ImageRandomCrop": "use fn.decoders.image, which decodes the whole image",
    "ImageDecoderRandomCrop": "use fn.decoders.image, which decodes the whole image",
}


@dataclass(frozen=True)
class RandomOperator:
    """One random operator of the DALI graph and where its randomness enters the image."""

    op: str  # schema name, e.g. "random__CoinFlip"
    call: str  # as written, e.g. "fn.random.coin_flip"
    where: str  # its source line
    transforms_data: bool  # it changes the image itself (a random crop, noise), not only an argument
    # (argument name, consumer call, consumer source line) its values reach, directly or through arithmetic;
    # the argument is None where a value enters as data (``images * fn.random.uniform()``)
    drives: tuple = ()

    @property
    def fix(self) -> str:
        """The change to make, naming the argument where the randomness enters."""
        if self.transforms_data:
            return _REPLACE.get(self.op, "remove it from the inference pipeline (a training-time augmentation)")
        if not self.drives:
            return "remove it"
        return "; ".join(self._fix_one(*drive) for drive in self.drives)

    def _fix_one(self, arg: str | None, consumer: str, where: str) -> str:
        at = "" if where == self.where else f" at {where}"
        if arg is None:
            return f"replace its value by a constant in {consumer}{at}"
        if self.op.endswith("CoinFlip"):
            return f"set {arg}=0 in {consumer}{at}"
        return f"give {arg}= of {consumer}{at} the fixed value the reference uses"

    def sentence(self) -> str:
        drives = ", ".join(f"{arg}= of {consumer}" if arg else f"the value {consumer} uses"
                           for arg, consumer, _ in self.drives)
        what = f"draws {drives} anew on every run" if drives and not self.transforms_data else \
            "gives another result on every run"
        return f"{self.call} ({self.where}) {what}: {self.fix}."


@dataclass(frozen=True)
class DeterminismResult(CheckResult):
    """The ``determinism`` check item: the pipeline run twice on the same input."""

    status: str  # passed | failed
    operators: tuple = ()  # RandomOperator, in graph order
    max_difference: float = 0.0  # largest absolute difference between the two runs' outputs (inf: shapes differ)
    diverged_at: str = ""  # the first stage (source line) whose outputs differ between the runs
    samples: int = 0  # inputs run (each twice)
    skip_reason: str = ""

    def record(self) -> dict:
        return dict(status=self.status, operators=[dict(call=o.call, where=o.where, fix=o.fix) for o in self.operators],
                    max_difference=self.max_difference if np.isfinite(self.max_difference) else None,
                    diverged_at=self.diverged_at, samples=self.samples, message=self.message())

    def message(self) -> str:
        if self.status == "skipped":
            return f"The determinism check did not run: {self.skip_reason}"
        if self.status != "failed":
            if self.operators:
                names = ", ".join(f"{o.call} ({o.where})" for o in self.operators)
                return (f"DALI gave identical outputs on two runs of {self.samples} inputs, although the graph holds "
                        f"random operators: {names}.")
            return f"DALI gave identical outputs on two runs of {self.samples} inputs; the graph has no random operator."
        measured = (f"differ by up to {self.max_difference:.4g}" if np.isfinite(self.max_difference)
                    else "differ in shape")
        head = f"Two runs of the same input {measured}"
        if not self.operators:
            return (f"{head}, first at {self.diverged_at}, and the graph has no random operator: "
                    "a nondeterministic operator or a stateful Python function.")
        first, *rest = self.operators
        lines = [f"{head}: {first.sentence()}"]
        lines += [f"Also random: {o.sentence()}" for o in rest]
        lines.append(f"The runs first diverge at {self.diverged_at}; {self.samples} inputs were each run twice. "
                     "A deployed model must give one answer per image: training-time augmentations do not belong "
                     "in the inference pipeline.")
        return "\n".join(lines)


def _call(op: str, display: str) -> str:
    """``fn.random.coin_flip`` from schema name ``random__CoinFlip`` and display name ``coin_flip``."""
    if op.startswith("_"):  # DALI's internal operators: arithmetic on DataNodes
        return f"arithmetic ({display})"
    *modules, name = op.split("__")
    if not display:
        display = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    return ".".join(["fn", *modules, display])


def _is_random(op: str) -> bool:
    from nvidia.dali import backend

    try:
        return bool(backend.GetSchema(op).HasRandomStateArg())  # type: ignore[attr-defined]  # compiled, no stubs
    except RuntimeError:  # not a registered operator (an external source, a Python function)
        return False


def random_operators(stages: list[DaliStage]) -> list[RandomOperator]:
    """The random operators of a DALI graph (in graph order), each with the arguments its values reach,
    through arithmetic on random values and constants too."""
    constants = {s.name for s in stages if not s.inputs and not s.is_input and not _is_random(s.op)}
    found: list[RandomOperator] = []
    for stage in stages:
        if not _is_random(stage.op) or (stage.op, stage.where) in {(f.op, f.where) for f in found}:
            continue  # another output of an operator already listed
        reached = {s.name for s in stages if s.op == stage.op and s.where == stage.where}
        data = []
        for later in stages:  # graph order: a value computed only from random values and constants is random
            if not set(later.inputs) & reached:
                continue
            if set(later.inputs) <= reached | constants:
                reached.add(later.name)
            elif later.name not in reached:
                data.append((None, _call(later.op, later.display), later.where))
        drives = [(arg, _call(s.op, s.display), s.where) for s in stages for arg, src in s.arguments.items()
                  if src in reached]
        found.append(RandomOperator(stage.op, _call(stage.op, stage.display), stage.where,
                                    bool(stage.inputs), tuple(dict.fromkeys(drives + data))))
    return found


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0 or np.array_equal(a, b) or (a.dtype.kind == "f" and np.array_equal(a, b, equal_nan=True)):
        return 0.0
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def check_determinism(runner: DaliRunner, feed: list[np.ndarray], *, samples: int = 16) -> DeterminismResult:
    """Run ``feed`` (what the client sends: decoded images or encoded bytes) through the pipeline twice and
    compare. The inputs are repeated up to ``samples``, so a coin flip that happens to land the same way
    twice on every input (0.5 ** samples) does not hide."""
    if not feed:
        raise ValueError("check_determinism needs at least one input")
    inputs = [feed[i % len(feed)] for i in range(max(samples, len(feed)))]
    # each DALI iteration is run twice in a row and compared at once: only one iteration's stages are held
    final = runner.outputs[0]
    worst = 0.0
    differs: set[str] = set()
    for batch in runner.batches(inputs):
        for a, b in zip(runner.run(batch), runner.run(batch)):
            worst = max(worst, _difference(a[final], b[final]))
            differs.update(name for name in a if _difference(a[name], b[name]) > 0)
    diverged = next((s.where for s in runner.stages if s.name in differs), "")
    return DeterminismResult("failed" if worst > 0 else "passed", tuple(random_operators(runner.stages)), worst,
                             diverged, len(inputs))
