"""Training-time randomness left in an inference pipeline is found by running DALI twice on the same input,
and named from the graph: the operator, its source line and the argument to change."""

import numpy as np
import pytest

from parity.dali import runner as dali_runner
from parity.dali.determinism import check_determinism, random_operators
from parity.dali.runner import open_pipeline

from .conftest import IMAGES, write_pipeline


def _runner(folder, body: str):
    spec = write_pipeline(folder, body)
    return open_pipeline(pipeline=spec, serialized=None, base_dir=folder, input_name="INPUT", device="cpu",
                         batch_size=8, num_threads=1)


def _photo() -> np.ndarray:
    from PIL import Image

    with Image.open(IMAGES / "chelsea.png") as image:
        return np.asarray(image.convert("RGB"))[:, :, ::-1].copy()  # what a cv2 client sends


def _line(folder, needle: str) -> int:
    return next(n for n, text in enumerate((folder / "pipe.py").read_text().splitlines(), 1) if needle in text)


def test_a_random_resized_crop_left_from_training_is_named_with_its_line(tmp_path):
    runner = _runner(tmp_path, """
        images = fn.random_resized_crop(fn.external_source(name="INPUT"), size=(224, 224))
        return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW",
                                        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
    """)
    result = check_determinism(runner, [_photo()])
    assert result.status == "failed" and not result and result.max_difference > 1.0
    [op] = result.operators
    line = _line(tmp_path, "fn.random_resized_crop(")
    assert op.call == "fn.random_resized_crop" and op.where.startswith(f"pipe.py:{line}:") and op.transforms_data
    first = result.message().splitlines()[0]
    assert f"fn.random_resized_crop (pipe.py:{line}:" in first and "replace it with" in first and "fn.resize" in first
    assert result.diverged_at == op.where  # the runs part at the operator itself
    assert not result and result.headline == first  # what the CLI, JUnit and pytest's summary show


def test_a_coin_flip_mirror_names_the_mirror_argument(tmp_path):
    runner = _runner(tmp_path, """
        images = fn.resize(fn.external_source(name="INPUT"), size=(64, 48))
        coin = fn.random.coin_flip(probability=0.5)
        return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW", mirror=coin)
    """)
    result = check_determinism(runner, [_photo()])
    assert result.status == "failed" and result.samples == 16
    [op] = result.operators
    coin, cmn = _line(tmp_path, "fn.random.coin_flip("), _line(tmp_path, "mirror=coin")
    assert op.call == "fn.random.coin_flip" and op.where.startswith(f"pipe.py:{coin}:") and not op.transforms_data
    [(argument, consumer, where)] = op.drives
    assert (argument, consumer) == ("mirror", "fn.crop_mirror_normalize") and where.startswith(f"pipe.py:{cmn}:")
    first = result.message().splitlines()[0]
    assert "fn.random.coin_flip" in first and f"set mirror=0 in fn.crop_mirror_normalize at pipe.py:{cmn}:" in first


def test_a_random_value_through_arithmetic_names_the_argument_it_reaches(tmp_path):
    """Colour jitter written as a random factor times a constant: the argument it ends in is named."""
    runner = _runner(tmp_path, """
        images = fn.resize(fn.external_source(name="INPUT"), size=(64, 48))
        factor = fn.random.uniform(range=[0.8, 1.2]) * 1.0
        return fn.brightness(images, brightness=factor)
    """)
    [op] = random_operators(runner.stages)
    assert op.call == "fn.random.uniform" and [d[:2] for d in op.drives] == [("brightness", "fn.brightness")]
    result = check_determinism(runner, [_photo()])
    assert result.status == "failed"
    assert "give brightness= of fn.brightness at pipe.py:" in result.message().splitlines()[0]


@pytest.mark.parametrize("body", [
    """
    images = fn.resize(fn.external_source(name="INPUT"), size=(64, 48))
    return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW", mirror=0)
    """,
    # a random operator that never fires (probability 0) leaves the output deterministic: listed, not failed
    """
    images = fn.resize(fn.external_source(name="INPUT"), size=(64, 48))
    return fn.crop_mirror_normalize(images, dtype=types.FLOAT, mirror=fn.random.coin_flip(probability=0.0))
    """,
], ids=["no_random_operator", "coin_flip_that_never_fires"])
def test_a_deterministic_pipeline_passes(tmp_path, body):
    runner = _runner(tmp_path, body)
    result = check_determinism(runner, [_photo(), _photo()[:50, :40].copy()])
    assert result.status == "passed" and result and result.max_difference == 0.0 and result.samples == 16
    assert len(result.operators) == (0 if "coin_flip" not in body else 1)
    assert result.message().startswith("DALI gave identical outputs on two runs of 16 inputs")


def test_it_needs_an_input(tmp_path):
    runner = _runner(tmp_path, 'return fn.external_source(name="INPUT")')
    with pytest.raises(ValueError, match="at least one input"):
        check_determinism(runner, [])


@pytest.mark.parametrize("mirror, status", [("coin", "failed"), ("0", "passed")])
def test_photos_too_large_for_one_iteration_are_run_twice_an_iteration_at_a_time(tmp_path, monkeypatch, mirror,
                                                                               status):
    """DALI holds every operator's output of an iteration: sixteen copies of a 12-Mpx photo in one iteration,
    run twice with every stage kept, were killed at 24 GB. Iterations stop at ITERATION_BYTES (one photo each
    here) and each runs twice in a row, compared at once; a coin flip is still found, and only there."""
    monkeypatch.setattr(dali_runner, "ITERATION_BYTES", _photo().nbytes)
    runner = _runner(tmp_path, f"""
        images = fn.resize(fn.external_source(name="INPUT"), size=(64, 48))
        coin = fn.random.coin_flip(probability=0.5)
        return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW", mirror={mirror})
    """)
    iterations = []
    run = runner.run
    monkeypatch.setattr(runner, "run", lambda batch, keep=None: iterations.append(len(batch)) or run(batch, keep))
    result = check_determinism(runner, [_photo()])
    assert result.status == status and result.samples == 16 and iterations == [1] * 32
