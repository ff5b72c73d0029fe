"""`pytest --parity-config cfg.py`: one item per image and stage, failures that explain themselves."""

import re

import pytest

from .conftest import IMAGES, SEED, seed_config_text


def _failures(output: str) -> dict[str, list[str]]:
    """Each failure's lines under its '___ name ___' header, up to the summary."""
    blocks: dict[str, list[str]] = {}
    body = output.split("= FAILURES =", 1)[1].split("parity report summary", 1)[0]
    for line in body.splitlines()[1:]:
        header = re.fullmatch(r"_+ (\S+) _+", line)
        if header:
            blocks[header.group(1)] = []
        elif blocks and not line.startswith("---"):
            blocks[list(blocks)[-1]].append(line)
    return blocks


@pytest.mark.slow
def test_seed_deployment_fails_loudly_with_one_item_per_image_and_stage(pytester):
    result = pytester.runpytest_subprocess("--parity-config", str(SEED / "parity_deployed.py"), "-rf",
                                           "--parity-report", "report")
    # 8 images x (input, resize, crop) pass; model_input and the model stage fail; and the outputs collapse
    result.assert_outcomes(passed=26, failed=17, skipped=1)  # gpu_vs_cpu: no GPU here
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "*collected 44 items*",
        "*DALI output is the un-normalized image (values 0..255)*",
        "*parity report summary*",
        "model_input*0*8*0*missing_normalization (8), channel_order (8), layout (8)",
        "24 stage checks passed. 8 stage checks failed. 0 stage checks skipped.",
        "FAILED *fixtures/seed/parity_deployed.py::astronaut::model_input*",
    ])
    # each failure in three lines: the stage and likely cause, the fix, the numbers and where the pictures are
    failures = _failures(result.stdout.str())
    assert len(failures) == 17 and all(len(lines) == 3 for lines in failures.values())
    headline, fix, numbers = failures["astronaut::model_input"]
    assert headline.startswith("astronaut: model_input: DALI output is the un-normalized image (values 0..255)")
    assert fix.startswith("Fix: No DALI operator on the path to the output normalizes: add fn.crop_mirror_normalize(")
    assert numbers == ("100.0% of 589824 values over tolerance, max abs 252.8, mean abs 86.44 normalized units; also "
                       "channel_order, layout; the full message with -v; pictures: report/sections/f-astronaut.html")
    assert failures["astronaut::model"][1].startswith("top-1: deployed 507 (p=1.000), reference 7 (p=0.957)")
    assert (pytester.path / "report" / "sections" / "f-astronaut.html").is_file()
    # --tb=long, like -v, gives the whole message
    result = pytester.runpytest_subprocess("--parity-config", str(SEED / "parity_deployed.py"), "--tb=long",
                                           "-k", "astronaut and model_input")
    result.stdout.fnmatch_lines(["Mismatched elements: 589824 / 589824 (100.0%)*", "Likely causes:",
                                 "  1. DALI output is the un-normalized image*"])


@pytest.mark.slow
def test_corrected_pipeline_passes_and_items_can_be_selected(pytester):
    result = pytester.runpytest_subprocess("--parity-config", str(SEED / "parity_corrected.py"),
                                           "-k", "astronaut", "-v")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*astronaut::color_space_conversion PASSED*", "*astronaut::model_input PASSED*",
                                 "*astronaut::model PASSED*"])


def test_without_parity_config_the_plugin_stays_out_of_the_way(pytester):
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*collected 1 item*"])
    assert "parity report summary" not in result.stdout.str()


