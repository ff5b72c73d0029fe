"""`parity suggest` for a timm checkpoint or torchvision weights: the generated DALI pipeline reproduces
the eval transform's rounding (long side truncated, crop offsets half to even, centred padding), and the
harness proves it on odd sizes; what cannot be generated is named, and the coverage page is measured."""

import importlib.util
import json
import re

import numpy as np
import pytest

from parity import Harness, load_config
from parity.cli import main
from parity.reference import open_reference
from parity.reference.timm import TimmReference
from parity.reference.torchvision import TorchvisionReference
from parity.suggest.eval_transform import suggest

from .conftest import ROOT, save_rgb, write_config

# sizes where a plain port goes wrong: odd crop slack (half-pixel offsets), long sides that truncate, a crop
# larger than the resized image's short side is impossible here, so squash and border modes pad instead
SIZES = [(17, 29), (3000, 401), (401, 3000), (257, 255), (333, 500)]


def _images(folder):
    rng = np.random.default_rng(0)
    paths = []
    for h, w in SIZES:
        y, x = np.mgrid[0:h, 0:w]
        image = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), rng.integers(0, 256, (h, w))], -1)
        paths.append(save_rgb(folder / f"drawn_{h}x{w}.png", image))
    return paths


@pytest.mark.slow
@pytest.mark.parametrize("reference, input_format, exact", [
    (dict(timm="resnet50.a1_in1k"), "BGR", False),  # Resize(235, bicubic) -> CenterCrop(224)
    (dict(timm="resnet50.tv2_in1k"), "RGB", True),  # Resize(201, bilinear) -> CenterCrop(176)
    (dict(timm="vit_base_patch16_224.augreg2_in21k_ft_in1k", crop_mode="squash"), "RGB", False),  # 0.5 mean/std
    (dict(timm="vit_base_patch16_224.augreg2_in21k_ft_in1k", crop_mode="border"), "BGR", False),  # padded, 128
    (dict(timm="resnet50.a1_in1k", input_size=(224, 192)), "RGB", False),  # ResizeKeepRatio, a non-square crop
    (dict(torchvision="ResNet50_Weights.IMAGENET1K_V2"), "BGR", True),  # Resize(232, bilinear) -> CenterCrop(224)
], ids=["timm-resnet-bicubic", "timm-resnet-bilinear", "vit-squash", "vit-border", "keep-ratio", "torchvision"])
def test_the_generated_pipeline_passes_the_harness_on_odd_sizes(tmp_path, reference, input_format, exact):
    cfg = load_config(write_config(tmp_path, pipeline="generated.py:preprocess", reference=reference,
                                   images=[str(p) for p in _images(tmp_path)], input_format=input_format))
    reference = open_reference(cfg)
    spec = suggest(reference.pipeline_cfg[1:], source=reference.source, input_format=input_format)
    assert spec.complete, spec.unsupported
    (tmp_path / "generated.py").write_text(spec.source)
    harness = Harness(cfg)
    for result in harness.run(cfg.images):
        assert result.passed, f"{result.path.name}: {result.first_failure.message()}"
        [crop] = [r for r in result.stages if r.stage == "slice"]
        assert crop.max_abs <= 1 if exact else crop.mean_abs < 0.5  # Pillow bilinear exactly; bicubic's border


def test_torchvision_rounding_is_generated_not_dali_s():
    spec = suggest(TorchvisionReference("ResNet50_Weights.IMAGENET1K_V2").pipeline_cfg[1:], source="tv",
                   input_format="BGR")
    assert spec.complete and spec.supported == ["Resize", "CenterCrop", "Normalize"]
    assert "((232 * w) // h)" in spec.source and "resize_shorter" not in spec.source  # the long side truncated
    assert "(k + (d % 2) * (k % 2))" in spec.source  # round((size - crop) / 2), half to even
    assert "-((224 - h) // 2)" in spec.source  # an image smaller than the crop is padded on both sides
    assert "image_type=types.BGR, output_type=types.RGB" in spec.source
    assert "mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]" in spec.source


def test_timm_border_mode_pads_with_its_mean_and_keeps_the_ratio_rounded_half_to_even():
    ref = TimmReference("vit_base_patch16_224.augreg2_in21k_ft_in1k", crop_mode="border")
    spec = suggest(ref.pipeline_cfg[1:], source=ref.source)
    assert spec.supported == ["ResizeKeepRatio", "CenterCropOrPad", "Normalize"]
    assert "fill_values=[128, 128, 128]" in spec.source and "half_even" in spec.source
    assert "image_type" not in spec.source  # RGB in, RGB to the model


