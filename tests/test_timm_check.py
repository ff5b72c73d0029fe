"""A timm or torchvision checkpoint as the reference of `parity check`: the ports users write from a ResNet
recipe fail with the checkpoint's own numbers named, and the exact ports pass on every bundled size."""

import json

import pytest

from parity.cli import main

from .conftest import ROOT

TIMM = ROOT / "fixtures" / "timm"
IMAGES = [str(ROOT / "fixtures" / "images" / "*.png"), str(ROOT / "fixtures" / "landscape" / "*.png")]
VIT_TINY = "timm='vit_tiny_patch16_224.augreg_in21k_ft_in1k'"  # the eval transform of the bundled ViT example


@pytest.fixture(scope="module")
def vit_tiny():
    """The known-answer ViT-Ti/16 (scripts/setup.sh builds it; built here when missing): its build folder."""
    build = TIMM / "build"
    if not (build / "vit_tiny.onnx").is_file():
        import runpy

        runpy.run_path(str(TIMM / "make_model.py"), run_name="__main__")
    return build


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


def _with_model(cfg, **model) -> None:
    """Add a model section; ONNX Runtime runs the deployed model (a GPU would otherwise pick TensorRT)."""
    model.setdefault("backend", "onnxruntime")
    cfg.write_text(cfg.read_text() + f"model = dict({', '.join(f'{k}={v!r}' for k, v in model.items())})\n")


def _models(path) -> dict:
    """image -> its model-stage entry in a result file."""
    return {image["id"]: image["model"] for image in json.loads(path.read_text())["images"]}


@pytest.mark.slow
def test_the_vit_checkpoint_gives_its_known_answers_through_the_corrected_port_and_imagenet_constants_change_them(
        tmp_path, capsys, vit_tiny):
    """The deployed ViT-Ti/16 on DALI's input answers what timm's network answers on timm's input, image by image;
    normalized with ImageNet's mean/std instead of the checkpoint's 0.5, its answers move with the model input."""
    answers = json.loads((vit_tiny / "answers.json").read_text())
    cfg = _config(tmp_path, VIT_TINY, "vit_pipeline.py:corrected")
    _with_model(cfg, onnx=str(vit_tiny / "vit_tiny.onnx"), checkpoint=str(vit_tiny / "vit_tiny.pth"))
    assert main(["check", str(cfg), "--json", str(tmp_path / "ok.json"), "-q"]) == 0
    assert "model (onnxruntime): 12 passed, 0 failed, 0 skipped; top-1 agreement 12/12" in capsys.readouterr().out
    models = _models(tmp_path / "ok.json")
    assert {image: m["reference_top1"] for image, m in models.items()} == answers
    assert {image: m["top1"] for image, m in models.items()} == answers
    assert max(m["kl"] for m in models.values()) < 1e-3 and max(m["conversion_max_abs"] for m in models.values()) < 1e-3

    broken = _config(tmp_path, VIT_TINY, "vit_pipeline.py:imagenet_constants", "broken.py")
    _with_model(broken, onnx=str(vit_tiny / "vit_tiny.onnx"), checkpoint=str(vit_tiny / "vit_tiny.pth"))
    assert main(["check", str(broken), "--json", str(tmp_path / "broken.json"), "-q"]) == 1
    assert "degenerate-output check: PASSED" in capsys.readouterr().out  # distinct answers: not a collapse
    assert {stage for stages in _causes(tmp_path / "broken.json").values() for stage in stages} == {"model_input"}
    failed = {image: m for image, m in _models(tmp_path / "broken.json").items() if m["status"] == "failed"}
    assert len(failed) >= 10  # measured: 10 of 12 beyond KL 0.01, 2 of them answering another class
    assert sum(m["top1"] != answers[image] for image, m in failed.items()) >= 2
    astronaut = failed["astronaut"]
    assert astronaut["headline"] == "astronaut: onnxruntime: consequence of the model_input divergence on astronaut"
    assert "Preprocessing already diverged at stage 'model_input'; at the model input: wrong_normalization." in \
        astronaut["message"]
    assert astronaut["conversion_max_abs"] < 1e-3  # the export is right: the preprocessing is what differs


