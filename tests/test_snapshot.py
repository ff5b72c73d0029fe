"""Two environments, one verdict: the training job records the reference with `parity snapshot`, and the
serving/CI job, which has DALI, ONNX Runtime and Triton but no torch or MMPretrain, checks against it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from parity import check_preprocessing_parity
from parity.cli import main

from .conftest import IMAGES, ROOT, SEED

SERVING_ENV = Path(__file__).parent / "helpers" / "serving_env.py"
MODEL = ROOT / "fixtures" / "model" / "build"


def _write_config(folder: Path, *, reference: dict | None = None, images=("*.png",), model: bool = True) -> Path:
    """The seed's deployed pipeline, its HRNet reference and the known-answer model, over images in ``folder``."""
    reference = reference or {"config": str(SEED / "hrnet_w30_512x384.py")}
    text = (f"reference = {reference!r}\n"
            f"dali = dict(pipeline={str(SEED / 'deployed_pipeline.py')!r} + ':hrnet_w30_cls_preprocess_pipeline', "
            "input_name='INPUT_PREPROCESS')\n"
            f"images = {list(images)!r}\n")
    if model:
        text += (f"model = dict(config='mmpretrain::resnet/resnet18_8xb32_in1k.py', "
                 f"checkpoint={str(MODEL / 'known_answer.pth')!r}, onnx={str(MODEL / 'known_answer.onnx')!r})\n")
    path = folder / "parity_cfg.py"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A training job's output: three images (a landscape photo among them) and their snapshot."""
    folder = tmp_path_factory.mktemp("training")
    for name in ("astronaut", "coffee", "checker"):
        shutil.copy(IMAGES / f"{name}.png", folder)
    config = _write_config(folder)
    assert main(["snapshot", str(config), "--out", str(folder / "ref"), "-q"]) == 0
    return config, folder / "ref"


def _results_json(path: Path) -> dict:
    document = json.loads(path.read_text())
    for key in ("seconds", "reference"):
        document.pop(key)
    document["reference_identity"].pop("source")  # "snapshot DIR of CONFIG" against the config's own
    for image in document["images"]:
        image.pop("seconds")  # the time each image took
    return document


def test_snapshot_is_a_self_describing_folder(recorded):
    config, ref = recorded
    manifest = json.loads((ref / "manifest.json").read_text())
    assert (manifest["format"], manifest["schema"]) == ("parity-snapshot", 2)
    assert manifest["decoder"]["name"] == "Pillow" and manifest["shard"] is None
    assert [e["id"] for e in manifest["images"]] == ["astronaut", "checker", "coffee"]
    coffee = manifest["images"][2]
    assert (coffee["width"], coffee["height"]) == (360, 480) and len(coffee["sha256"]) == 64
    # what the diagnosis needs without MMPretrain: each transform's arguments, the normalization
    resize = manifest["test_pipeline"][1]
    assert (resize["type"], resize["backend"], resize["interpolation"]) == ("Resize", "pillow", "bilinear")
    assert manifest["preprocessor"]["to_rgb"] is True
    assert [round(m, 3) for m in manifest["preprocessor"]["mean"]] == [123.675, 116.28, 103.53]
    assert [s["name"] for s in manifest["stages"]][-2:] == ["to_rgb", "model_input"]
    assert manifest["logits"] is True and {"mmpretrain", "torch", "numpy"} <= set(manifest["versions"])
    assert not [p for p in ref.parent.iterdir() if p.name.startswith(".ref")]  # no work folder left behind


