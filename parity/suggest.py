"""Write the DALI pipeline that reproduces an MMPretrain test pipeline + data preprocessor, then prove
it with the harness. Nothing is claimed that was not measured: :func:`verify` runs the generated code
against the real MMPretrain transforms and reports the numbers.

Size arithmetic is generated as DALI integer arithmetic on the image shape, with MMPretrain's own
rounding (``int()`` truncation in ResizeEdge, ``int(x + 0.5)`` in MMCV's rescale, Python's
round-half-to-even in CenterCrop offsets), so geometry is exact; only the resampling kernels of DALI
and Pillow/OpenCV differ (a few uint8 levels, measured and reported).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

_INTERP = {"bilinear": "INTERP_LINEAR", "nearest": "INTERP_NN", "bicubic": "INTERP_CUBIC",
           "lanczos": "INTERP_LANCZOS3", "area": "INTERP_LINEAR"}


@dataclass
class Suggestion:
    source: str  # a Python module with one @pipeline_def function
    function: str
    input_name: str
    supported: list = field(default_factory=list)  # transform types reproduced
    unsupported: list = field(default_factory=list)  # "Type: why"
    notes: list = field(default_factory=list)  # approximations worth knowing

    @property
    def complete(self) -> bool:
        return not self.unsupported


class _Writer:
    def __init__(self):
        self.lines: list[str] = []
        self.counter = 0

    def var(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, line: str) -> None:
        self.lines.append(line)


def _resize(out: _Writer, width: str, height: str, backend: str, interpolation: str, notes: list) -> None:
    interp = _INTERP.get(interpolation)
    if interp is None:
        raise ValueError(f"interpolation={interpolation!r}")
    if interpolation == "area":
        notes.append("cv2 INTER_AREA is approximated by DALI's antialiased linear resize")
    # Pillow filters scale their support when shrinking (antialiasing); OpenCV's do not
    antialias = backend == "pillow" or interpolation == "area"
    out.emit(f"images = fn.resize(images, resize_x=fn.cast({width}, dtype=types.FLOAT), "
             f"resize_y=fn.cast({height}, dtype=types.FLOAT), interp_type=types.{interp}, "
             f"antialias={antialias}, device=device)")
    out.emit(f"h, w = {height}, {width}")


def _banker_half(out: _Writer, diff: str) -> str:
    """Python's round(diff / 2) for an integer DataNode (round half to even), as DALI arithmetic."""
    k = out.var("k")
    out.emit(f"{k} = {diff} // 2")
    r = out.var("off")
    out.emit(f"{r} = {k} + ({diff} % 2) * ({k} % 2)")
    return r


def _crop(out: _Writer, crop_h: int, crop_w: int, policy: str, centred_pad: bool) -> None:
    """MMCV CenterCrop: offset round((size - crop) / 2), clamped at 0; torchvision centres padding."""
    anchors = []
    for size, crop in (("h", crop_h), ("w", crop_w)):
        d = out.var("d")
        out.emit(f"{d} = {size} - {crop}")
        off = _banker_half(out, d)
        if centred_pad:  # torchvision pads (crop - size) // 2 before, so the anchor is minus that
            small = out.var("small")
            out.emit(f"{small} = fn.cast({size} < {crop}, dtype=types.INT64)")
            out.emit(f"{off} = {small} * -(({crop} - {size}) // 2) + (1 - {small}) * {off}")
        else:
            out.emit(f"{off} = dmath.max({off}, 0)")
        anchors.append(off)
    out.emit(f"images = fn.slice(images, fn.cast(fn.stack({anchors[0]}, {anchors[1]}), dtype=types.INT32), "
             f"types.Constant(np.array([{crop_h}, {crop_w}], dtype=np.int32)), axis_names=\"HW\", "
             f"out_of_bounds_policy=\"{policy}\", device=device)")
    if policy == "pad":
        out.emit(f"h, w = h * 0 + {crop_h}, w * 0 + {crop_w}")
    else:  # trimmed to the image, as MMCV clips the crop box
        out.emit(f"h, w = dmath.min(h, {crop_h}), dmath.min(w, {crop_w})")


def _pair(value, name: str) -> tuple[int, int]:
    """MMCV sizes are (w, h); an int is square."""
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError(f"{name}={value!r}")


