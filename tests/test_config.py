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
    assert len(cfg.images) == 8 and cfg.dali.device == "auto" and cfg.dali.output_layout == "CHW"


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


INLINE = dict(test_pipeline=[dict(type="LoadImageFromFile"), dict(type="PackInputs")])  # no MMPretrain config read


@pytest.mark.parametrize("extra, dali, expected", [
    # a NaN threshold passes everything (every comparison with NaN is false): refused wherever a number goes
    ("tolerances = dict(pixels=dict(atol=float('nan')))\n", {},
     "tolerances.pixels.atol=nan: expected a non-negative number (inf: no limit)"),
    ("tolerances = dict(resize=dict(rtol=float('nan')))\n", {}, "tolerances.resize.rtol=nan: expected a finite"),
    ("tolerances = dict(resize=dict(rtol=float('inf')))\n", {}, "tolerances.resize.rtol=inf: expected a finite"),
    ("tolerances = dict(pixels=dict(max_mismatch=float('nan')))\n", {},
     "tolerances.pixels.max_mismatch=nan: expected a number in [0, 1]"),
    ("tolerances = dict(pixels=dict(max_mismatch=1.5))\n", {}, "max_mismatch=1.5: expected a number in [0, 1]"),
    ("tolerances = dict(crop=dict(mean_atol=float('nan')))\n", {}, "tolerances.crop.mean_atol=nan: expected"),
    ("tolerances = dict(pixels=dict(border=float('nan')))\n", {},
     "tolerances.pixels.border=nan: expected a non-negative integer"),
    ("tolerances = dict(pixels=dict(border=float('inf')))\n", {}, "tolerances.pixels.border=inf: expected a non-neg"),
    ("tolerances = dict(pixels=dict(border=1.5))\n", {}, "tolerances.pixels.border=1.5: expected a non-negative int"),
    ("dali['batch_size'] = float('nan')\n", {}, "dali.batch_size=nan: expected a positive integer"),
    ("", {"num_threads": -2}, "dali.num_threads=-2: expected a positive integer"),
    ("model = dict(onnx='m.onnx', topk=0)\n", {}, "model.topk=0: expected a positive integer"),
    ("model = dict(onnx='m.onnx', kl=float('nan'))\n", {}, "model.kl=nan: expected a non-negative number (inf: no"),
    ("model = dict(onnx='m.onnx', kl=-0.1)\n", {}, "model.kl=-0.1: expected a non-negative number"),
    ("model = dict(onnx='m.onnx', topk_overlap=float('nan'))\n", {}, "model.topk_overlap=nan: expected a number in [0"),
    ("model = dict(onnx='m.onnx', topk_overlap=2)\n", {}, "model.topk_overlap=2: expected a number in [0, 1]"),
    ("model = dict(onnx='m.onnx', conversion_atol=float('nan'))\n", {}, "model.conversion_atol=nan: expected"),
    ("model = dict(onnx='m.onnx', degenerate_share=0)\n", {}, "model.degenerate_share=0: expected a number in (0, 1]"),
    ("model = dict(onnx='m.onnx', degenerate_share=float('nan'))\n", {}, "model.degenerate_share=nan: expected"),
    ("model = dict(onnx='m.onnx', reference_model=False)\ntriton = dict(url='h:8001', kl=float('nan'))\n", {},
     "triton.kl=nan: expected a non-negative number (inf: no limit)"),
    ("model = dict(onnx='m.onnx', reference_model=False)\ntriton = dict(url='h:8001', timeout_s=float('inf'))\n", {},
     "triton.timeout_s=inf: expected a finite positive number"),
    ("model = dict(onnx='m.onnx', reference_model=False)\ntriton = dict(url='h:8001', timeout_s=0)\n", {},
     "triton.timeout_s=0: expected a finite positive number"),
])
def test_nan_negative_and_out_of_range_numbers_are_refused_by_name(tmp_path, extra, dali, expected):
    path = write_config(tmp_path, pipeline="p.py:f", reference=INLINE, extra=extra, **dali)
    with pytest.raises(ParityConfigError, match="parity_cfg.py") as excinfo:
        load_config(path)
    assert expected in str(excinfo.value)


def test_inf_turns_a_limit_off_where_it_is_allowed(tmp_path):
    extra = ("tolerances = dict(pixels=dict(atol=float('inf'), mean_atol=float('inf')), crop=dict(border=2.0))\n"
             "model = dict(onnx='m.onnx', reference_model=False, kl=float('inf'), conversion_atol=float('inf'))\n")
    cfg = load_config(write_config(tmp_path, pipeline="p.py:f", reference=INLINE, extra=extra))
    assert cfg.tolerance_for("resize").atol == float("inf") and cfg.tolerance_for("resize").mean_atol == float("inf")
    assert cfg.tolerance_for("crop").border == 2


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
