"""Run the bug zoo and count: broken pipelines detected, causes named correctly, causes the ground truth rules
out, unexplained failures, false alarms.

Each zoo pipeline goes through what parity runs: the harness over its images (stage comparison and diagnosis)
and the determinism check (the pipeline run twice on the same input). Used by tests/test_zoo.py and
benchmarks/zoo_figures.py, which writes docs/zoo.md (test support, not part of the installed package), so the
figures printed and documented are the ones tested.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parity.config.load import ParityConfig, config_from_dict
from parity.dali.determinism import DeterminismResult, check_determinism
from parity.images import client_input
from parity.run.harness import Harness

ZOO = Path(__file__).resolve().parents[1] / "fixtures" / "zoo"
FIXTURES = ZOO.parent
SEED = FIXTURES / "seed"
RANDOM = "random_operator"  # the kind the determinism check names


@dataclass
class ZooOutcome:
    name: str
    expected: str | None  # cause kind, None for a correct pipeline
    rules_out: frozenset = frozenset()
    known_gap: str = ""
    also: tuple = ()  # a second mistake's causes, named with ``expected``
    failed_images: list = field(default_factory=list)
    named: dict = field(default_factory=dict)  # image -> cause kinds of its first failing stage
    determinism: DeterminismResult | None = None

    @property
    def detected(self) -> bool:
        return bool(self.failed_images) or self.random_found

    @property
    def random_found(self) -> bool:
        """The determinism check failed: two runs of the same input differ."""
        return self.determinism is not None and not self.determinism

    @property
    def kinds(self) -> set:
        """Every cause named: on any image, and the determinism check's."""
        found = {k for kinds in self.named.values() for k in kinds}
        return found | ({RANDOM} if self.random_found else set())

    @property
    def names_expected(self) -> bool:
        """The expected cause is named: on every failing image, or by the determinism check for a random one."""
        if not self.detected:
            return False
        if self.expected == RANDOM:
            return self.random_found and bool(self.determinism.operators)
        return all({self.expected, *self.also} <= set(kinds) for kinds in self.named.values())

    @property
    def expected_text(self) -> str:
        return " + ".join((self.expected, *self.also)) if self.expected else "(correct)"

    @property
    def named_correctly(self) -> bool:
        return self.names_expected and not self.known_gap and not self.wrong

    @property
    def wrong(self) -> dict:
        """image -> the causes named there that the ground truth rules out."""
        return {image: sorted(set(kinds) & self.rules_out) for image, kinds in self.named.items()
                if set(kinds) & self.rules_out}

    @property
    def unexplained(self) -> bool:
        """Detected, but no cause named at all."""
        return self.detected and not self.kinds