def test_stages_are_stored_exactly(recorded):
    """Bit for bit and dtype for dtype what MMPretrain computes, though only what the serving side cannot
    recompute is stored: the PNG decodes identically with Pillow, the resize is Pillow's bilinear resize of it
    (MMCV's pillow backend), the crop, PackInputs, to_rgb and the model input follow from the resize by numpy
    steps, which leaves the logits."""
    import numpy as np

    from parity.config.load import load_config
    from parity.reference.mmpretrain import ReferencePipeline
    from parity.reference.snapshot import Snapshot

    config, ref = recorded
    cfg = load_config(config)
    live = ReferencePipeline(cfg.test_pipeline, cfg.data_preprocessor)
    snapshot = Snapshot(ref, cfg.images, cfg.base_dir)
    for path in cfg.images:
        for a, b in zip(live.run(path), snapshot.run(path), strict=True):
            assert (a.name, a.layout, a.channels, a.pixels) == (b.name, b.layout, b.channels, b.pixels)
            assert a.array.dtype == b.array.dtype and np.array_equal(a.array, b.array)
    stages = [s["name"] for s in snapshot.stages]
    assert [str(a.array.dtype) for a in live.run(cfg.images[0])] == ["uint8"] * 6 + ["float32"] * 2, stages
    manifest = json.loads((ref / "manifest.json").read_text())
    with np.load(ref / manifest["images"][0]["file"]) as data:
        assert sorted(data.files) == ["_encoding", "logits"] and data["logits"].shape == (1000,)
        assert data["_encoding"][0].startswith("stage0:decoded:")
        assert data["_encoding"][1].startswith("stage1:from:stage0:resize:")  # Pillow's BILINEAR is 2
    assert sum(f.stat().st_size for f in (ref / "images").iterdir()) < 3 * 8 * 1024


def test_what_nothing_recomputes_is_stored_and_reads_back_exactly(tmp_path):
    """A stage no Pillow or numpy step gives (an OpenCV resize, here noise) is stored: an 8-bit image as deflated
    row differences, a float image of few values as a palette; both read back bit for bit."""
    import numpy as np
    from PIL import Image

    from parity.reference.snapshot_file import load_arrays, save_arrays

    rng = np.random.default_rng(0)
    image = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(image)
    arrays = {"stage0": np.asarray(Image.open(image))[..., ::-1].copy(),
              "stage1": rng.integers(0, 256, (24, 20, 3), dtype=np.uint8),
              "stage2": rng.choice(np.float32([-1.5, 0.25, 2.0]), (3, 24, 20))}
    save_arrays(tmp_path / "x.npz", arrays, image=image, channels="BGR", mean=None, std=None)
    with np.load(tmp_path / "x.npz") as data:
        assert data["_encoding"].tolist()[1:] == ["stage1:zlib:24,20,3", "stage2:palette:"]
    back = load_arrays(tmp_path / "x.npz", image=image, channels="BGR")
    assert all(back[k].dtype == a.dtype and np.array_equal(back[k], a) for k, a in arrays.items())


@pytest.mark.parametrize("stage, what", [(0, "decodes it"), (1, "resizes an image to 384x384")])
def test_a_pillow_that_decodes_otherwise_is_refused(recorded, tmp_path, capsys, stage, what):
    """The decoded and resized images are not stored when Pillow gives the reference's pixels; where the snapshot
    is read, a decode or resize with other pixels (another libjpeg or Pillow, here a recorded checksum that
    differs) is exit 2, never compared."""
    import numpy as np

    config, ref = recorded
    copy = shutil.copytree(ref, tmp_path / "ref")
    target = copy / json.loads((copy / "manifest.json").read_text())["images"][0]["file"]
    with np.load(target) as data:
        members = {name: data[name] for name in data.files}
    encoding = members["_encoding"].tolist()
    encoding[stage] = encoding[stage][:-8] + "00000000"  # the recorded CRC32 ends each of these entries
    members["_encoding"] = np.array(encoding)
    np.savez(target.with_suffix(""), **members)  # np.savez adds the .npz suffix back
    err = _refused(capsys, str(config), "--reference", str(copy))
    assert f"astronaut.png: Pillow here {what} otherwise than Pillow did where the snapshot was written" in err


