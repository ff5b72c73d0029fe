"""timm checkpoints and torchvision weights as the reference: their own eval transforms, stage by stage.

A user who trained with timm or torchvision names the checkpoint; parity must give, for every image, the
very tensor the library's eval transform gives, plus the resize and crop before it, so that a DALI port
can be checked operator by operator. Everything is resolved offline: no weights are downloaded.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from parity import ParityReferenceError, assert_stage_close
from parity.config.sections import DEFAULT_PIXEL_TOLERANCE
from tests.conftest import IMAGES, ROOT

timm = pytest.importorskip("timm")
torch = pytest.importorskip("torch")

from parity.reference.timm import TimmReference  # noqa: E402
from parity.reference.torchvision import TorchvisionReference  # noqa: E402

CHECKPOINTS = ["resnet50.a1_in1k", "resnet50.tv2_in1k", "vit_base_patch16_224.augreg2_in21k_ft_in1k",
               "convnext_tiny.fb_in1k", "efficientnet_b0.ra_in1k", "inception_v3.tv_in1k"]
PRESETS = ["ResNet50_Weights.IMAGENET1K_V2", "EfficientNet_B0_Weights.IMAGENET1K_V1"]
SIZES = {"landscape": (427, 640), "portrait": (568, 426), "tiny_17x9": (9, 17), "panorama_3000x400": (400, 3000)}


def _photo_at(folder, name: str, h: int, w: int):
    """A photograph resampled to h x w, written as PNG: odd sizes with real image content."""
    path = folder / f"{name}.png"
    Image.open(IMAGES / "rocket.png").convert("RGB").resize((w, h), Image.BICUBIC).save(path)
    return path


@pytest.fixture(scope="module")
def odd_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd_sizes")
    return {name: _photo_at(folder, name, h, w) for name, (h, w) in SIZES.items()}


def _library_input(path):
    """What timm's and torchvision's loaders hand their transforms."""
    return Image.open(path).convert("RGB")


def _resized_hw(h: int, w: int, short_side: int) -> tuple[int, int]:
    """torchvision's Resize(int): the short side to ``short_side``, the long side truncated."""
    if w <= h:
        return int(short_side * h / w), short_side
    return short_side, int(short_side * w / h)


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_timm_model_input_is_timms_own_eval_transform(checkpoint, odd_images):
    model = timm.create_model(checkpoint, pretrained=False)
    config = timm.data.resolve_model_data_config(model)
    transform = timm.data.create_transform(**config, is_training=False)
    _, size, _ = config["input_size"]
    scale = math.floor(size / config["crop_pct"])

    reference = TimmReference(checkpoint)

    assert reference.source == f"timm {checkpoint}"
    assert reference.stage_names == ["LoadImageFromFile", "Resize", "CenterCrop", "model_input"]
    assert reference.geometry_stages == [False, True, True, False]
    np.testing.assert_allclose(reference.mean, np.array(config["mean"]) * 255)
    for name, path in odd_images.items():
        decoded, resized, cropped, model_input = reference.run(path)
        h, w = SIZES[name]
        assert decoded.array.shape == (h, w, 3) and decoded.array.dtype == np.uint8
        assert resized.array.shape == (*_resized_hw(h, w, scale), 3) and resized.array.dtype == np.uint8
        assert cropped.array.shape == (size, size, 3) and cropped.array.dtype == np.uint8
        assert (model_input.layout, model_input.pixels, model_input.array.dtype) == ("CHW", False, np.float32)
        expected = transform(_library_input(path)).numpy()
        assert np.array_equal(model_input.array, expected), f"{checkpoint} on {name}"


def test_timm_test_size_is_torchvisions_own_preset_for_a_torchvision_recipe(odd_images):
    """resnet50.tv2_in1k trains at 176 px; its test size (232 -> 224) is torchvision's IMAGENET1K_V2
    preset, and the two references agree on every stage."""
    train = TimmReference("resnet50.tv2_in1k")
    test = TimmReference("resnet50.tv2_in1k", use_test_size=True)
    torchvision = TorchvisionReference("ResNet50_Weights.IMAGENET1K_V2")

    assert train.pipeline_cfg[1]["size"] == 201 and test.pipeline_cfg[1]["size"] == 232
    assert test.identity()["use_test_size"] is True
    assert test.identity()["data_config"]["crop_pct"] == 0.965
    for path in odd_images.values():
        for ours, theirs in zip(test.run(path), torchvision.run(path), strict=True):
            assert np.array_equal(ours.array, theirs.array), ours.name