def manifest():
    """(CORRECT, BROKEN) of fixtures/zoo/manifest.py: name -> Correct / Broken."""
    spec = importlib.util.spec_from_file_location("parity_zoo_manifest", ZOO / "manifest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.CORRECT, module.BROKEN


def zoo_images(entry) -> list[Path]:
    """The images a zoo entry is checked on: its own, else the bundled samples."""
    if entry.images:
        return [FIXTURES / image for image in entry.images]
    return sorted((FIXTURES / "images").glob("*.png"))


def zoo_config(name: str, entry=None) -> ParityConfig:
    """The parity config of one zoo pipeline against the seed's HRNet reference, or the entry's own."""
    if entry is None:
        correct, broken = manifest()
        entry = {**correct, **broken}[name]
    return config_from_dict(dict(
        reference=dict(config=getattr(entry, "reference", "") or str(SEED / "hrnet_w30_512x384.py")),
        dali=dict(pipeline=f"pipelines.py:{name}", input_name="INPUT", input_format=entry.input_format,
                  output_layout="CHW"),
        images=[str(p) for p in zoo_images(entry)]), ZOO / "zoo_config.py")


def client_feed(path: Path, input_format: str) -> np.ndarray:
    """What a client sends for the image at ``path``."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    return client_input(rgb, "RGB", path, input_format)


def run_entry(name: str, entry, images=None, harness: Harness | None = None) -> ZooOutcome:
    """Check one zoo pipeline on ``images`` (default: its own), as parity would."""
    broken = getattr(entry, "kind", None)
    outcome = ZooOutcome(name, broken, getattr(entry, "rules_out", frozenset()), getattr(entry, "known_gap", ""),
                         getattr(entry, "also", ()))
    harness = harness or Harness(zoo_config(name, entry))
    paths = list(images) if images is not None else zoo_images(entry)
    for result in harness.run(paths):
        failure = result.first_failure
        if failure is not None or result.error:
            outcome.failed_images.append(result.image)
            kinds = failure.diagnosis.kinds if failure is not None and failure.diagnosis else ()
            outcome.named[result.image] = tuple(getattr(k, "value", k) for k in kinds)  # enum members: their names
    # every image: a flat one alone would hide a random mirror
    outcome.determinism = check_determinism(harness.dali, [client_feed(p, entry.input_format) for p in paths])
    return outcome


def run_zoo() -> list[ZooOutcome]:
    correct, broken = manifest()
    return [run_entry(n, e) for n, e in correct.items()] + [run_entry(n, e) for n, e in broken.items()]


def totals(outcomes: list[ZooOutcome]) -> dict:
    broken = [o for o in outcomes if o.expected]
    correct = [o for o in outcomes if not o.expected]
    return dict(broken=len(broken), detected=sum(o.detected for o in broken),
                named=sum(o.named_correctly for o in broken),
                gaps=sum(o.detected and bool(o.known_gap) for o in broken),
                ruled_out=sum(bool(o.wrong) for o in broken),
                unexplained=sum(o.unexplained for o in broken),
                images_unexplained=sum(not kinds for o in broken if o.expected != RANDOM for kinds in o.named.values()),
                images_failed=sum(len(o.failed_images) for o in broken if o.expected != RANDOM),
                correct=len(correct), false_alarms=sum(o.detected for o in correct))


def headline(outcomes: list[ZooOutcome]) -> str:
    t = totals(outcomes)
    return (f"broken detected: {t['detected']}/{t['broken']}; named correctly: {t['named']}/{t['broken']}; "
            f"detected but not named (known gaps): {t['gaps']}; named a cause the ground truth rules out: "
            f"{t['ruled_out']}; unexplained: {t['unexplained']} (images naming no cause: {t['images_unexplained']}/"
            f"{t['images_failed']}); false alarms: {t['false_alarms']}/{t['correct']} correct pipelines")


def named_text(outcome: ZooOutcome) -> str:
    return ", ".join(sorted(outcome.kinds)) or "-"


def figures(outcomes: list[ZooOutcome]) -> str:
    lines = [f"{'pipeline':<32} {'expected':<24} {'failed images':>13}  named"]
    for o in outcomes:
        lines.append(f"{o.name:<32} {o.expected_text:<24} {len(o.failed_images):>13}  {named_text(o)}"
                     + ("  [known gap]" if o.known_gap else ""))
    lines.append(headline(outcomes))
    return "\n".join(lines)


def _pipeline_docs() -> dict:
    """name -> first line of the zoo pipeline's docstring (what is wrong, or how a correct one is written)."""
    spec = importlib.util.spec_from_file_location("parity_zoo_pipelines", ZOO / "pipelines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: " ".join((getattr(module, name).__doc__ or "").split("\n\n")[0].split()) for name in dir(module)}


def _families(kinds: frozenset) -> str:
    """Ruled-out causes as the manifest's families (value, geometry, ...) where a whole family is."""
    module = sys.modules["parity_zoo_manifest"]
    families = []
    for family, members in (("value", module.VALUE), ("normalization", module.NORMALIZATION),
                            ("geometry", module.GEOMETRY), ("layout/dtype", module.LAYOUT)):
        if members <= kinds:
            families.append(family)
            kinds = kinds - members
    return ", ".join(families + sorted(f"`{k}`" for k in kinds)) or "-"


def _cite(text: str) -> str:
    if text.startswith("https://github.com/"):
        owner_repo, _, number = text.removeprefix("https://github.com/").partition("/issues/")
        if not number:
            owner_repo, _, number = text.removeprefix("https://github.com/").partition("/pull/")
        return f"[{owner_repo}#{number}]({text})"
    return text.replace("../shared/notes/", "")


def cases_table() -> str:
    """The manifest as docs/zoo.md shows it: what each pipeline does wrong, the cause parity must name, the
    causes its ground truth rules out, and where the mistake was reported."""
    correct, broken = manifest()
    docs = _pipeline_docs()
    lines = ["| pipeline | the mistake | cause to name | never to be called | reported in |",
             "| --- | --- | --- | --- | --- |"]
    for name, e in broken.items():
        extra = " (encoded input)" if e.input_format == "encoded" else ""
        kinds = " + ".join(f"`{k}`" for k in (e.kind, *e.also))
        lines.append(f"| `{name}` | {docs[name]}{extra} | {kinds} | {_families(e.rules_out)} | {_cite(e.cite)} |")
    lines += ["", "| correct pipeline | how it is written |", "| --- | --- |"]
    lines += [f"| `{name}` | {docs[name] or c.how} |" for name, c in correct.items()]
    return "\n".join(lines)


def results_markdown(outcomes: list[ZooOutcome], seconds: float) -> str:
    """The measured part of docs/zoo.md: the figures, then each pipeline's verdict."""
    t = totals(outcomes)
    lines = ["| broken pipelines | detected | named correctly | detected, not named (known gaps) | "
             "named a cause the truth rules out | unexplained | correct pipelines | false alarms |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |",
             f"| {t['broken']} | {t['detected']} | {t['named']} | {t['gaps']} | {t['ruled_out']} | {t['unexplained']} "
             f"| {t['correct']} | {t['false_alarms']} |", "",
             f"Of the {t['images_failed']} failing images of broken pipelines (random operators aside: the "
             f"determinism check names those), {t['images_unexplained']} name no cause.", "",
             f"Measured by `python benchmarks/zoo_figures.py --markdown` ({seconds:.0f} s on 2 CPU cores).", "",
             "| pipeline | cause to name | images failed | causes named | verdict |", "| --- | --- | --- | --- | --- |"]
    for o in outcomes:
        images = f"{len(o.failed_images)}" + (" + determinism" if o.random_found else "")
        if not o.expected:
            verdict = "false alarm" if o.detected else "passes"
        elif o.wrong:
            verdict = "named a ruled-out cause"
        elif o.known_gap:
            verdict = f"known gap: {o.known_gap}"
        else:
            verdict = ("named" if o.named_correctly else "unexplained" if o.unexplained
                       else "detected, not named" if o.detected else "missed")
        lines.append(f"| `{o.name}` | {o.expected_text} | {images} | {named_text(o)} | {verdict} |")
    return "\n".join(lines)
