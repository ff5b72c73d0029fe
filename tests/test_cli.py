"""`parity check cfg.py` as a CI gate: exit codes, a summary table and JUnit XML."""

import xml.etree.ElementTree as ET

import pytest

from parity.cli import main

from .conftest import SEED


@pytest.mark.slow
def test_gate_passes_the_corrected_pipeline_and_writes_junit(tmp_path, capsys):
    junit = tmp_path / "parity.xml"
    assert main(["check", str(SEED / "parity_corrected.py"), "--junit-xml", str(junit), "-q"]) == 0
    out = capsys.readouterr().out
    assert "40 stage checks passed. 0 stage checks failed." in out and "8 of 8 images match" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    # 8 images x 5 stages, 8 model comparisons; gpu_risk, gpu_vs_cpu (skipped), determinism, degenerate output
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("52", "0", "1")


@pytest.mark.slow
def test_gate_fails_the_deployed_pipeline_with_the_cause(tmp_path, capsys):
    junit = tmp_path / "parity.xml"
    assert main(["check", str(SEED / "parity_deployed.py"), "--junit-xml", str(junit)]) == 1
    out = capsys.readouterr().out
    assert "FAILED | astronaut | first divergence at model_input (missing_normalization, channel_order, layout)" in out
    assert "model_input       0       8        0" in out and "missing_normalization (8)" in out
    failures = ET.parse(junit).getroot().findall("testsuite/testcase/failure")
    assert len(failures) == 8 + 8 + 1 and "un-normalized" in failures[0].text
    assert "probabilities saturated: p >= 0.999 for 100% of images" in out


def test_gate_usage_errors_exit_2_with_one_line(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing.py")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("parity: error: parity config not found:") and err.count("\n") == 1


def test_a_nan_tolerance_flag_is_refused_rather_than_passing_the_failing_pipeline(capsys):
    assert main(["check", str(SEED / "parity_deployed.py"), "--atol", "nan", "-q"]) == 2
    err = capsys.readouterr().err
    assert err == "parity: error: --atol 'nan': expected a non-negative number (inf: no limit)\n"


@pytest.mark.slow
def test_an_image_whose_stages_match_but_whose_model_fails_is_not_called_passed(tmp_path, capsys):
    import onnx
    from onnx import numpy_helper

    build = SEED.parent / "model" / "build"
    model = onnx.load(str(build / "known_answer.onnx"))
    for init in model.graph.initializer:
        if tuple(init.dims) == (1000, 512):  # the classifier head, 5% off: a conversion error
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.05, init.name))
    onnx.save(model, str(tmp_path / "drifted.onnx"))
    config = tmp_path / "parity_cfg.py"
    config.write_text(
        f"reference = dict(config={str(SEED / 'hrnet_w30_512x384.py')!r})\n"
        f"dali = dict(pipeline={str(SEED / 'corrected_pipeline.py')!r} + ':hrnet_w30_cls_preprocess_pipeline', "
        "input_name='INPUT_PREPROCESS')\n"
        f"images = [{str(SEED.parent / 'images' / 'astronaut.png')!r}]\n"
        f"model = dict(config='mmpretrain::resnet/resnet18_8xb32_in1k.py', "
        f"checkpoint={str(build / 'known_answer.pth')!r}, onnx={str(tmp_path / 'drifted.onnx')!r})\n")
    assert main(["check", str(config)]) == 1
    out = capsys.readouterr().out
    assert "FAILED | astronaut | stages match; model: Conversion error" in out
    assert "PASSED | astronaut" not in out and "0 of 1 images match" in out


