"""Pictures of one image packed into one file, each shown through its own ``<img>`` window (``object-fit:
none`` at an offset): a report of many images stays a few files, and the pictures of a section load together.

Two kinds: lossy (WebP) for pictures shown for orientation (a stage's reference and DALI tensors, whose numbers
the tables print exactly), lossless PNG for the evidence (heatmaps, masks, zooms), stored as a palette image
when it has at most 256 colours (the heatmap's colour map), so it stays small without losing a pixel.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

_GAP = 4  # pixels between panels: a lossy codec's blocks never mix two pictures at their seam


class Atlas:
    """The pictures added, stacked top to bottom into ``name`` (written by :meth:`save`)."""

    def __init__(self, name: str, lossy: bool):
        self.name = name
        self.lossy = lossy
        self.panels: list[tuple[int, np.ndarray]] = []  # (top, HWC uint8 RGB)
        self.height = 0

    def add(self, rgb: np.ndarray, alt: str, css_class: str = "") -> str:
        """An ``<img>`` showing ``rgb`` one screen pixel per pixel, from this atlas."""
        top = self.height
        self.panels.append((top, rgb))
        self.height += rgb.shape[0] + _GAP
        cls = f" class='{css_class}'" if css_class else ""
        return (f"<img{cls} src='{html.escape(self.name)}' width={rgb.shape[1]} height={rgb.shape[0]} "
                f"style='object-fit:none;object-position:0 -{top}px' alt='{html.escape(alt)}'>")

    def save(self, folder: Path) -> Path | None:
        """Write the atlas (nothing when no picture was added); its path."""
        from PIL import Image

        if not self.panels:
            return None
        width = max(rgb.shape[1] for _, rgb in self.panels)
        sheet = np.full((self.height - _GAP, width, 3), 255, np.uint8)
        for top, rgb in self.panels:
            sheet[top:top + rgb.shape[0], :rgb.shape[1]] = rgb
        path = folder / self.name
        if self.lossy:
            Image.fromarray(sheet).save(path, "WEBP", quality=80, method=4)
        else:
            _lossless(sheet).save(path, "PNG", compress_level=6)
        return path


def _lossless(sheet: np.ndarray):
    """A palette image when the sheet has at most 256 colours (exactly the same pixels), else RGB."""
    from PIL import Image

    packed = (sheet[..., 0].astype(np.uint32) << 16) | (sheet[..., 1].astype(np.uint32) << 8) | sheet[..., 2]
    colours, index = np.unique(packed, return_inverse=True)
    if colours.size > 256:
        return Image.fromarray(sheet)
    image = Image.fromarray(index.reshape(packed.shape).astype(np.uint8), "P")
    image.putpalette(np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], -1).astype(np.uint8).tobytes())
    return image


def thumbnail(rgb: np.ndarray, side: int) -> np.ndarray:
    """``rgb`` reduced (Lanczos) to at most ``side`` pixels a side; smaller pictures are kept as they are."""
    from PIL import Image

    if max(rgb.shape[:2]) <= side:
        return rgb
    picture = Image.fromarray(rgb)
    picture.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(picture)