def suggest(test_pipeline: list, data_preprocessor: dict | None, *, input_format: str = "BGR",
            input_name: str = "INPUT", function: str = "preprocess") -> Suggestion:
    """Generate the DALI pipeline source for an MMPretrain ``test_pipeline`` and ``data_preprocessor``."""
    out = _Writer()
    supported, unsupported, notes = [], [], []
    channels = input_format if input_format in ("BGR", "RGB") else "RGB"
    if input_format == "encoded":
        out.emit(f"data = fn.external_source(name=\"{input_name}\", device=\"cpu\")  # encoded image bytes")
        out.emit("images = fn.decoders.image(data, device=\"mixed\" if device == \"gpu\" else \"cpu\", "
                 "output_type=types.RGB)")
        out.emit("shape = images.shape(dtype=types.INT64)")
        notes.append("the decoder is DALI's (libjpeg-turbo on the CPU, nvJPEG on the GPU), the reference's is "
                     "OpenCV: JPEG chroma upsampling may differ by a few levels")
    else:
        out.emit(f"raw = fn.external_source(name=\"{input_name}\", device=\"cpu\", layout=\"HWC\")  "
                 f"# {input_format} HWC uint8, as the client sends it")
        out.emit("shape = raw.shape(dtype=types.INT64)")
        out.emit("images = raw.gpu() if device == \"gpu\" else raw")
    out.emit("h, w = shape[0], shape[1]")
    for step in test_pipeline:
        kind = step.get("type", "")
        try:
            if kind.endswith("LoadImageFromFile") or kind in ("PackInputs", "PackClsInputs", "Collect"):
                supported.append(kind)
            elif kind == "ResizeEdge":
                scale, edge = int(step["scale"]), step.get("edge", "short")
                cond = {"short": "w < h", "long": "w > h", "width": "w > -1", "height": "w < -1"}[edge]
                c = out.var("by_width")
                out.emit(f"{c} = fn.cast({cond}, dtype=types.INT64)  # ResizeEdge(scale={scale}, edge='{edge}')")
                out.emit(f"width = {c} * {scale} + (1 - {c}) * (({scale} * w) // h)")
                out.emit(f"height = {c} * (({scale} * h) // w) + (1 - {c}) * {scale}")
                _resize(out, "width", "height", step.get("backend", "cv2"), step.get("interpolation", "bilinear"),
                        notes)
                supported.append(kind)
            elif kind == "Resize" and "scale" in step and not step.get("scale_factor"):
                sw, sh = _pair(step["scale"], "scale")
                backend, interp = step.get("backend", "cv2"), step.get("interpolation", "bilinear")
                if step.get("keep_ratio", False):
                    long_edge, short_edge = max(sw, sh), min(sw, sh)
                    out.emit(f"hf, wf = fn.cast(h, dtype=types.FLOAT64), fn.cast(w, dtype=types.FLOAT64)  "
                             f"# Resize(scale=({sw}, {sh}), keep_ratio=True)")
                    out.emit(f"factor = dmath.min({long_edge} / dmath.max(hf, wf), {short_edge} / dmath.min(hf, wf))")
                    out.emit("width = fn.cast(dmath.floor(wf * factor + 0.5), dtype=types.INT64)")
                    out.emit("height = fn.cast(dmath.floor(hf * factor + 0.5), dtype=types.INT64)")
                    _resize(out, "width", "height", backend, interp, notes)
                else:
                    out.emit(f"# Resize(scale=({sw}, {sh}), keep_ratio=False)")
                    _resize(out, f"(w * 0 + {sw})", f"(h * 0 + {sh})", backend, interp, notes)
                supported.append(kind)
            elif kind == "CenterCrop" and "crop_size" in step:
                cw, ch = _pair(step["crop_size"], "crop_size")
                out.emit(f"# CenterCrop(crop_size=({cw}, {ch}), auto_pad={bool(step.get('auto_pad'))})")
                _crop(out, ch, cw, "pad" if step.get("auto_pad") else "trim_to_shape", centred_pad=False)
                supported.append(kind)
            elif kind == "torchvision/CenterCrop":
                size = step["size"]
                ch, cw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
                out.emit(f"# torchvision CenterCrop(size=({ch}, {cw})): zero padding centred")
                _crop(out, ch, cw, "pad", centred_pad=True)
                supported.append(kind)
            elif kind == "NumpyToPIL":
                channels = {"BGR": "RGB", "RGB": "BGR"}[channels] if step.get("to_rgb") else channels
                supported.append(kind)
            elif kind in ("PILToNumpy", "ToNumpy"):
                channels = {"BGR": "RGB", "RGB": "BGR"}[channels] if step.get("to_bgr") else channels
                supported.append(kind)
            else:
                unsupported.append(f"{kind}: no DALI equivalent generated (random at test time, or not "
                                   "implemented)")
        except (KeyError, ValueError) as exc:
            unsupported.append(f"{kind}: argument {exc} not understood")
    dp = dict(data_preprocessor or {})
    # MMPretrain reads the client's decoded image as BGR (cv2); to_rgb converts it for the model
    want = "RGB" if dp.get("to_rgb") else "BGR"
    if input_format != "encoded" and channels != want:
        out.emit(f"images = fn.color_space_conversion(images, image_type=types.{channels}, "
                 f"output_type=types.{want}, device=device)")
    elif input_format == "encoded" and want == "BGR":
        out.emit("images = fn.color_space_conversion(images, image_type=types.RGB, output_type=types.BGR, "
                 "device=device)")
    if dp.get("mean") is not None and dp.get("std") is not None:
        out.emit(f"images = fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout=\"CHW\", "
                 f"mean={list(map(float, dp['mean']))}, std={list(map(float, dp['std']))}, device=device)")
    else:
        out.emit("images = fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout=\"CHW\", "
                 "device=device)  # the model takes unnormalized float")
    out.emit("return images")
    header = (f'"""DALI pipeline generated by `parity suggest` from an MMPretrain test_pipeline and '
              f'data_preprocessor.\n\nReproduces: {", ".join(supported) or "nothing"}.'
              + (f"\nNOT reproduced: {'; '.join(unsupported)}." if unsupported else "")
              + '\nVerify with `parity check` before deploying; `parity suggest` prints what it measured.\n"""\n')
    body = textwrap.indent("\n".join(out.lines), "    ")
    source = (f"{header}import numpy as np\nimport nvidia.dali.math as dmath\nfrom nvidia.dali import fn, "
              f"pipeline_def, types\n\n\n@pipeline_def(batch_size=32, num_threads=4, device_id=0)\n"
              f"def {function}(device=\"gpu\"):\n{body}\n")
    return Suggestion(source, function, input_name, supported, unsupported, notes)


