"""A timm or torchvision checkpoint as the reference of `parity check`: the ports users write from a ResNet
recipe fail with the checkpoint's own numbers named, and the exact ports pass on every bundled size."""

import json

import pytest

from parity.cli import main

from .conftest import ROOT

TIMM = ROOT / "fixtures" / "timm"
IMAGES = [str(ROOT / "fixtures" / "images" / "*.png"), str(ROOT / "fixtures" / "landscape" / "*.png")]


def _config(tmp_path, reference: str, pipeline: str, name: str = "parity_cfg.py"):
    cfg = tmp_path / name
    cfg.write_text(f"reference = dict({reference})\nimages = {IMAGES!r}\n"
                   f"dali = dict(pipeline='{TIMM / pipeline}', input_name='INPUT', input_format='RGB')\n")
    return cfg


def _causes(path) -> dict:
    """image -> {stage: [(kind, finding)]} of the failed stages in a result file."""
    return {image["id"]: {s["stage"]: [(c["kind"], c["finding"]) for c in s["causes"]]
                          for s in image["stages"] if s["status"] == "failed"}
            for image in json.loads(path.read_text())["images"]}


@pytest.mark.slow
def test_the_bundled_vit_example_fails_on_crop_pct_and_mean_std_and_its_correction_passes(tmp_path, capsys):
    """The ViT's crop_pct is 0.9 and its mean/std 0.5; the port copied 256 px (0.875) and ImageNet's constants."""
    assert main(["check", str(TIMM / "parity_vit_deployed.py"), "--json", str(tmp_path / "r.json"), "-q"]) == 1
    out = capsys.readouterr().out
    assert "timm vit_base_patch16_224.augreg2_in21k_ft_in1k: crop_pct 0.9 -> Resize(248) (floor(224 / 0.9)); " \
           "DALI resizes the short side to 256 (crop_pct 0.875)" in out
    astronaut = _causes(tmp_path / "r.json")["astronaut"]
    [(kind, finding)] = astronaut["model_input"]
    assert kind == "wrong_normalization" and "mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]" in finding
    assert main(["check", str(TIMM / "parity_vit_corrected.py"), "-q"]) == 0
    assert "12 of 12 images match" in capsys.readouterr().out


@pytest.mark.slow
def test_a_plain_port_of_torchvisions_geometry_fails_where_its_roundings_part_and_the_exact_one_passes(tmp_path,
                                                                                                   capsys):
    cfg = _config(tmp_path, "timm='resnet50.a1_in1k'", "resnet50_a1_in1k_pipeline.py:plain_port")
    assert main(["check", str(cfg), "--json", str(tmp_path / "r.json"), "-q"]) == 1
    causes = _causes(tmp_path / "r.json")
    # coffee_wide 400x600: 235 * 600 / 400 = 352.5, truncated by torchvision, rounded by DALI
    assert causes["coffee_wide"]["resize"] == [("size_rounding", "Long side: timm resizes the short side to 235 and "
                                               "truncates the long side, 235 x 600 / 400 = 352.50 -> 352; DALI rounds "
                                               "it to 353 (the output width differs by one pixel)")]
    # chelsea 300x400 -> 235x313: the crop's row offset (313 - 224) / 2 = 44.5
    assert causes["chelsea"]["crop"] == [("offset", "Centre crop row offset (313 - 224) / 2 = 44.5: timm rounds half "
                                          "to even (44), DALI's crop anchor away from zero (45)")]
    assert [kind for kind, _ in causes["coffee"]["resize"]] == ["resize_filter"]  # subpixel_scale, the third
    capsys.readouterr()
    exact = _config(tmp_path, "timm='resnet50.a1_in1k'", "resnet50_a1_in1k_pipeline.py:exact", "exact.py")
    assert main(["check", str(exact), "-q"]) == 0
    torchvision = _config(tmp_path, "torchvision='ResNet50_Weights.IMAGENET1K_V2'",
                          "torchvision_resnet50_pipeline.py:exact", "tv.py")
    assert main(["check", str(torchvision), "-q"]) == 0
    assert "12 of 12 images match" in capsys.readouterr().out


@pytest.mark.parametrize(("reference", "error"), [
    ("timm='resnet50.a1_in1kk'", "has no pretrained checkpoint 'resnet50.a1_in1kk'; the closest are "
                                 "'resnet50.a1_in1k'"),
    ("torchvision='ResNet50_Weights.IMAGENET1K_V3'", "the closest are 'ResNet50_Weights.IMAGENET1K_V2'"),
    ("timm='resnet50.a1_in1k', config='model.py'", "reference: timm and config given together"),
    ("timm='resnet50.a1_in1k', resize_size=256", "reference.resize_size is not an argument of the timm reference"),
    ("torchvision='ResNet50_Weights.IMAGENET1K_V2', crop_pct=0.9", "reference.crop_pct is not an argument of the "
                                                                   "torchvision reference"),
    ("timm='resnet50.a1_in1k', input_size=(3, 0, 224)", "reference.input_size=(3, 0, 224): expected a positive"),
])
def test_a_bad_timm_or_torchvision_reference_is_one_sentence_and_exit_2(tmp_path, capsys, reference, error):
    cfg = _config(tmp_path, reference, "resnet50_a1_in1k_pipeline.py:exact")
    assert main(["check", str(cfg), "-q"]) == 2
    err = capsys.readouterr().err
    assert error in err and err.count("\n") == 1 and "Traceback" not in err