@pytest.mark.slow
def test_a_run_ended_from_outside_leaves_result_files_that_do_not_pass(tmp_path):
    """A pipeline module that calls os._exit(0) ends the process with exit 0 and no traceback: the result
    files, written first as an unfinished run's, still tell CI the run did not pass."""
    import json
    import subprocess
    import sys

    from .conftest import IMAGES

    (tmp_path / "pipeline.py").write_text("import os\nos._exit(0)\n")
    cfg = tmp_path / "parity_cfg.py"
    cfg.write_text(f"reference = dict(config='{SEED / 'hrnet_w30_512x384.py'}')\nimages = ['{IMAGES / 'flat.png'}']\n"
                   "dali = dict(pipeline='pipeline.py:preprocess')\n")
    import os

    (tmp_path / "tmp").mkdir()  # nothing runs after os._exit: the records' spool folder stays, here
    done = subprocess.run([sys.executable, "-m", "parity.cli", "check", str(cfg), "--json", "r.json", "--junit-xml",
                           "r.xml", "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TMPDIR": str(tmp_path / "tmp")})
    assert done.returncode == 0  # what the pipeline module did, not parity's verdict
    result = json.loads((tmp_path / "r.json").read_text())
    assert (result["verdict"], result["exit_code"]) == ("error", 3)
    assert result["error"].startswith("parity: the run did not finish")
    [error] = ET.parse(tmp_path / "r.xml").getroot().findall("testsuite/testcase/error")
    assert error.get("message").startswith("parity: the run did not finish")


def test_the_json_result_is_strict_json_where_a_number_is_infinite(tmp_path, capsys):
    """atol=inf (no limit) is a valid tolerance; the result file still parses as strict JSON, and parity reads
    the number back."""
    import json

    from parity.results.records import read_json

    from .conftest import IMAGES

    cfg = tmp_path / "parity_cfg.py"
    cfg.write_text(f"reference = dict(config='{SEED / 'hrnet_w30_512x384.py'}')\nimages = ['{IMAGES / 'flat.png'}']\n"
                   f"dali = dict(pipeline='{SEED / 'corrected_pipeline.py'}:hrnet_w30_cls_preprocess_pipeline', "
                   "input_name='INPUT_PREPROCESS')\ntolerances = dict(resize=dict(atol=float('inf')))\n")
    assert main(["check", str(cfg), "--json", str(tmp_path / "r.json"), "-q"]) == 0

    def refuse(token):
        raise AssertionError(f"bare {token} in the result file: not JSON")

    strict = json.loads((tmp_path / "r.json").read_text(), parse_constant=refuse)
    [resize] = [s for s in strict["images"][0]["stages"] if s["stage"] == "resize"]
    assert resize["tolerance"]["atol"] == "Infinity"
    [read] = [s for s in read_json(tmp_path / "r.json")["images"][0]["stages"] if s["stage"] == "resize"]
    assert read["tolerance"]["atol"] == float("inf")


@pytest.mark.slow
def test_odd_file_names_neither_forge_lines_nor_break_junit_nor_share_a_report_section(tmp_path, capsys):
    import os
    import shutil

    from .conftest import IMAGES

    folder = tmp_path / "images"
    folder.mkdir()
    names = ["a+b.png", "a_b.png", "x\nPASSED | forged | all checks match.png", "bell\x07.png",
             os.fsdecode(b"caf\xe9.png")]  # a Latin-1 name: not UTF-8
    for name in names:
        shutil.copy(IMAGES / "flat.png", folder / name)
    cfg = tmp_path / "parity_cfg.py"
    cfg.write_text(f"reference = dict(config='{SEED / 'hrnet_w30_512x384.py'}')\nimages = ['{folder}']\n"
                   f"dali = dict(pipeline='{SEED / 'deployed_pipeline.py'}:hrnet_w30_cls_preprocess_pipeline', "
                   "input_name='INPUT_PREPROCESS')\n")
    assert main(["check", str(cfg), "--junit-xml", str(tmp_path / "r.xml"), "--report", str(tmp_path / "report"),
                 "--json", str(tmp_path / "r.json")]) == 1
    out = capsys.readouterr().out
    assert not any(line.startswith("PASSED | forged") for line in out.splitlines())
    assert "FAILED | x\\nPASSED | forged | all checks match |" in out  # the newline spelled, on the image's line
    cases = {case.get("classname") for case in ET.parse(tmp_path / "r.xml").iter("testcase")}  # well-formed XML
    assert {"parity_cfg.bell\\x07", "parity_cfg.a+b", "parity_cfg.a_b"} <= cases
    sections = sorted(p.name for p in (tmp_path / "report" / "sections").glob("*.html"))
    assert len(sections) == 5 and "f-a-2b-b.html" in sections and "f-a_b.html" in sections
    assert "caf\\xe9" in (tmp_path / "report" / "index.html").read_text()  # the byte spelled