def test_a_schema_1_snapshot_still_reads(recorded, tmp_path):
    """Snapshots written before schema 2 stored every stage; they read as they did."""
    import numpy as np

    from parity.config.load import load_config
    from parity.reference.snapshot import Snapshot

    config, ref = recorded
    cfg = load_config(config)
    old = shutil.copytree(ref, tmp_path / "ref")
    manifest = json.loads((old / "manifest.json").read_text())
    current = Snapshot(ref, cfg.images, cfg.base_dir)
    for path in cfg.images:  # every stage stored but one, which names its equal
        stages = {f"stage{i}": s.array for i, s in enumerate(current.run(path)) if i != 2}
        np.savez(old / "images" / current._files[path].stem, **stages, logits=current.run(path)[-1].logits,
                 _encoding=np.array(["stage2:same:stage1"]))  # NumpyToPIL
    for key in ("decoder", "shard"):
        manifest.pop(key)
    (old / "manifest.json").write_text(json.dumps({**manifest, "schema": 1}))
    recorded_old = Snapshot(old, cfg.images, cfg.base_dir)
    for path in cfg.images:
        for a, b in zip(current.run(path), recorded_old.run(path), strict=True):
            assert a.array.dtype == b.array.dtype and np.array_equal(a.array, b.array)


def test_a_newer_schema_is_refused_naming_it(recorded, tmp_path, capsys):
    config, ref = recorded
    copy = shutil.copytree(ref, tmp_path / "ref")
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "schema": 3}))
    assert "snapshot schema 3, this parity reads schemas 1, 2" in _refused(capsys, str(config), "--reference", str(copy))


@pytest.mark.slow
def test_check_against_the_snapshot_gives_the_live_verdicts_causes_and_answers(recorded, tmp_path, capsys):
    config, ref = recorded
    assert main(["check", str(config), "--json", str(tmp_path / "live.json"), "-q"]) == 1
    assert main(["check", str(config), "--reference", str(ref), "--json", str(tmp_path / "snap.json"), "-q"]) == 1
    assert f"reference: snapshot {ref}" in capsys.readouterr().out
    live, snap = _results_json(tmp_path / "live.json"), _results_json(tmp_path / "snap.json")
    assert snap == live
    final = live["images"][0]["stages"][-1]
    assert final["stage"] == "model_input" and final["causes"][0]["kind"] == "missing_normalization"
    assert live["images"][0]["model"]["reference_top1"] >= 0 and live["degenerate"]["status"] == "failed"


