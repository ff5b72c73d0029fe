"""One image of a reference snapshot on disk: a .npz (a zip of .npy members, not deflated) that holds only
what the serving side cannot recompute exactly, and says in ``_encoding`` how to recompute the rest.

Each stage is, in order of preference (the first that gives back the reference's array bit for bit, checked
when the file is written by the very code that reads it):

- ``NAME:same:OTHER``: an earlier stage (MMPretrain's NumpyToPIL/PILToNumpy copy their input);
- ``NAME:decoded:CRC32``: the image file decoded by Pillow (the training side's decode verified equal; the
  CRC32 of the pixels is checked again where the snapshot is read, so a Pillow that decodes differently is
  refused, never silently compared);
- ``NAME:from:OTHER:OPS``: an earlier stage through numpy steps, e.g. ``t201`` (HWC to CHW), ``flip0`` (the
  channel swap of ``to_rgb``), ``float32``, ``norm`` ((x - mean) / std as ClsDataPreprocessor computes it
  in float32), ``window:TOP:LEFT:H:W`` (a crop, zero-padded where it leaves the source), or through Pillow's
  ``resize:W:H:FILTER:CRC32`` (MMCV's ``backend='pillow'``, timm's and torchvision's resize of a PIL image; the
  CRC32 of the result is checked where it is read, as the decode's is);
- stored: an 8-bit image as ``NAME.zlib`` (row differences, deflate level 1: 2x smaller, and fast to read),
  a float image with at most 256 values per channel as ``NAME:palette:`` (uint8 index + per-channel
  table), anything else as a plain ``NAME.npy``.

Schema 1 files (``same`` and ``palette`` only) still read. A snapshot is untrusted input: every size is
checked against :data:`MAX_ARRAY_BYTES` / :data:`MAX_FILE_BYTES` before anything is read or decompressed.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from parity.errors import ParitySnapshotError
from parity.reference.channels import reversed_channels

MAX_ARRAY_BYTES = 1 << 30  # an 8-bit stage of a 100-megapixel photo is 0.3 GiB
MAX_FILE_BYTES = 2 << 30
_OP = re.compile(r"t(\d)(\d)(\d)|flip(\d)|float32|norm|window:(-?\d+):(-?\d+):(\d+):(\d+)"
                 r"|resize:(\d+):(\d+):([0-5]):([0-9a-f]{8})")
_FILTERS = (2, 3, 0, 1, 4, 5)  # Pillow's BILINEAR, BICUBIC, NEAREST, LANCZOS, BOX, HAMMING: the commonest first
# the chains tried, in order, from each earlier stage (a window is tried where the shapes call for one)
_CHAINS = (["t201"], ["flip0"], ["float32"], ["flip0", "float32"], ["norm"], ["float32", "norm"],
           ["flip0", "float32", "norm"], ["flip2"])


def decoder() -> dict:
    """The serving side's decoder, as the manifest records it: Pillow and the codec libraries in it."""
    import PIL
    from PIL import features

    return {"name": "Pillow", "version": PIL.__version__,
            **{lib: features.version(lib) for lib in ("jpg", "zlib", "webp") if features.check(lib)}}


def decode(image: Path, channels: str) -> np.ndarray:
    """The image file's pixels as Pillow decodes them (H, W, 3) in ``channels`` order."""
    from PIL import Image

    with Image.open(image) as img:
        pixels = np.asarray(img.convert("RGB") if img.mode != "RGB" else img)
    return reversed_channels(pixels, 2) if channels == "BGR" else pixels


class PillowDiffers(Exception):
    """Pillow here gives other pixels (CRC32 ``found``) than where the snapshot was written (``recorded``)."""

    def __init__(self, what: str, found: str, recorded: str):
        super().__init__(what, found, recorded)
        self.what, self.found, self.recorded = what, found, recorded


def _resize(array: np.ndarray, width: int, height: int, resample: int) -> np.ndarray:
    """An (H, W, 3) uint8 image resized by Pillow, as MMCV's pillow backend and torchvision's PIL path do."""
    from PIL import Image

    if array.dtype != np.uint8 or array.shape[2] != 3 or width * height * 3 > MAX_ARRAY_BYTES:
        raise ValueError(f"_encoding: resize to {width}x{height} of a {array.dtype} array of shape {array.shape}")
    return np.asarray(Image.fromarray(array).resize((width, height), resample))