def test_timm_overrides_change_the_transform_as_timms_args_do(odd_images):
    squash = TimmReference("resnet50.a1_in1k", crop_mode="squash", crop_pct=1.0, input_size=256,
                           interpolation="bilinear")
    expected = timm.data.create_transform(input_size=(3, 256, 256), crop_pct=1.0, crop_mode="squash",
                                          interpolation="bilinear", is_training=False)

    assert squash.pipeline_cfg[1] == dict(type="Resize", size=[256, 256], interpolation="bilinear", max_size=None,
                                          antialias=True, backend="pillow", library="timm",
                                          checkpoint="resnet50.a1_in1k", crop_pct=1.0, crop_size=256)
    for path in odd_images.values():
        stages = squash.run(path)
        assert stages[1].array.shape == (256, 256, 3)  # every image squashed, whatever its aspect ratio
        assert np.array_equal(stages[-1].array, expected(_library_input(path)).numpy())


@pytest.mark.parametrize("overrides, names", [
    (dict(crop_mode="border"), ["LoadImageFromFile", "ResizeKeepRatio", "CenterCropOrPad", "model_input"]),
    (dict(input_size=(192, 256)), ["LoadImageFromFile", "ResizeKeepRatio", "CenterCrop", "model_input"]),
], ids=["border", "non-square"])
def test_timms_other_eval_geometries_are_run_step_by_step_too(overrides, names, odd_images):
    reference = TimmReference("convnext_tiny.fb_in1k", **overrides)
    config = dict(reference.data_config)
    transform = timm.data.create_transform(**config, is_training=False)

    assert reference.stage_names == names
    assert reference.geometry_stages == [False, True, True, False]
    for path in odd_images.values():
        stages = reference.run(path)
        assert stages[2].array.shape == (*config["input_size"][1:], 3)
        assert np.array_equal(stages[-1].array, transform(_library_input(path)).numpy())


@pytest.mark.parametrize("weights", PRESETS)
def test_torchvision_stages_end_in_the_presets_own_tensor(weights, odd_images, tmp_path):
    from torchvision.models import get_weight

    preset = get_weight(weights).transforms()
    reference = TorchvisionReference(weights)

    assert reference.source == f"torchvision {weights}"
    assert reference.stage_names == ["LoadImageFromFile", "Resize", "CenterCrop", "model_input"]
    assert reference.pipeline_cfg[1]["interpolation"] == preset.interpolation.value
    assert reference.identity()["preset"]["resize_size"] == preset.resize_size
    rng = np.random.default_rng(25)
    sizes = {name: SIZES[name] for name in odd_images}
    paths = dict(odd_images)
    for i in range(20):  # and twenty more sizes, both orientations, odd and even slacks
        h, w = (int(n) for n in rng.integers(5, 700, size=2))
        sizes[f"random{i}"], paths[f"random{i}"] = (h, w), _photo_at(tmp_path, f"random{i}", h, w)
    for name, path in paths.items():
        decoded, resized, cropped, model_input = reference.run(path)
        h, w = sizes[name]
        assert resized.array.shape == (*_resized_hw(h, w, preset.resize_size[0]), 3), name
        assert cropped.array.shape == (preset.crop_size[0], preset.crop_size[0], 3), name
        assert np.array_equal(model_input.array, preset(_library_input(path)).numpy()), name


def test_an_unknown_timm_checkpoint_names_the_closest_ones():
    with pytest.raises(ParityReferenceError) as error:
        TimmReference("resnet50.a1_in1kk")
    message = str(error.value)
    assert "'resnet50.a1_in1kk'" in message and "'resnet50.a1_in1k'" in message and "\n" not in message


def test_a_timm_crop_mode_parity_cannot_pair_is_refused():
    with pytest.raises(ParityReferenceError, match=r"crop_mode='letterbox' is not one of timm's eval crop modes"):
        TimmReference("resnet50.a1_in1k", crop_mode="letterbox")


def test_an_unknown_torchvision_preset_names_the_closest_ones():
    with pytest.raises(ParityReferenceError) as error:
        TorchvisionReference("ResNet50_Weights.IMAGENET1K_V3")
    assert "'ResNet50_Weights.IMAGENET1K_V2'" in str(error.value)
    with pytest.raises(ParityReferenceError, match="'ResNet50_Weights.IMAGENET1K_V1', 'ResNet50_Weights.IMAGENET1K_V2'"):
        TorchvisionReference("resnet50")  # a model's name: its weights are named


def test_a_torchvision_preset_that_is_not_a_classification_one_is_refused():
    with pytest.raises(ParityReferenceError, match="its preset is ObjectDetection"):
        TorchvisionReference("FasterRCNN_ResNet50_FPN_Weights.DEFAULT")


# --- a DALI port of resnet50.a1_in1k, checked stage by stage at parity's default tolerances ------------