@pytest.mark.slow
def test_an_ini_parity_config_does_not_take_over_an_explicit_test_file(pytester):
    pytester.makeini(f"[pytest]\nparity_config = {SEED / 'parity_deployed.py'}\n")
    plain = pytester.makepyfile(test_unit="def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess(str(plain))
    result.assert_outcomes(passed=1)
    assert "parity report summary" not in result.stdout.str()
    result = pytester.runpytest_subprocess("-k", "astronaut and model_input")  # a bare run: the ini's config
    result.assert_outcomes(failed=1)


@pytest.mark.slow
def test_a_bad_config_is_a_usage_error_not_a_traceback(pytester):
    cfg = pytester.makepyfile(parity_bad="reference = dict(config='x.py')\ndali = dict(pipline='p.py:f')\n"
                                         "images = ['*.png']\n")
    result = pytester.runpytest_subprocess("--parity-config", str(cfg))
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: parity: *parity_bad.py: unknown key dali.'pipline' (did you mean 'pipeline'?)*"])
    assert "Traceback" not in result.stderr.str()


@pytest.mark.slow
def test_a_pipeline_that_cannot_be_loaded_is_a_collection_error_in_one_sentence(pytester):
    cfg = pytester.makepyfile(parity_cfg=f"reference = dict(config='{SEED / 'hrnet_w30_512x384.py'}')\n"
                                         f"dali = dict(pipeline='{SEED / 'deployed_pipeline.py'}:nope')\n"
                                         f"images = ['{IMAGES / 'astronaut.png'}']\n")
    result = pytester.runpytest_subprocess("--parity-config", str(cfg))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting parity_cfg.py*", "parity: dali.pipeline=*has no function 'nope'"])
    assert "session.py" not in result.stdout.str()  # no frames of parity's own code


@pytest.mark.slow
def test_report_option_and_a_failing_run_reported_once_per_item_without_traceback(pytester, tmp_path):
    import shutil

    result = pytester.runpytest_subprocess("--parity-config", str(SEED / "parity_corrected.py"),
                                           "--parity-report", str(tmp_path / "report"), "-k", "astronaut")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines([f"HTML report: {tmp_path / 'report' / 'index.html'}"])
    assert (tmp_path / "report" / "astronaut-tensors.webp").is_file()
    assert (tmp_path / "report" / "sections" / "p-astronaut.html").is_file()
    # a Triton repository that cannot load: every item says so in one sentence, the server is tried once
    repo = tmp_path / "repo"
    shutil.copytree(SEED.parent / "triton" / "build" / "corrected_repository", repo, symlinks=True)
    (repo / "preprocess" / "1" / "model.dali").write_bytes(b"\x00garbage")
    cfg = pytester.makepyfile(parity_broken=(
        f"_base_ = ['{SEED / 'parity_corrected.py'}']\n"
        f"reference = dict(config='{SEED / 'hrnet_w30_512x384.py'}')\n"
        f"images = ['{SEED.parent / 'images' / 'flat.png'}', '{SEED.parent / 'images' / 'noise.png'}']\n"
        f"model = dict(config='mmpretrain::resnet/resnet18_8xb32_in1k.py', "
        f"checkpoint='{SEED.parent / 'model' / 'build' / 'known_answer.pth'}', "
        f"onnx='{SEED.parent / 'model' / 'build' / 'known_answer.onnx'}')\n"
        f"dali = dict(pipeline='{SEED / 'corrected_pipeline.py'}:hrnet_w30_cls_preprocess_pipeline', "
        "input_name='INPUT_PREPROCESS')\n"
        f"triton = dict(repository='{repo}')\n"))
    result = pytester.runpytest_subprocess("--parity-config", str(cfg))
    # 2 images x (5 stages, model, triton) + degenerate: errors, not mismatches; the repository check names the
    # file; the pipeline's own checks (gpu_risk, determinism) pass
    result.assert_outcomes(errors=15, failed=1, passed=2, skipped=1)
    assert "preprocess/1/model.dali: not a serialized DALI pipeline" in result.stdout.str()
    assert result.stdout.str().count("tritonserver exited with code 1 while loading the repository") >= 15
    assert "not a serialized DALI pipeline" in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


@pytest.mark.slow
def test_one_image_with_a_model_passes_and_the_degenerate_check_says_why_it_skipped(pytester):
    """A shard or a selection of one image: there is nothing to compare across images, and that is not a failure."""
    cfg = pytester.makepyfile(parity_one=seed_config_text(IMAGES / "astronaut.png", "corrected"))
    result = pytester.runpytest_subprocess("--parity-config", str(cfg), "-rs")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*degenerate: fewer than 2 images reached the model*"])


@pytest.mark.slow
def test_a_snapshot_outside_the_project_keeps_the_projects_ini(pytester, tmp_path_factory):
    """`pytest --parity-reference /ci/ref` in a project whose ini names the config: pytest looks for its ini
    from the paths on the command line before parity's options exist, and took the snapshot folder for one."""
    import shutil

    from parity.cli import main

    training = tmp_path_factory.mktemp("training")  # beside the project, not in it
    shutil.copy(IMAGES / "astronaut.png", training)
    (training / "parity_cfg.py").write_text(seed_config_text("astronaut.png"))
    assert main(["snapshot", str(training / "parity_cfg.py"), "--out", str(training / "ref"), "-q"]) == 0
    shutil.copy(IMAGES / "astronaut.png", pytester.path)
    shutil.copy(training / "parity_cfg.py", pytester.path)
    pytester.makeini("[pytest]\nparity_config = parity_cfg.py\n")
    result = pytester.runpytest_subprocess("--parity-reference", str(training / "ref"), "-k", "model_input")
    assert result.ret == 1, result.stdout.str()[-2000:]  # the deployed pipeline's bug, not exit 5 (no tests ran)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"Reference: snapshot {training / 'ref'} of *hrnet_w30_512x384.py*"])