def _crc(array: np.ndarray) -> str:
    return f"{zlib.crc32(np.ascontiguousarray(array).data):08x}"


def _apply(ops: list[str], array: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None) -> np.ndarray:
    """``array`` through the numpy steps ``ops`` (ValueError on one that is not a step this module writes)."""
    for op in ops:
        match = _OP.fullmatch(op)
        if match is None:
            raise ValueError(f"_encoding: {op!r} is not a step parity writes (t201, flip0, float32, norm, window:…)")
        if array.ndim != 3:
            raise ValueError(f"_encoding: {op!r} on a {array.dtype} array of shape {array.shape}, not an image")
        if match[1]:
            axes = tuple(int(a) for a in match.group(1, 2, 3))
            if sorted(axes) != [0, 1, 2]:
                raise ValueError(f"_encoding: {op!r} is not a permutation of three axes")
            array = np.ascontiguousarray(array.transpose(axes))
        elif match[4]:
            array = reversed_channels(array, int(match[4]) % 3)
        elif op == "float32":
            array = array.astype(np.float32)
        elif op == "norm":
            if mean is None or std is None or array.shape[0] != 3:
                raise ValueError("_encoding: norm on a stage that is not (3, H, W), or without mean and std")
            array = np.subtract(array, mean.astype(np.float32)[:, None, None],
                                dtype=np.result_type(array.dtype, np.float32))
            array /= std.astype(np.float32)[:, None, None]  # in place: the values of (x - mean) / std
        elif match[9]:
            array = _resize(array, int(match[9]), int(match[10]), int(match[11]))
            if _crc(array) != match[12]:
                raise PillowDiffers(f"resizes an image to {match[9]}x{match[10]}", _crc(array), match[12])
        else:
            array = _window(array, *(int(v) for v in match.group(5, 6, 7, 8)))
    return array


def _window(array: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """Rows top..top+height and columns left..left+width of an (H, W, C) array; zeros outside it."""
    if height * width * array.shape[2] * array.itemsize > MAX_ARRAY_BYTES:
        raise ValueError(f"_encoding: a {height}x{width} window, over the limit of {MAX_ARRAY_BYTES} bytes")
    out = np.zeros((height, width, array.shape[2]), array.dtype)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + height, array.shape[0]), min(left + width, array.shape[1])
    if y1 > y0 and x1 > x0:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = array[y0:y1, x0:x1]
    return out