PIPELINES = ROOT / "fixtures" / "timm"


def _dali_stages(function: str, image: np.ndarray, reference):
    """(label, DALI output, reference stage) per paired stage, as the harness pairs them."""
    pytest.importorskip("nvidia.dali")
    from parity.compare.align import align
    from parity.dali.runner import open_pipeline

    runner = open_pipeline(pipeline=f"resnet50_a1_in1k_pipeline.py:{function}", serialized=None,
                           base_dir=PIPELINES, input_name="INPUT", device="cpu", batch_size=1, num_threads=1)
    outputs = runner.run([image])[0]
    pairs = align(runner.stages, runner.outputs[0], reference.stage_names, reference.geometry_stages, "RGB")
    return outputs, [p for p in pairs if p.ref_index is not None]


def _assert_default_close(actual, expected, layout: str, name: str, reference):
    """parity's default verdict: the pixel tolerance (in normalized units for the model input, divided by
    the smallest std), the outermost pixel ring left out."""
    tol = DEFAULT_PIXEL_TOLERANCE
    if layout == "CHW":
        tol = tol.scaled(1.0 / float(reference.std.min()), "normalized units")
    ring = (slice(None), slice(1, -1), slice(1, -1)) if layout == "CHW" else (slice(1, -1), slice(1, -1))
    assert actual.shape == expected.shape, f"{name}: DALI {actual.shape}, reference {expected.shape}"
    assert_stage_close(actual[ring], expected[ring], atol=tol.atol, max_mismatch=tol.max_mismatch,
                       mean_atol=tol.mean_atol, layout=layout, name=name, mean=reference.mean, std=reference.std)


def _trap_sizes():
    """24 sizes: each orientation, where DALI's rounding of the long side or of the crop anchor differs
    from torchvision's (see the pipeline file), where both do, and where neither does."""
    rng = np.random.default_rng(7)
    sizes = [(427, 640), (568, 426), (300, 301), (9, 17), (400, 3000), (301, 451)]
    while len(sizes) < 24:
        sizes.append(tuple(int(n) for n in rng.integers(120, 900, size=2)))
    return sizes


def _traps(h: int, w: int) -> tuple[bool, bool]:
    """(long side rounded differently, crop anchor rounded differently) for a plain port of Resize(235)."""
    exact = 235 * max(h, w) / min(h, w)
    slack = int(exact) - 224
    return int(exact) != math.floor(exact + 0.5), round(slack / 2) != math.floor(slack / 2 + 0.5)


@pytest.fixture(scope="module")
def a1_reference():
    return TimmReference("resnet50.a1_in1k")


@pytest.fixture(scope="module")
def photo():
    return Image.open(ROOT / "fixtures" / "landscape" / "rocket_wide.png").convert("RGB")


@pytest.mark.parametrize("hw", _trap_sizes(), ids=lambda hw: f"{hw[0]}x{hw[1]}")
def test_an_exact_dali_port_of_timm_passes_stage_by_stage(hw, a1_reference, photo, tmp_path):
    h, w = hw
    path = tmp_path / "image.png"
    photo.resize((w, h), Image.BICUBIC).save(path)
    stages = a1_reference.run(path)

    outputs, pairs = _dali_stages("exact", stages[0].array, a1_reference)

    assert [stages[p.ref_index].name for p in pairs] == ["LoadImageFromFile", "Resize", "CenterCrop", "model_input"]
    for pair in pairs:
        expected = stages[pair.ref_index]
        _assert_default_close(outputs[pair.dali.name], expected.array, expected.layout,
                              f"{pair.label} vs {expected.name}", a1_reference)


@pytest.mark.parametrize("hw", [(300, 301), (568, 426), (320, 439)], ids=["long-side", "anchor", "neither"])
def test_a_plain_dali_port_of_timm_fails_where_the_roundings_differ(hw, a1_reference, photo, tmp_path):
    h, w = hw
    path = tmp_path / "image.png"
    photo.resize((w, h), Image.BICUBIC).save(path)
    stages = a1_reference.run(path)
    size_trap, anchor_trap = _traps(h, w)

    outputs, pairs = _dali_stages("plain_port", stages[0].array, a1_reference)
    final = stages[-1]

    if size_trap or anchor_trap:
        with pytest.raises(AssertionError):
            _assert_default_close(outputs[pairs[-1].dali.name], final.array, "CHW", "model_input", a1_reference)
    else:
        _assert_default_close(outputs[pairs[-1].dali.name], final.array, "CHW", "model_input", a1_reference)
    resized = outputs[pairs[1].dali.name]
    assert (resized.shape != stages[1].array.shape) == size_trap