def test_suggest_says_it_writes_pipelines_for_mmpretrain_references(tmp_path, capsys):
    cfg = _config(tmp_path, "timm='resnet50.a1_in1k'", "resnet50_a1_in1k_pipeline.py:exact")
    assert main(["suggest", str(cfg), "--out", str(tmp_path / "fix")]) == 2
    assert "parity suggest writes pipelines for MMPretrain references" in capsys.readouterr().err
    assert not (tmp_path / "fix").exists()


@pytest.mark.slow
def test_a_timm_snapshot_is_checked_where_neither_torch_nor_timm_is_installed(tmp_path, capsys):
    """Record where timm lives; check in a serving environment: the same verdicts and the same named causes."""
    import subprocess
    import sys

    exact = _config(tmp_path, "timm='resnet50.a1_in1k'", "resnet50_a1_in1k_pipeline.py:exact", "exact.py")
    plain = _config(tmp_path, "timm='resnet50.a1_in1k'", "resnet50_a1_in1k_pipeline.py:plain_port", "plain.py")
    assert main(["snapshot", str(exact), "--out", str(tmp_path / "ref"), "-q"]) == 0
    manifest = json.loads((tmp_path / "ref" / "manifest.json").read_text())
    assert manifest["kind"] == "timm" and manifest["reference"]["timm"] == "resnet50.a1_in1k"
    serving = ROOT / "tests" / "helpers" / "serving_env.py"
    runs = [subprocess.run([sys.executable, str(serving), "parity", "check", str(cfg), "--reference",
                            str(tmp_path / "ref"), "-q"], capture_output=True, text=True, timeout=300)
            for cfg in (exact, plain)]
    assert [run.returncode for run in runs] == [0, 1]
    assert all("training modules imported: none" in run.stdout for run in runs)
    assert "chelsea: crop: Centre crop row offset (313 - 224) / 2 = 44.5: timm rounds half to even (44)" in runs[1].stdout
    other = _config(tmp_path, "timm='resnet50.tv2_in1k'", "resnet50_a1_in1k_pipeline.py:exact", "other.py")
    assert main(["check", str(other), "--reference", str(tmp_path / "ref"), "-q"]) == 2
    assert "reference.timm: 'resnet50.a1_in1k' in the snapshot, 'resnet50.tv2_in1k' in the config" in \
        capsys.readouterr().err


def test_a_model_section_with_a_timm_reference_runs_the_deployed_model_alone(tmp_path, capsys):
    """No timm reference network yet: the deployed model is run for the degenerate-output check, and one that
    cannot take the reference's input (the seed's 512x384 model) is refused by name."""
    cfg = _config(tmp_path, "timm='resnet50.a1_in1k'", "resnet50_a1_in1k_pipeline.py:exact")
    onnx = ROOT / "fixtures" / "model" / "build" / "known_answer.onnx"
    cfg.write_text(cfg.read_text() + f"model = dict(onnx='{onnx}')\n")
    assert main(["check", str(cfg), "-q"]) == 2
    assert "model: a timm reference network is not supported yet; set model.reference_model=False" in \
        capsys.readouterr().err
    cfg.write_text(cfg.read_text().replace("model = dict(", "model = dict(reference_model=False, "))
    assert main(["check", str(cfg), "-q"]) == 2
    assert "takes input of shape ('batch', 3, 512, 384), the reference's model input is (N, 3, 224, 224)" in \
        capsys.readouterr().err


@pytest.fixture(scope="module")
def odd_photos(tmp_path_factory):
    """Photographs at the sizes that break ports: landscape, portrait, 17x9 and a 3000x400 panorama."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("odd_photos")
    photo = Image.open(ROOT / "fixtures" / "images" / "astronaut.png").convert("RGB")
    for name, size in (("landscape", (640, 427)), ("portrait", (427, 640)), ("tiny", (17, 9)),
                       ("panorama", (3000, 400))):
        photo.resize(size, Image.BICUBIC).save(folder / f"{name}.png")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint, function", [
    ("resnet50.a1_in1k", "resnet50_a1_in1k"), ("resnet50.tv2_in1k", "resnet50_tv2_in1k"),
    ("vit_base_patch16_224.augreg2_in21k_ft_in1k", "vit_base_patch16_224_augreg2"),
    ("convnext_tiny.fb_in1k", "convnext_tiny_fb_in1k"), ("efficientnet_b0.ra_in1k", "efficientnet_b0_ra_in1k"),
    ("inception_v3.tv_in1k", "inception_v3_tv_in1k"),
])
def test_exact_ports_of_six_checkpoint_families_pass_on_odd_sizes(tmp_path, capsys, odd_photos, checkpoint, function):
    cfg = tmp_path / "parity_cfg.py"
    cfg.write_text(f"reference = dict(timm='{checkpoint}')\nimages = ['{odd_photos}']\n"
                   f"dali = dict(pipeline='{TIMM / 'checkpoints_pipeline.py'}:{function}', input_name='INPUT', "
                   "input_format='RGB')\n")
    assert main(["check", str(cfg), "-q"]) == 0, capsys.readouterr().out
    assert "4 of 4 images match" in capsys.readouterr().out
