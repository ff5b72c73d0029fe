"""DALI code for MMCV's resizes, written the way each backend computes them (measured in docs/suggest.md).

- Pillow resamples horizontally, rounds and clips to uint8, then resamples vertically, with a filter
  widened by the downscale (DALI's antialiased filters are widened the same way). Its bicubic and
  Lanczos overshoot, and the clip in between matters: two DALI resizes with uint8 in between (up to 22
  levels closer). Bilinear never overshoots: one DALI resize stays within 1 level, where the double
  rounding of two passes reaches 2.
- OpenCV's INTER_LINEAR (no widening) is DALI's linear resize with ``antialias=False``.
- OpenCV's INTER_CUBIC uses Keys' cubic with a = -0.75 (DALI's cubic is a = -0.5) and 11-bit fixed-point
  weights: generated exactly as 4 taps per axis, gathered by one DALI NN resize of an edge-replicated
  image with the index they came from, weighted with OpenCV's own coefficient arithmetic.
"""

from __future__ import annotations

INTERP = {"bilinear": "INTERP_LINEAR", "nearest": "INTERP_NN", "bicubic": "INTERP_CUBIC",
          "lanczos": "INTERP_LANCZOS3", "area": "INTERP_LINEAR"}
# Longest output side of the exact OpenCV cubic: its index ramp is a constant of this length. Past it the
# generated pipeline raises in fn.slice, on the line that says so, and the harness names the image. Such a
# side comes from a sliver (a 1x300 image by its short side to 256: 256x76,800): lifted to 2**17, that one
# image took 17.7 GB of memory and 28 s, exact, before the crop to 224x224, so it is refused instead.
RAMP = 32768
# OpenCV modes DALI cannot reproduce: refused with the reason rather than approximated into a MISMATCH
CV2_REFUSED = {"nearest": "cv2 INTER_NEAREST samples floor(x * in / out) in float64 where DALI's nearest samples "
                          "the pixel centre (x + 0.5) * in / out",
               "area": "cv2 INTER_AREA averages boxes whose width in / out changes with each image's size, which no "
                       "DALI resize filter computes (its antialiased filters are triangles)"}


class Unsupported(ValueError):
    """An argument the generator understands but DALI cannot reproduce; the message says why."""


def emit_resize(out, width: str, height: str, backend: str, interpolation: str, notes: list) -> None:
    """Resize ``images`` (HWC uint8, size h x w) to ``height`` x ``width`` (int64 DataNode expressions)."""
    if interpolation not in INTERP:
        raise ValueError(f"interpolation={interpolation!r}")
    if backend == "cv2" and interpolation in CV2_REFUSED:
        raise Unsupported(f"interpolation={interpolation!r}: {CV2_REFUSED[interpolation]}")
    out.emit(f"out_w, out_h = {width}, {height}")
    if backend == "cv2" and interpolation == "bicubic":
        _cv2_cubic(out)
        if not any("px are refused" in n for n in notes):
            notes.append(f"exact cv2 bicubic: output sides over {RAMP} px (a 1x300 image resized by its short "
                         "side to 256 is 256x76,800) are refused, the image named (docs/suggest.md)")
    elif backend == "pillow" and interpolation in ("bicubic", "lanczos"):
        interp = INTERP[interpolation]
        out.emit("# Pillow: horizontal pass, rounded to uint8, then vertical pass; filters widened when shrinking")
        out.emit(f"images = fn.resize(images, resize_x=fn.cast(out_w, dtype=types.FLOAT), "
                 f"resize_y=fn.cast(h, dtype=types.FLOAT), interp_type=types.{interp}, antialias=True, device=device)")
        out.emit(f"images = fn.resize(images, resize_x=fn.cast(out_w, dtype=types.FLOAT), "
                 f"resize_y=fn.cast(out_h, dtype=types.FLOAT), interp_type=types.{interp}, antialias=True, "
                 f"device=device)")
    else:
        antialias = backend == "pillow"
        if interpolation == "area":
            notes.append("pillow 'area' (Pillow BOX) is approximated by DALI's antialiased linear")
        elif interpolation == "lanczos":
            notes.append("cv2 INTER_LANCZOS4 is approximated by DALI's Lanczos3")
        out.emit(f"images = fn.resize(images, resize_x=fn.cast(out_w, dtype=types.FLOAT), "
                 f"resize_y=fn.cast(out_h, dtype=types.FLOAT), interp_type=types.{INTERP[interpolation]}, "
                 f"antialias={antialias}, device=device)")
    out.emit("h, w = out_h, out_w")