def test_a_torchvision_preset_without_a_checkpoint_is_compared_on_seeded_random_weights(tmp_path, capsys):
    """No model.checkpoint: torchvision's own builder with seeded weights, the same on every run, so the ONNX
    exported from that network is judged against it."""
    from parity.serving.backends import LibraryClassifier

    weights = "ResNet18_Weights.IMAGENET1K_V1"
    network = LibraryClassifier("torchvision", weights, None, weights).model
    assert type(network).__name__ == "ResNet" and network.fc.out_features == 1000
    torch = pytest.importorskip("torch")
    onnx = tmp_path / "resnet18.onnx"
    torch.onnx.export(network, (torch.zeros(1, 3, 224, 224),), str(onnx), input_names=["input"],
                      output_names=["logits"], opset_version=17, dynamo=False,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    cfg = _config(tmp_path, f"torchvision={weights!r}, resize_size=232", "torchvision_resnet50_pipeline.py:exact")
    _with_model(cfg, onnx=str(onnx))
    assert main(["check", str(cfg), "--json", str(tmp_path / "r.json"), "-q"]) == 0
    assert "model (onnxruntime): 12 passed, 0 failed, 0 skipped" in capsys.readouterr().out
    assert max(m["conversion_max_abs"] for m in _models(tmp_path / "r.json").values()) < 1e-3


def test_a_checkpoint_that_does_not_load_or_a_model_of_other_classes_is_one_sentence_and_exit_2(tmp_path, capsys,
                                                                                                   vit_tiny):
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), tmp_path / "resnet18.pth")
    torch.save(timm.create_model("vit_tiny_patch16_224", num_classes=10).state_dict(), tmp_path / "ten.pth")
    ten = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 10)).eval()
    torch.onnx.export(ten, (torch.zeros(1, 3, 224, 224),), str(tmp_path / "ten.onnx"), input_names=["input"],
                      opset_version=17, dynamo=False)
    onnx, checkpoint = str(vit_tiny / "vit_tiny.onnx"), str(vit_tiny / "vit_tiny.pth")
    cases = [
        (dict(onnx=onnx, checkpoint=str(tmp_path / "notes.pth")),
         "notes.pth: model.checkpoint does not load into the model: not a torch checkpoint file"),
        (dict(onnx=onnx, checkpoint=str(tmp_path / "resnet18.pth")),
         "resnet18.pth: model.checkpoint does not load into the model: it lacks 152 of the timm "
         "vit_tiny_patch16_224.augreg_in21k_ft_in1k network's 152 tensors (first 'cls_token') and holds 122 it does "
         "not have (first 'conv1.weight')"),
        (dict(onnx=onnx, checkpoint=str(tmp_path / "ten.pth")),
         "ten.pth: model.checkpoint does not load into the model: RuntimeError: size mismatch for head.weight"),
        (dict(onnx=onnx, checkpoint=str(tmp_path / "missing.pth")),
         "missing.pth: model.checkpoint does not load into the model: FileNotFoundError"),
        (dict(onnx=str(tmp_path / "ten.onnx"), checkpoint=checkpoint),
         "model.onnx: answers 10 classes, the reference network 1000: is it the model exported from the timm "
         "vit_tiny_patch16_224.augreg_in21k_ft_in1k network (model.checkpoint)?"),
        (dict(onnx=onnx, config="mmpretrain::resnet/resnet18_8xb32_in1k.py"),
         "model.config: the timm reference's network is built by timm from "
         "'vit_tiny_patch16_224.augreg_in21k_ft_in1k'; give its weights as model.checkpoint"),
    ]
    for i, (model, error) in enumerate(cases):
        cfg = _config(tmp_path, VIT_TINY, "vit_pipeline.py:corrected", f"cfg{i}.py")
        _with_model(cfg, **model)
        assert main(["check", str(cfg), "-q"]) == 2, error
        err = capsys.readouterr().err
        assert error in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_a_deployed_model_of_another_input_size_is_refused_by_name(tmp_path, capsys):
    """The seed's 512x384 model behind a 224 px timm reference, with or without the reference network."""
    cfg = _config(tmp_path, "timm='resnet50.a1_in1k'", "resnet50_a1_in1k_pipeline.py:exact")
    onnx = ROOT / "fixtures" / "model" / "build" / "known_answer.onnx"
    _with_model(cfg, onnx=str(onnx))
    for _ in ("with the reference network", "with the deployed model alone"):
        assert main(["check", str(cfg), "-q"]) == 2
        assert "takes input of shape ('batch', 3, 512, 384), the reference's model input is (N, 3, 224, 224)" in \
            capsys.readouterr().err
        cfg.write_text(cfg.read_text().replace("model = dict(", "model = dict(reference_model=False, "))


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


