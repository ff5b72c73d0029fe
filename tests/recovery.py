"""Mistakes of each family applied by real DALI operators to an otherwise exact stage, and what the diagnosis
recovers: the family's cause alone, and its parameter within a stated bound.

The reference's stage is a 224x224 window at (16, 16) of a 256x256 photo; DALI's is the same window through
one operator with drawn parameters (fn.slice elsewhere, fn.warp_affine zooming in or out about the centre,
fn.gaussian_blur, fn.hsv, fn.brightness_contrast, fn.rotate; fn.slice then fn.brightness_contrast for two mistakes
at once). Used by tests/test_diagnose.py (hypothesis properties) and benchmarks/diagnosis_recovery.py, which
writes the recovery table of docs/diagnosis.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from parity.config.load import Tolerance
from parity.diagnose.stage import diagnose_arrays

IMAGES = Path(__file__).resolve().parents[1] / "fixtures" / "images"
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.png")
PIXELS = Tolerance(atol=5, max_mismatch=0.005, unit="uint8 levels")
SIDE, WINDOW, ANCHOR = 256, 224, 16
PER_FAMILY = 20  # draws per family in docs/diagnosis.md's table (seed 0)


@dataclass(frozen=True)
class Family:
    operators: str  # the DALI operators that apply it, as the docs show them
    kinds: tuple  # the causes to name
    bound: str  # how close the recovered parameters must be, as the docs state it


FAMILIES = {
    "translation": Family("`fn.slice`", ("offset",), "(dy, dx) exact"),
    "zoom": Family("`fn.warp_affine`", ("zoom",), "factor within 1%"),
    "blur": Family("`fn.gaussian_blur`", ("spatial_filter",), "sigma within 10%"),
    "hue": Family("`fn.hsv`", ("color_transform",), "angle within 2 degrees"),
    "gain": Family("`fn.brightness_contrast`", ("brightness_contrast",), "gain within 0.02"),
    "rotation": Family("`fn.rotate`", ("orientation",), "the turn exact"),
    "zoom out": Family("`fn.warp_affine`", ("zoom",), "factor within 1%"),  # DALI shows more of the image, smaller
    # two mistakes at once: the window placed elsewhere, then a brightness change
    "translation + gain": Family("`fn.slice`, `fn.brightness_contrast`", ("offset", "brightness_contrast"),
                                 "(dy, dx) exact, gain within 0.02"),
    "zoom + gain": Family("`fn.warp_affine`, `fn.brightness_contrast`", ("zoom", "brightness_contrast"),
                          "factor within 1%, gain within 0.02"),
}
_OUTPUTS = ("translation", "zoom", "blur", "hue", "gain", "rotation", "translation + gain", "zoom + gain")


@cache
def photo(name: str) -> np.ndarray:
    """A bundled photo as a 256x256 RGB uint8 image."""
    from PIL import Image

    with Image.open(IMAGES / name) as image:
        return np.asarray(image.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BILINEAR))


@lru_cache(maxsize=1)
def _pipeline():
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(batch_size=1, num_threads=1, device_id=None, exec_async=False, exec_pipelined=False)
    def families():
        image = fn.external_source(name="IMAGE", layout="HWC")
        anchor = fn.external_source(name="ANCHOR")
        matrix = fn.external_source(name="MATRIX")
        sigma, hue, gain, angle = (fn.external_source(name=n) for n in ("SIGMA", "HUE", "GAIN", "ANGLE"))
        window = fn.slice(image, anchor, types.Constant([WINDOW, WINDOW], dtype=types.INT32), axis_names="HW")
        centre = fn.crop(image, crop=(WINDOW, WINDOW))
        zoomed = fn.warp_affine(centre, matrix=matrix, fill_value=0, interp_type=types.INTERP_LINEAR)
        return (window, zoomed, fn.gaussian_blur(centre, sigma=sigma), fn.hsv(centre, hue=hue),
                fn.brightness_contrast(centre, brightness=gain), fn.rotate(centre, angle=angle, keep_size=True),
                fn.brightness_contrast(window, brightness=gain), fn.brightness_contrast(zoomed, brightness=gain))

    pipe = families()
    pipe.build()
    return pipe


def _zoom_matrix(factor: float) -> np.ndarray:
    """fn.warp_affine's output-to-input map magnifying a 224x224 window ``factor`` times about its centre."""
    c = WINDOW / 2
    return np.array([[1 / factor, 0, c * (1 - 1 / factor)], [0, 1 / factor, c * (1 - 1 / factor)]], np.float32)