@pytest.mark.slow
def test_serving_environment_without_torch_or_mmpretrain(recorded, tmp_path):
    """The check runs where importing any training package raises, through the CLI and through pytest."""
    config, ref = recorded
    cli = subprocess.run([sys.executable, str(SERVING_ENV), "parity", "check", str(config), "--reference", str(ref),
                          "--json", str(tmp_path / "serving.json"), "-q"], capture_output=True, text=True, timeout=300)
    assert cli.returncode == 1, cli.stderr
    assert "training modules imported: none" in cli.stdout
    assert main(["check", str(config), "--reference", str(ref), "--json", str(tmp_path / "here.json"), "-q"]) == 1
    assert _results_json(tmp_path / "serving.json") == _results_json(tmp_path / "here.json")

    plugin = subprocess.run([sys.executable, str(SERVING_ENV), "pytest", "--parity-config", str(config),
                             "--parity-reference", str(ref), "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert plugin.returncode == 1, plugin.stdout[-2000:]
    assert "training modules imported: none" in plugin.stdout
    assert "7 failed, 11 passed, 1 skipped" in plugin.stdout  # 3 images x (4 stages + model), the degenerate check


def test_live_reference_without_the_training_stack_names_the_extra(recorded):
    config, _ = recorded
    run = subprocess.run([sys.executable, str(SERVING_ENV), "parity", "check", str(config)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert "pip install 'parity[reference]'" in run.stderr and "--reference SNAPSHOT_DIR" in run.stderr
    assert "Traceback" not in run.stderr


def test_snapshot_named_in_the_config(recorded, tmp_path):
    config, ref = recorded
    images = [str(p) for p in sorted(config.parent.glob("*.png"))]
    own = _write_config(tmp_path, reference={"snapshot": str(ref)}, images=images)
    results = check_preprocessing_parity(own)
    assert [r.image for r in results] == ["astronaut", "checker", "coffee"]
    assert all(r.first_failure.stage == "model_input" for r in results)


# ---- stale or wrong snapshots are refused: exit 2, one sentence naming the culprit --------------------------

def _refused(capsys, *argv) -> str:
    assert main(["check", *argv, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("parity: error: ") and err.count("\n") == 1
    return err


def test_image_missing_from_the_snapshot_is_refused(recorded, tmp_path, capsys):
    config, ref = recorded
    shutil.copy(IMAGES / "rocket.png", tmp_path)
    other = _write_config(tmp_path, images=[str(p) for p in sorted(config.parent.glob("*.png"))] + ["rocket.png"])
    err = _refused(capsys, str(other), "--reference", str(ref))
    assert f"{tmp_path / 'rocket.png'}: not in the snapshot {ref}" in err


def test_image_whose_bytes_changed_is_refused(tmp_path, capsys):
    from PIL import Image

    shutil.copy(IMAGES / "checker.png", tmp_path)
    config = _write_config(tmp_path, model=False)
    assert main(["snapshot", str(config), "--out", str(tmp_path / "ref"), "-q"]) == 0
    Image.open(tmp_path / "checker.png").rotate(90).save(tmp_path / "checker.png")
    err = _refused(capsys, str(config), "--reference", str(tmp_path / "ref"))
    assert f"{tmp_path / 'checker.png'}: changed since the snapshot was written" in err


def test_snapshot_of_another_reference_is_refused(recorded, tmp_path, capsys):
    config, ref = recorded
    edited = tmp_path / "hrnet.py"
    edited.write_text((SEED / "hrnet_w30_512x384.py").read_text().replace("512", "480"))
    images = [str(p) for p in sorted(config.parent.glob("*.png"))]
    err = _refused(capsys, str(_write_config(tmp_path, reference={"config": str(edited)}, images=images)),
                   "--reference", str(ref))
    assert f"{ref}: recorded from another reference than parity_cfg.py names" in err
    assert "reference.config: " in err and "parity snapshot parity_cfg.py" in err


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_snapshot_file_is_named(recorded, tmp_path, capsys, damage):
    config, ref = recorded
    copy = shutil.copytree(ref, tmp_path / "ref")
    target = sorted((copy / "images").iterdir())[0]
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a zip" + data[9:])
    err = _refused(capsys, str(config), "--reference", str(copy))
    assert f"{target}: truncated or corrupt snapshot file" in err


def test_corrupt_or_foreign_manifest_is_named(recorded, tmp_path, capsys):
    config, ref = recorded
    copy = shutil.copytree(ref, tmp_path / "ref")
    (copy / "manifest.json").write_text('{"format": "parity-snapshot", "sche')
    assert f"{copy / 'manifest.json'}: truncated or corrupt snapshot manifest" in _refused(
        capsys, str(config), "--reference", str(copy))
    assert f"{tmp_path}: not a parity snapshot (no manifest.json)" in _refused(
        capsys, str(config), "--reference", str(tmp_path))


def test_snapshot_refuses_to_overwrite_a_folder_that_is_not_a_snapshot(recorded, tmp_path, capsys):
    config, _ = recorded
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["snapshot", str(config), "--out", str(tmp_path)]) == 2
    assert "exists and is not a parity output folder (no manifest.json)" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_result_files_are_written_on_a_usage_error(tmp_path, capsys):
    junit, result = tmp_path / "parity.xml", tmp_path / "parity.json"
    assert main(["check", str(tmp_path / "missing.py"), "--junit-xml", str(junit), "--json", str(result)]) == 2
    error = ET.parse(junit).getroot().find("testsuite/testcase/error")
    assert "parity config not found" in error.get("message")
    document = json.loads(result.read_text())
    assert (document["verdict"], document["exit_code"], document["images"]) == ("error", 2, [])
    assert "parity config not found" in document["error"]
