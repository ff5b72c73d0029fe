"""Image checks: parity compares 8-bit, 3-channel colour images, and says so before anything runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from parity.errors import ParityImageError

_MODE_NAMES = {"L": "grayscale", "LA": "grayscale with alpha", "RGBA": "RGBA (with alpha)", "P": "palette",
               "I;16": "16-bit", "I;16B": "16-bit", "I;16L": "16-bit", "RGB;16": "16-bit per channel", "I": "32-bit integer", "F": "float",
               "CMYK": "CMYK", "1": "1-bit"}


MAX_PIXELS = 100_000_000  # 100 MP: a 12,000 x 8,000 photo; a 20,000 x 20,000 PNG of 1.2 MB decodes to 1.2 GB


def max_pixels() -> int:
    """The pixel limit: ``MAX_PIXELS``, or the ``PARITY_MAX_PIXELS`` environment variable."""
    import os

    value = os.environ.get("PARITY_MAX_PIXELS", "")
    if not value:
        return MAX_PIXELS
    if not value.isdigit() or int(value) < 1:
        raise ParityImageError(f"PARITY_MAX_PIXELS={value!r}: expected a positive whole number of pixels")
    return int(value)


def check_image(path: Path) -> None:
    """Raise :class:`ParityImageError` unless ``path`` is a readable 8-bit RGB image within the pixel limit,
    judged from its header before anything decodes it (a small file can declare a huge image)."""
    from PIL import Image, UnidentifiedImageError

    try:
        found = path.is_file()
    except OSError as exc:  # a symlink loop, a name too long
        raise ParityImageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not found:
        raise ParityImageError(f"{path}: image not found")
    limit = max_pixels()
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > limit:
                raise ParityImageError(f"{path}: {width}x{height} is {width * height / 1e6:.3g} megapixels, over "
                                       f"parity's limit of {limit / 1e6:.3g} (PARITY_MAX_PIXELS raises it): refused "
                                       "before decoding")
            mode = img.mode
            # Pillow opens a 16-bit-per-channel RGB PNG as 'RGB'; its raw mode still says ';16'
            raw = str(img.tile[0][3]) if img.tile else ""
            if mode == "RGB" and ";16" in raw:
                mode = "RGB;16"
            img.verify()
    except Image.DecompressionBombError as exc:  # Pillow's own limit, where it is lower than ours
        raise ParityImageError(f"{path}: refused before decoding ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ParityImageError(f"{path}: not a readable image ({exc})") from None
    if mode != "RGB":
        kind = _MODE_NAMES.get(mode, mode)
        raise ParityImageError(
            f"{path}: unsupported image mode {mode!r} ({kind}); parity compares 8-bit 3-channel colour images, "
            "as the deployed model receives them. Convert it first, e.g. "
            "PIL.Image.open(p).convert('RGB').save(p)")


def image_ids(paths: list[Path]) -> list[str]:
    """Short, unique ids for test names: the file stem; on clashes the path below the common folder, and
    with its suffix where that still clashes (``same.jpg`` and ``same.png`` in one folder)."""
    stems = [printable(p.stem) for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    root = Path(*_common_parts(paths))
    ids = [printable(str(p.relative_to(root).with_suffix(""))) for p in paths]
    if len(set(ids)) == len(ids):
        return ids
    return [printable(str(p.relative_to(root))) for p in paths]


def printable(name: str) -> str:
    """A file name as an id that is safe in console lines, JUnit XML and node ids: control characters,
    newlines and undecodable bytes spelled as Python escapes (a name cannot forge a line or break XML)."""
    spelled = []
    for ch in name:
        if ch.isprintable():
            spelled.append(ch)
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # a byte that is not UTF-8, as Python decodes file names
            spelled.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            spelled.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(spelled)


def _common_parts(paths):
    parts = [p.parent.parts for p in paths]
    common = []
    for group in zip(*parts):
        if len(set(group)) != 1:
            break
        common.append(group[0])
    return common or ["/"]


def is_image_file(path: Path) -> bool:
    """Whether Pillow recognizes the file's content as an image (what a folder entry lists, whatever the
    suffix: ``.jfif``, extensionless JPEGs); reads the header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):
            return True
    except (UnidentifiedImageError, OSError, ValueError):
        return False


def client_input(decoded: np.ndarray, channels: str, path: Path, input_format: str) -> np.ndarray:
    """What the client sends to the external source: the reference's decoded image (whose channel
    order is ``channels``) in the client's channel order, or the encoded file itself."""
    if input_format == "encoded":
        return np.frombuffer(path.read_bytes(), dtype=np.uint8)
    if input_format != channels:
        decoded = decoded[:, :, ::-1]
    return np.ascontiguousarray(decoded)