@pytest.mark.slow
def test_a_timm_snapshot_records_the_reference_networks_logits_for_the_model_stage(tmp_path):
    import subprocess
    import sys

    build = TIMM / "build"
    cfg = _config(tmp_path, "timm='vit_tiny_patch16_224.augreg_in21k_ft_in1k'", "vit_pipeline.py:corrected")
    cfg.write_text(cfg.read_text() + f"model = dict(onnx='{build / 'vit_tiny.onnx'}', checkpoint='{build / 'vit_tiny.pth'}', "
                   "backend='onnxruntime')\n")
    assert main(["snapshot", str(cfg), "--out", str(tmp_path / "ref"), "-q"]) == 0
    assert json.loads((tmp_path / "ref" / "manifest.json").read_text())["logits"] is True
    run = subprocess.run([sys.executable, str(ROOT / "tests" / "helpers" / "serving_env.py"), "parity", "check", str(cfg),
                          "--reference", str(tmp_path / "ref"), "-q"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "model (onnxruntime): 12 passed, 0 failed" in run.stdout and "training modules imported: none" in run.stdout


def test_a_port_at_the_checkpoints_test_size_names_use_test_size(tmp_path, capsys):
    """resnet50.tv2_in1k trains at 176 and is tested at 224 (torchvision's own preset): timm resolves the training
    size unless told otherwise, and the port of torchvision's preset is named as the test size."""
    port = "torchvision_resnet50_pipeline.py:exact"
    cfg = _config(tmp_path, "timm='resnet50.tv2_in1k'", port)
    assert main(["check", str(cfg), "-q"]) == 1
    assert ("resize: timm resnet50.tv2_in1k: the reference is its training size 176 (Resize(201), crop_pct 0.875), "
            "as timm resolves it by default; DALI resizes the short side to 232, floor(224 / 0.965): the test size"
            ) in capsys.readouterr().out
    test_size = _config(tmp_path, "timm='resnet50.tv2_in1k', use_test_size=True", port, "test_size.py")
    assert main(["check", str(test_size), "-q"]) == 0


def test_results_record_the_resolved_reference_and_the_library_versions(tmp_path, capsys):
    """JSON and JUnit say which reference judged the run: timm's resolved data config, use_test_size, versions."""
    import xml.etree.ElementTree as ET

    cfg = _config(tmp_path, "timm='resnet50.tv2_in1k', use_test_size=True", "torchvision_resnet50_pipeline.py:exact")
    assert main(["check", str(cfg), "-q", "--json", str(tmp_path / "r.json"), "--junit-xml", str(tmp_path / "r.xml")]) == 0
    identity = json.loads((tmp_path / "r.json").read_text())["reference_identity"]
    assert identity["kind"] == "timm" and identity["use_test_size"] is True
    assert identity["data_config"]["crop_pct"] == 0.965 and identity["versions"]["timm"]
    properties = {p.get("name"): p.get("value") for p in ET.parse(tmp_path / "r.xml").iter("property")}
    assert properties["reference.source"] == "timm resnet50.tv2_in1k" and properties["reference.use_test_size"] == "true"
    assert properties["version.timm"] == identity["versions"]["timm"]