@dataclass
class Verification:
    """What the harness measured for a generated pipeline."""

    images: int
    failed_images: list
    pixel_max: float  # worst difference at the last pixel-space stage (uint8 levels), before normalization
    model_input_max: float
    model_input_mean: float
    stage_lines: list

    @property
    def verdict(self) -> str:
        if self.failed_images:
            return "MISMATCH"
        return "EXACT" if self.pixel_max <= 1.0 else "APPROXIMATE"


def random_images(folder, count: int, seed: int = 0) -> list:
    """Images that stress size arithmetic: odd, tiny, large, both orientations, extreme aspect ratios."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes = [(1, 1), (3, 7), (7, 3), (224, 224), (257, 255), (333, 500), (500, 333), (12, 900), (900, 12),
             (1080, 1920), (1999, 1001)]
    for _ in range(max(0, count - len(sizes))):
        h, w = (int(v) for v in rng.integers(5, 1200, 2))
        sizes.append((h, w))
    paths = []
    for i, (h, w) in enumerate(sizes[:count]):
        y, x = np.mgrid[0:h, 0:w]
        smooth = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 127 // max(h + w, 1)], -1)
        noisy = np.clip(smooth + rng.normal(0, 20, (h, w, 3)), 0, 255)
        path = folder / f"random_{i:02d}_{h}x{w}.png"
        Image.fromarray(noisy.astype(np.uint8), "RGB").save(path)
        paths.append(path)
    return paths


def verify(config) -> Verification:
    """Run the harness on a parity config whose DALI pipeline is the generated one."""
    from parity.engine import Harness

    harness = Harness(config)
    pixel_pairs = [p.label for p in harness.pairs if not p.final and p.pixels and p.ref_index is not None]
    last_pixel = pixel_pairs[-1] if pixel_pairs else None
    failed, pixel_max, final_max, final_mean = [], 0.0, 0.0, 0.0
    per_stage: dict[str, list] = {}
    for result in harness.run():
        if not result.passed:
            failed.append(result.image)
        for r in result.stages:
            per_stage.setdefault(r.stage, []).append(r)
            if r.stage == last_pixel and r.total:
                pixel_max = max(pixel_max, r.max_abs)
            if r.stage == "model_input" and r.total:
                final_max, final_mean = max(final_max, r.max_abs), max(final_mean, r.mean_abs)
    lines = []
    for stage, rows in per_stage.items():
        ran = [r for r in rows if r.status != "skipped" and r.total]
        if ran:
            failed_n = sum(r.status == "failed" for r in ran)
            lines.append(f"{stage:<24} max {max(r.max_abs for r in ran):8.4g}  mean {max(r.mean_abs for r in ran):8.4g}"
                         f"  {'FAILED on ' + str(failed_n) if failed_n else 'passed'} ({len(ran)} images)")
    return Verification(len(per_stage.get("model_input", [])), failed, pixel_max, final_max, final_mean, lines)
