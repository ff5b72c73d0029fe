"""Config mistakes get one clear sentence naming the file, the key and what was expected."""

import pytest

from parity import ParityConfigError, load_config

from .conftest import IMAGES, SEED, write_config


def test_seed_config_loads_mean_std_and_to_rgb_from_the_mmpretrain_package_base():
    cfg = load_config(SEED / "parity_deployed.py")
    assert cfg.data_preprocessor["mean"] == [123.675, 116.28, 103.53]
    assert cfg.data_preprocessor["std"] == [58.395, 57.12, 57.375]
    assert cfg.data_preprocessor["to_rgb"] is True
    assert [s["type"] for s in cfg.test_pipeline][:2] == ["LoadImageFromFile", "Resize"]
    assert len(cfg.images) == 8 and cfg.dali["device"] == "auto" and cfg.dali["output_layout"] == "CHW"


def test_a_shipped_config_can_be_named_by_package_path(tmp_path):
    path = write_config(tmp_path, pipeline="p.py:f",
                        reference=dict(config="mmpretrain::resnet/resnet50_8xb32_in1k.py"))
    cfg = load_config(path)
    assert [s["type"] for s in cfg.test_pipeline] == ["LoadImageFromFile", "ResizeEdge", "CenterCrop", "PackInputs"]
    assert cfg.data_preprocessor["to_rgb"] is True


def test_model_input_tolerance_is_derived_from_the_smallest_std(tmp_path):
    cfg = load_config(write_config(tmp_path, pipeline="p.py:f", extra="tolerances = dict(resize=dict(atol=5))\n"))
    assert cfg.tolerance_for("resize").atol == 5
    assert cfg.tolerance_for("crop").atol == 5
    tol = cfg.tolerance_for("model_input", normalized_by=57.12)
    assert tol.atol == pytest.approx(5 / 57.12) and tol.unit == "normalized units"


@pytest.mark.parametrize("extra, dali, expected", [
    ("colour = 1\n", {}, "unknown key 'colour'"),
    ("", {"input_format": "YUV"}, "dali.input_format='YUV': expected one of ['BGR', 'RGB', 'encoded']"),
    ("", {"batch_size": 0}, "dali.batch_size=0: expected a positive integer"),
    ("", {"serialized": "model.dali"}, "give exactly one of pipeline="),
    ("tolerances = dict(crop=dict(atol=-1))\n", {}, "tolerances.crop.atol=-1: expected a non-negative number"),
    ("tolerances = dict(crop=dict(tol=1))\n", {}, "unknown key tolerances.crop.'tol'"),
])
def test_invalid_keys_and_values_are_named(tmp_path, extra, dali, expected):
    path = write_config(tmp_path, pipeline="p.py:f", extra=extra, **dali)
    with pytest.raises(ParityConfigError, match="parity_cfg.py") as excinfo:
        load_config(path)
    assert expected in str(excinfo.value)


def test_missing_files_are_reported_with_their_path(tmp_path):
    with pytest.raises(ParityConfigError, match="parity config not found: .*nope.py"):
        load_config(tmp_path / "nope.py")
    with pytest.raises(ParityConfigError, match=r"reference.config='missing.py': file not found"):
        load_config(write_config(tmp_path, pipeline="p.py:f", reference=dict(config="missing.py")))
    with pytest.raises(ParityConfigError, match=r"images: '\*.jpg' matches no image file"):
        load_config(write_config(tmp_path, pipeline="p.py:f", images=["*.jpg"]))
    (tmp_path / "parity_cfg.py").write_text("dali = dict(pipeline='p.py:f')\nimages = []\n")
    with pytest.raises(ParityConfigError, match="missing key 'reference'"):
        load_config(tmp_path / "parity_cfg.py")


def test_a_config_with_a_syntax_error_says_so(tmp_path):
    (tmp_path / "parity_cfg.py").write_text("reference = dict(\n")
    with pytest.raises(ParityConfigError, match="cannot be read as a parity config: SyntaxError"):
        load_config(tmp_path / "parity_cfg.py")


def test_images_accept_files_folders_and_globs(tmp_path):
    path = write_config(tmp_path, pipeline="p.py:f",
                        images=[str(IMAGES / "astronaut.png"), str(IMAGES), str(IMAGES / "c*.png")])
    names = [p.name for p in load_config(path).images]
    assert names[0] == "astronaut.png" and len(names) == 8  # duplicates collapse, order is stable
