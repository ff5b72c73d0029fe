"""Images parity cannot compare faithfully are refused up front, naming the file and its mode."""

import numpy as np
import pytest
from PIL import Image

from parity import ParityImageError, check_preprocessing_parity

from .conftest import SEED


@pytest.mark.parametrize("mode, array, expected", [
    ("L", np.zeros((32, 32), np.uint8), "unsupported image mode 'L' (grayscale)"),
    ("RGBA", np.zeros((32, 32, 4), np.uint8), "unsupported image mode 'RGBA' (RGBA (with alpha))"),
    (None, np.zeros((32, 32), np.uint16), "unsupported image mode 'I;16' (16-bit)"),
    ("cv2", np.zeros((32, 32, 3), np.uint16), "unsupported image mode 'RGB;16' (16-bit per channel)"),
])
def test_unsupported_modes_are_refused(tmp_path, mode, array, expected):
    path = tmp_path / "bad.png"
    if mode == "cv2":  # Pillow cannot write 16-bit colour; OpenCV can, and users have such files
        import cv2

        cv2.imwrite(str(path), array)
    else:
        Image.fromarray(array, mode).save(path)
    with pytest.raises(ParityImageError) as excinfo:
        check_preprocessing_parity(SEED / "parity_deployed.py", images=[path])
    assert str(path) in str(excinfo.value) and expected in str(excinfo.value)


def test_missing_and_corrupt_images_are_named(tmp_path):
    with pytest.raises(ParityImageError, match="gone.png: image not found"):
        check_preprocessing_parity(SEED / "parity_deployed.py", images=[tmp_path / "gone.png"])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ParityImageError, match="broken.jpg: not a readable image"):
        check_preprocessing_parity(SEED / "parity_deployed.py", images=[broken])