@pytest.mark.slow
def test_a_report_folder_that_is_a_mount_point_is_written_and_rewritten(tmp_path, capsys):
    """CI volumes are mount points, which cannot be renamed (EBUSY): the report is written into it."""
    import subprocess

    from .conftest import IMAGES

    volume = tmp_path / "volume"
    volume.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "none", str(volume)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root (as CI and the dev machines have)")
    try:
        cfg = tmp_path / "parity_cfg.py"
        cfg.write_text(f"reference = dict(config='{SEED / 'hrnet_w30_512x384.py'}')\nimages = ['{IMAGES / 'flat.png'}']\n"
                       f"dali = dict(pipeline='{SEED / 'corrected_pipeline.py'}:hrnet_w30_cls_preprocess_pipeline', "
                       "input_name='INPUT_PREPROCESS')\n")
        for _ in range(2):  # the second run replaces the first one's report
            assert main(["check", str(cfg), "--report", str(volume), "-q"]) == 0
            assert f"HTML report: {volume / 'index.html'}" in capsys.readouterr().out
        assert (volume / "index.html").is_file() and not list(tmp_path.glob(".volume*"))
    finally:
        subprocess.run(["umount", str(volume)], check=True)


@pytest.mark.slow
def test_a_full_disk_is_one_sentence_and_leaves_no_file_that_reads_as_a_pass(tmp_path, capsys):
    import json
    import subprocess

    volume = tmp_path / "full"
    volume.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "none", str(volume)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root (as CI and the dev machines have)")
    try:
        code = main(["check", str(SEED / "parity_corrected.py"), "-q", "--json", str(volume / "r.json"),
                     "--junit-xml", str(volume / "r.xml")])
        err = capsys.readouterr().err
        assert code == 2 and "cannot be written (No space left on device)" in err and "Traceback" not in err
        assert json.loads((volume / "r.json").read_text())["exit_code"] == 3  # the unfinished run's, never a pass
    finally:
        subprocess.run(["umount", str(volume)], check=True)


@pytest.mark.slow
def test_differences_no_cause_explains_are_never_called_the_same_diagnosis(tmp_path, capsys):
    """A gamma curve parity has no model for: each image's difference is its own, so none is "the same
    diagnosis as" another; the summary counts them."""
    from .conftest import IMAGES

    (tmp_path / "pipe.py").write_text(
        "from nvidia.dali import fn, math, pipeline_def, types\n\n"
        "@pipeline_def(batch_size=2, num_threads=1, device_id=0)\ndef f():\n"
        "    x = fn.external_source(name='INPUT_PREPROCESS', layout='HWC')\n"
        "    x = fn.resize(x, size=(512, 384), mode='not_larger')\n"
        "    x = fn.crop(x, crop=(512, 384), out_of_bounds_policy='pad')\n"
        "    x = fn.cast(math.sqrt(fn.cast(x, dtype=types.FLOAT)) * 15.9, dtype=types.UINT8)\n"
        "    x = fn.color_space_conversion(x, image_type=types.BGR, output_type=types.RGB)\n"
        "    return fn.crop_mirror_normalize(x, dtype=types.FLOAT, output_layout='CHW', "
        "mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])\n")
    cfg = tmp_path / "parity_cfg.py"
    images = [str(IMAGES / f"{name}.png") for name in ("astronaut", "coffee", "rocket")]
    cfg.write_text(f"reference = dict(config='{SEED / 'hrnet_w30_512x384.py'}')\nimages = {images!r}\n"
                   "dali = dict(pipeline='pipe.py:f', input_name='INPUT_PREPROCESS')\n")
    assert main(["check", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert "same diagnosis" not in out
    assert "coffee: model_input: not explained by a known cause" in out and "(not explained either;" in out
    assert "(2 more images at model_input not explained either)" in out