def _windows(source: np.ndarray, target: np.ndarray) -> list[list[str]]:
    """The centred windows (offset rounded down or up) that could give ``target`` from ``source``."""
    if source.ndim != 3 or target.ndim != 3 or source.shape[2] != target.shape[2] or source.dtype != target.dtype:
        return []
    (h, w), (th, tw) = source.shape[:2], target.shape[:2]
    tops = dict.fromkeys(((h - th) // 2, -((th - h) // 2), (h - th + 1) // 2))
    lefts = dict.fromkeys(((w - tw) // 2, -((tw - w) // 2), (w - tw + 1) // 2))
    return [[f"window:{top}:{left}:{th}:{tw}"] for top in tops for left in lefts]


def _resizes(source: np.ndarray, target: np.ndarray) -> list[list[str]]:
    """Pillow's resizes of ``source`` to ``target``'s size, where both are (H, W, 3) 8-bit images of two sizes."""
    images = source.ndim == target.ndim == 3 and source.shape[2] == target.shape[2] == 3
    if not images or source.dtype != np.uint8 or target.dtype != np.uint8 or source.shape == target.shape:
        return []
    (height, width), crc = target.shape[:2], _crc(target)
    return [[f"resize:{width}:{height}:{f}:{crc}"] for f in _FILTERS]


def save_arrays(path: Path, arrays: dict[str, np.ndarray], *, image: Path, channels: str,
                mean: np.ndarray | None, std: np.ndarray | None) -> None:
    """Write the stages ``stage0``… (and ``logits``) of ``image``, each in the smallest exact form above."""
    encoding: list[str] = []
    known: dict[str, np.ndarray] = {}
    seen: dict[tuple, str] = {}
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            array = np.ascontiguousarray(array)
            key = (array.dtype.str, array.shape, hashlib.sha1(array.data).digest())
            derived = _derivation(name, array, known, seen.get(key), image, channels, mean, std)
            seen.setdefault(key, name)
            known[name] = array
            if derived is not None:
                encoding.append(derived)
            elif array.dtype == np.uint8 and array.ndim == 3:
                encoding.append(f"{name}:zlib:{','.join(map(str, array.shape))}")
                rows = array.copy()
                rows[1:] -= array[:-1]  # vertical differences: a photo's neighbouring rows are alike
                _write_member(archive, f"{name}.zlib", np.frombuffer(zlib.compress(rows.data, 1), np.uint8))
            elif (palette := _palette(array)) is not None:
                encoding.append(f"{name}:palette:")
                _write_member(archive, f"{name}.index", palette[0])
                _write_member(archive, f"{name}.table", palette[1])
            else:
                _write_member(archive, name, array)
        _write_member(archive, "_encoding", np.array(encoding, dtype=str))


def _derivation(name: str, array: np.ndarray, known: dict[str, np.ndarray], same: str | None, image: Path,
                channels: str, mean, std) -> str | None:
    """The first encoding that gives back ``array`` exactly from the image file or an earlier stage."""
    if same is not None:
        return f"{name}:same:{same}"
    if name == "stage0" and array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        try:
            if np.array_equal(decode(image, channels), array):
                return f"{name}:decoded:{_crc(array)}"
        except (OSError, ValueError):
            pass  # the serving side cannot decode it either: stored
    if array.ndim != 3:
        return None
    for other, source in reversed(known.items()):  # the nearest stage first: usually the one
        for ops in [*_CHAINS, *_windows(source, array), *_resizes(source, array)]:
            if not _fits(ops, source, array):
                continue
            try:
                candidate = _apply(ops, source, mean, std)
            except (ValueError, PillowDiffers):
                continue
            if candidate.dtype == array.dtype and candidate.shape == array.shape and np.array_equal(candidate, array):
                return f"{name}:from:{other}:{','.join(ops)}"
    return None


def _fits(ops: list[str], source: np.ndarray, target: np.ndarray) -> bool:
    """Whether ``ops`` can give ``target``'s shape and dtype from ``source`` (skips computing the others)."""
    shape = source.shape
    if ops[0] == "t201" and source.ndim == 3:
        shape = (shape[2], shape[0], shape[1])
    elif ops[0].startswith("window:"):
        shape = (*map(int, ops[0].split(":")[3:5]), shape[-1])
    elif ops[0].startswith("resize:"):
        shape = (*map(int, ops[0].split(":")[2:0:-1]), shape[-1])
    dtype = np.float32 if {"float32", "norm"} & set(ops) else source.dtype
    return shape == target.shape and dtype == target.dtype


def _palette(array: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(uint8 index, per-channel table) that give back ``array`` exactly, or None."""
    if array.dtype.kind != "f" or array.ndim != 3:
        return None
    tables, indices = [], []
    for channel in array:
        values, index = np.unique(channel, return_inverse=True)
        if len(values) > 256:
            return None
        tables.append(np.resize(values, 256))
        indices.append(index.reshape(channel.shape).astype(np.uint8))
    return np.stack(indices), np.stack(tables)


def _write_member(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue())


def check_sizes(path: Path) -> None:
    """Refuse an .npz whose members declare, in their headers or the archive's directory, more than
    :data:`MAX_ARRAY_BYTES` per array or :data:`MAX_FILE_BYTES` in all, before any array is read."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(member)
            declared = math.prod(shape) * dtype.itemsize
            _limit(path, info.filename, dtype, shape, max(declared, info.file_size - 4096))
            total += max(declared, info.file_size)
    _total(path, total)


def _limit(path: Path, member: str, dtype, shape, size: int) -> None:
    if size > MAX_ARRAY_BYTES:
        raise ParitySnapshotError(
            f"{path}: {member}: declares a {dtype} array of shape {shape} ({size} bytes), over the limit of "
            f"{MAX_ARRAY_BYTES} bytes per stage: not a snapshot file parity wrote")


def _total(path: Path, total: int) -> None:
    if total > MAX_FILE_BYTES:
        raise ParitySnapshotError(f"{path}: declares {total} bytes of arrays, over the limit of {MAX_FILE_BYTES} "
                                  "bytes per image: not a snapshot file parity wrote")


def load_arrays(path: Path, *, image: Path | None = None, channels: str = "BGR", mean=None,
                std=None) -> dict[str, np.ndarray]:
    """What :func:`save_arrays` wrote, every array in its original dtype and shape; ValueError when its
    encoding is not one save_arrays writes, :class:`ParitySnapshotError` when Pillow here decodes ``image``
    otherwise than where the snapshot was written."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    encoding = arrays.pop("_encoding")
    if encoding.dtype.kind != "U" or encoding.ndim != 1:
        raise ValueError(f"_encoding: a {encoding.dtype} array, not a list of names")
    total = sum(a.nbytes for a in arrays.values())
    try:
        _derive(path, arrays, encoding.tolist(), total, image, channels, mean, std)
    except PillowDiffers as exc:
        raise ParitySnapshotError(
            f"{image}: Pillow here {exc.what} otherwise than Pillow did where the snapshot was written (pixel CRC32 "
            f"{exc.found}, recorded {exc.recorded}; the manifest's decoder names that one): install the recorded "
            "Pillow, or run `parity snapshot` again") from None
    return {name: array for name, array in arrays.items() if "." not in name}  # not the stored parts


def _derive(path: Path, arrays: dict[str, np.ndarray], encoding: list[str], total: int, image: Path | None,
            channels: str, mean, std) -> None:
    """Add to ``arrays`` every stage ``encoding`` derives, in order."""
    for entry in encoding:
        name, kind, rest = (entry.split(":", 2) + ["", ""])[:3]
        if name in arrays:
            raise ValueError(f"_encoding: {name} is both stored and {kind!r}")
        if kind == "same":
            arrays[name] = _member(arrays, rest)
        elif kind == "palette":
            index, table = _member(arrays, f"{name}.index"), _member(arrays, f"{name}.table")
            arrays[name] = np.stack([t[i] for t, i in zip(table, index)])
        elif kind == "zlib":
            arrays[name] = _inflate(path, name, _member(arrays, f"{name}.zlib"), rest)
        elif kind == "from":
            other, _, ops = rest.partition(":")
            arrays[name] = _apply(ops.split(","), _member(arrays, other), mean, std)
        elif kind == "decoded":
            if image is None:
                raise ValueError(f"_encoding: {name} is decoded from the image file, which was not given")
            pixels = decode(image, channels)
            if _crc(pixels) != rest:
                raise PillowDiffers("decodes it", _crc(pixels), rest)
            arrays[name] = pixels
        else:
            raise ValueError(f"_encoding: {entry!r} is not NAME:same|from|decoded|zlib|palette:…")
        total += arrays[name].nbytes
        _total(path, total)


def _member(arrays: dict[str, np.ndarray], key: str) -> np.ndarray:
    if key not in arrays:
        raise ValueError(f"{key}: missing, though _encoding names it")
    return arrays[key]


def _inflate(path: Path, name: str, blob: np.ndarray, shape_text: str) -> np.ndarray:
    """An 8-bit image stored as deflated row differences, refused when it would exceed its declared shape."""
    if not re.fullmatch(r"\d+,\d+,\d+", shape_text):
        raise ValueError(f"_encoding: {name}:zlib:{shape_text!r} is not a shape H,W,C")
    shape = tuple(int(v) for v in shape_text.split(","))
    size = math.prod(shape)
    _limit(path, f"{name}.zlib", "uint8", shape, size)
    inflater = zlib.decompressobj()
    raw = inflater.decompress(blob.tobytes(), size)
    if len(raw) != size or inflater.unconsumed_tail or not inflater.eof:
        raise ValueError(f"{name}.zlib: holds other than the {shape} pixels its encoding declares")
    rows = np.frombuffer(raw, np.uint8).reshape(shape)
    return np.cumsum(rows, axis=0, dtype=np.uint8)