def _cv2_cubic(out) -> None:
    """cv2.resize(INTER_CUBIC) on uint8: per axis fx = float32((d + 0.5) * (1 / (out / in)) - 0.5), taps
    floor(fx) - 1 .. + 2 clamped to the image, weights cvRound(2048 * cubic_-0.75(t)), result
    (sum + 2**21) >> 22 saturated: integer arithmetic, so exact in float64.

    The 4 taps and the index they were read from come out of ONE nearest-neighbour resize (the taps stacked
    as 12 channels, the index as an extra row or column): DALI's float32 sampling position may floor to the
    next pixel where fx is a whole number (a 400 -> 240 px resize, ratio 5/3), and separate resizes
    floored it differently (196-255 levels on noise). Read back with the taps, the index always agrees."""
    out.emit("# cv2 INTER_CUBIC, exactly: Keys a=-0.75, 11-bit weights, edge-replicated taps")
    out.emit(f"ramp = types.Constant(np.arange({RAMP}, dtype=np.float32))")
    zero = "types.Constant(np.array([0], np.int32))"
    for axis, size, out_size, src in (("x", "w", "out_w", "images"), ("y", "h", "out_h", "hsum")):
        dim, other = (1, 0) if axis == "x" else (0, 1)
        shape = "[1, -1, 1]" if axis == "x" else "[-1, 1, 1]"
        out.emit(f"d = fn.slice(ramp, {zero}, fn.cast(fn.stack({out_size}), dtype=types.INT32), axes=[0], "
                 f"device=\"cpu\")  # refuses output sides over {RAMP} px (docs/suggest.md)")
        out.emit(f"f = fn.cast((fn.cast(d, dtype=types.FLOAT64) + 0.5) * (1.0 / (fn.cast({out_size}, "
                 f"dtype=types.FLOAT64) / fn.cast({size}, dtype=types.FLOAT64))) - 0.5, dtype=types.FLOAT)")
        out.emit(f"f = fn.reshape(f, shape={shape})")
        out.emit("f = f.gpu() if device == \"gpu\" else f")
        out.emit(f"first = fn.slice({src}, {zero}, types.Constant(np.array([1], np.int32)), axes=[{dim}], "
                 "device=device)")
        out.emit(f"last = fn.slice({src}, fn.cast(fn.stack({size} - 1), dtype=types.INT32), "
                 f"types.Constant(np.array([1], np.int32)), axes=[{dim}], device=device)")
        out.emit(f"padded = fn.cat(first, first, {src}, last, last, axis={dim}, device=device)")
        out.emit(f"n = fn.cast(fn.stack({size} + 1), dtype=types.INT32)  # entry j holds source pixels j - 2 .. j + 1")
        out.emit(f"stacked = fn.cat(*[fn.slice(padded, types.Constant(np.array([k], np.int32)), n, axes=[{dim}], "
                 "device=device) for k in range(4)], axis=2, device=device)")
        out.emit(f"index = fn.reshape(fn.slice(ramp, {zero}, n, axes=[0], device=\"cpu\"), shape={shape})")
        out.emit("hi = dmath.floor(index / 256)  # the index as two bytes, gathered with the uint8 taps")
        out.emit(f"index = fn.cast(fn.cat(*[index - 256 * hi, hi] * 6, axis=2, device=\"cpu\"), "
                 f"dtype=types.{'UINT8' if axis == 'x' else 'FLOAT'})")
        out.emit("index = index.gpu() if device == \"gpu\" else index")
        out.emit(f"stacked = fn.cat(stacked, index, axis={other}, device=device)")
        if axis == "x":
            out.emit("gathered = fn.resize(stacked, resize_x=fn.cast(out_w, dtype=types.FLOAT), "
                     "resize_y=fn.cast(h + 1, dtype=types.FLOAT), roi_start=fn.stack(0.0, 0.5), "
                     "roi_end=fn.stack(fn.cast(h + 1, dtype=types.FLOAT), fn.cast(w, dtype=types.FLOAT) + 0.5), "
                     "roi_relative=False, interp_type=types.INTERP_NN, antialias=False, dtype=types.FLOAT, "
                     "device=device)")
            taps = ("fn.slice(gathered, types.Constant(np.array([0, 3 * k], np.int32)), fn.cast(fn.stack(h, h * 0 + 3), "
                    "dtype=types.INT32), axes=[0, 2], device=device)")
            index = "gathered[h:, :, :2]"
        else:
            out.emit("gathered = fn.resize(stacked, resize_x=fn.cast(out_w + 1, dtype=types.FLOAT), "
                     "resize_y=fn.cast(out_h, dtype=types.FLOAT), roi_start=fn.stack(0.5, 0.0), "
                     "roi_end=fn.stack(fn.cast(h, dtype=types.FLOAT) + 0.5, fn.cast(out_w + 1, dtype=types.FLOAT)), "
                     "roi_relative=False, interp_type=types.INTERP_NN, antialias=False, dtype=types.FLOAT, "
                     "device=device)")
            taps = ("fn.slice(gathered, types.Constant(np.array([0, 3 * k], np.int32)), fn.cast(fn.stack(out_w, "
                    "out_w * 0 + 3), dtype=types.INT32), axes=[1, 2], device=device)")
            index = "gathered[:, out_w:, :2]"
        out.emit(f"taps = [{taps} for k in range(4)]  # fn.slice: the last is the resize stage `parity check` "
                 "pairs with the reference's")
        out.emit(f"index = {index}")
        out.emit("index = index[:, :, :1] + 256 * index[:, :, 1:]")
        out.emit("t = f - (index - 1)  # entry sx + 1 holds taps sx - 1 .. sx + 2")
        out.emit("c0 = ((-0.75 * (t + 1) + 3.75) * (t + 1) - 6.0) * (t + 1) + 3.0")
        out.emit("c1 = (1.25 * t - 2.25) * t * t + 1")
        out.emit("c2 = (1.25 * (1 - t) - 2.25) * (1 - t) * (1 - t) + 1")
        out.emit("coeffs = [c * 2048 for c in (c0, c1, c2, 1 - c0 - c1 - c2)]")
        out.emit("rounded = [dmath.floor(c + 0.5) for c in coeffs]")
        out.emit("coeffs = [r - fn.cast((r - c == 0.5) & (r - 2 * dmath.floor(r / 2) != 0), dtype=types.FLOAT) "
                 "for r, c in zip(rounded, coeffs)]  # cvRound: half to even")
        if axis == "x":  # integer sums below 2**24: exact in float32
            out.emit("hsum = taps[0] * coeffs[0] + taps[1] * coeffs[1] + taps[2] * coeffs[2] + taps[3] * coeffs[3]")
        else:
            out.emit("vsum = sum(fn.cast(tap, dtype=types.FLOAT64) * c for tap, c in zip(taps, coeffs))")
    out.emit("images = fn.cast(dmath.clamp(dmath.floor((vsum + 2.0 ** 21) / 2.0 ** 22), 0, 255), "
             "dtype=types.UINT8)")