def dali_stage(family: str, image: np.ndarray, value) -> np.ndarray:
    """DALI's stage for ``family`` with parameter ``value`` (for a composed family, a tuple of both), as (C,H,W)
    uint8."""
    pipe = _pipeline()
    anchor, gain = {"translation": (value, 1.0), "translation + gain": value}.get(family, ((ANCHOR, ANCHOR), 1.0))
    factor, gain = {"zoom": (value, gain), "zoom out": (value, gain), "zoom + gain": value}.get(family, (1.0, gain))
    feeds = {"IMAGE": image, "ANCHOR": np.array(anchor, np.int32), "MATRIX": _zoom_matrix(factor),
             "SIGMA": np.float32(value if family == "blur" else 1.0), "HUE": np.float32(value if family == "hue" else 0),
             "GAIN": np.float32(value if family == "gain" else gain),
             "ANGLE": np.float32(value if family == "rotation" else 0)}
    for name, data in feeds.items():
        pipe.feed_input(name, [data])
    outputs = [np.asarray(o[0]) for o in pipe.run()]
    return np.ascontiguousarray(np.moveaxis(outputs[_OUTPUTS.index(family.replace(" out", ""))], -1, 0))


def reference_stage(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(image[ANCHOR:ANCHOR + WINDOW, ANCHOR:ANCHOR + WINDOW], -1, 0))


def draw(family: str, rng: np.random.Generator):
    """A parameter of ``family`` far enough from the identity to fail the stage."""
    sign = rng.choice([-1, 1])
    if family == "translation":
        return tuple(int(v) for v in rng.integers(0, SIDE - WINDOW + 1, 2))
    if family == "zoom":
        return float(rng.uniform(1.1, 2.5))
    if family == "zoom out":
        return float(rng.uniform(0.5, 0.9))
    if family == "blur":
        return float(rng.uniform(0.6, 3.0))
    if family == "hue":
        return float(sign * rng.uniform(8, 60))
    if family == "gain":
        return float(rng.uniform(1.2, 1.8))
    if family in ("translation + gain", "zoom + gain"):
        return draw(family.split(" + ")[0], rng), draw("gain", rng)
    return float(rng.choice([90, 180, 270]))


def recovered(family: str, value, causes: tuple) -> bool:
    """Whether the parameters of ``causes`` (the family's, in its order) are ``value`` within the family's bound."""
    if family in ("translation + gain", "zoom + gain"):
        return recovered(family.split(" + ")[0], value[0], causes[:1]) and recovered("gain", value[1], causes[1:])
    p = causes[0].numbers
    if family == "translation":
        return (p.get("dy"), p.get("dx")) == (ANCHOR - value[0], ANCHOR - value[1])
    if family in ("zoom", "zoom out"):
        return abs(p["factor"] / value - 1) <= 0.01
    if family == "blur":
        return abs(p["sigma"] / value - 1) <= 0.1 and abs(p["amount"] + 1) <= 0.1
    if family == "hue":
        return abs(p.get("hue", np.inf) - value) <= 2
    if family == "gain":
        return bool(np.allclose(np.diag(p["matrix"]), value, atol=0.02))
    turns = {90: "rotated 90 degrees counter-clockwise", 180: "rotated 180 degrees",  # fn.rotate turns anticlockwise
             270: "rotated 90 degrees clockwise"}
    return turns[int(value)] in causes[0].finding


@dataclass(frozen=True)
class Trial:
    family: str
    value: object
    photo: str
    kinds: tuple  # the causes named
    recovered: bool  # the family's causes alone, with their parameters within the bound
    failed: bool  # the stage failed at all (an identity-like draw may pass)


def trial(family: str, value, name: str) -> Trial:
    image = photo(name)
    ref = reference_stage(image)
    dali = dali_stage(family, image, value)
    diagnosis = diagnose_arrays(dali, ref, PIXELS)
    failed = bool(diagnosis.causes) or diagnosis.unexplained is not None
    kinds = tuple(str(k) for k in diagnosis.kinds)
    return Trial(family, value, name, kinds,
                 kinds == FAMILIES[family].kinds and recovered(family, value, diagnosis.causes), failed)


def trials(per_family: int, seed: int = 0) -> list[Trial]:
    """``per_family`` seeded draws of every family, each on a photo drawn too."""
    rng = np.random.default_rng(seed)
    out = []
    for family in FAMILIES:
        for _ in range(per_family):
            out.append(trial(family, draw(family, rng), PHOTOS[int(rng.integers(len(PHOTOS)))]))
    return out


def table(results: list[Trial]) -> str:
    """The recovery rates per family, as docs/diagnosis.md shows them."""
    lines = ["| family | DALI operator | cause named | bound on the parameter | draws | recovered |",
             "| --- | --- | --- | --- | --- | --- |"]
    for family, spec in FAMILIES.items():
        mine = [t for t in results if t.family == family]
        good = sum(t.recovered for t in mine)
        named = " + ".join(f"`{kind}`" for kind in spec.kinds)
        lines.append(f"| {family} | {spec.operators} | {named} | {spec.bound} | {len(mine)} | "
                     f"{good}/{len(mine)} ({100 * good / max(len(mine), 1):.0f}%) |")
    return "\n".join(lines)