def test_what_dali_cannot_filter_is_named_not_approximated():
    ref = TimmReference("resnet50.a1_in1k", interpolation="box")
    spec = suggest(ref.pipeline_cfg[1:], source=ref.source)
    assert not spec.complete
    assert spec.unsupported == ["Resize: interpolation='box': Pillow's box filter has no DALI counterpart (DALI's "
                                "antialiased filters are triangles, cubics and Lanczos)"]
    assert "NOT reproduced: Resize" in spec.source


@pytest.mark.slow
def test_suggest_timm_checkpoint_writes_a_pipeline_that_parity_check_passes(tmp_path, capsys):
    out = tmp_path / "fix"
    assert main(["suggest", "timm::resnet50.tv2_in1k", "--out", str(out), "--input-format", "RGB", "--triton"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[-1].startswith("EXACT: within 1 uint8 level(s)")
    assert (out / "triton" / "preprocess" / "1" / "model.dali").stat().st_size > 0
    assert "from the eval transform of timm resnet50.tv2_in1k" in (out / "pipeline.py").read_text()
    assert main(["check", str(out / "parity_suggested.py"), "-q"]) == 0


@pytest.mark.slow
def test_a_transform_it_cannot_generate_is_reported_and_exits_1(tmp_path, capsys):
    cfg = write_config(tmp_path, pipeline="x.py:f", reference=dict(timm="resnet50.a1_in1k", interpolation="hamming"),
                       images=[str(ROOT / "fixtures" / "images" / "chelsea.png")], input_format="RGB")
    assert main(["suggest", str(cfg), "--out", str(tmp_path / "fix")]) == 1
    printed = capsys.readouterr().out
    assert "NOT REPRODUCED | Resize: interpolation='hamming': Pillow's hamming filter has no DALI counterpart" in printed
    assert "INCOMPLETE: some transforms are not reproduced" in printed


@pytest.mark.parametrize("spec, error", [
    ("timm::resnet50.a1_in1kk", "timm 1.0.31 has no pretrained checkpoint 'resnet50.a1_in1kk'; the closest are "
                                "'resnet50.a1_in1k'"),
    ("torchvision::ResNet50_Weights.IMAGENET1K_V3", "the closest are 'ResNet50_Weights.IMAGENET1K_V2'"),
    ("timm::", "timm::: expected a name after 'timm::' (timm::resnet50.a1_in1k"),
])
def test_a_bad_checkpoint_name_is_one_sentence_and_exit_2(tmp_path, capsys, spec, error):
    assert main(["suggest", spec, "--out", str(tmp_path / "fix")]) == 2
    err = capsys.readouterr().err
    assert error in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "fix" / "pipeline.py").exists()


def _coverage_script():
    spec = importlib.util.spec_from_file_location("suggest_coverage_timm", ROOT / "scripts" / "suggest_coverage_timm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_coverage_page_is_rendered_from_the_measurements():
    script = _coverage_script()
    data = json.loads(script.DATA.read_text())
    assert script.PAGE.read_text() == script.render(data) + "\n"
    counts = [line for line in script.PAGE.read_text().splitlines() if line.startswith(("Checkpoints:", "Weights:"))]
    assert len(counts) == 2 and all(line in (ROOT / "docs" / "suggest.md").read_text() for line in counts)
    for row in data["rows"]:  # each claim is what its measurement says: no failing image called exact
        in_verdict = row["measured"].split("; below")[0]
        maxima = [float(m) for m in re.findall(r"max ([0-9.]+)", in_verdict)]
        if row["outcome"] == "exact":
            assert maxima and max(maxima) <= 1.01 and "failing" not in in_verdict, row
        if row["outcome"] == "approximate":  # failing the default tolerances only with the share it carries
            assert "failing" not in in_verdict or "carried by the generated config, passes" in in_verdict, row
        if row["outcome"] == "mismatch":
            assert "failing" in in_verdict, row


@pytest.mark.slow
def test_the_coverage_groups_are_timm_s_and_a_group_measures_as_recorded(tmp_path):
    """The page counts what this timm resolves; one group measured again gives the recorded verdict."""
    from parity.config.load import SAMPLE_IMAGES
    from parity.suggest.verdict import verdict_images

    script = _coverage_script()
    data = json.loads(script.DATA.read_text())
    recorded = {json.dumps(r["key"], sort_keys=True): r["checkpoints"] for r in data["rows"] if r["library"] == "timm"}
    assert recorded == script.timm_groups()
    row = [r for r in data["rows"] if r["outcome"] != script.Outcome.PENDING.value][-1]  # the smallest measured
    groups, below = verdict_images(tmp_path / "images", SAMPLE_IMAGES)
    outcome, transform, measured = script.measure(row["library"], row["checkpoints"][0],
                                                  json.dumps(row["key"], sort_keys=True),
                                                  str(tmp_path / "g"), groups, below)
    assert (outcome, transform, measured) == (row["outcome"], row["transform"], row["measured"])
