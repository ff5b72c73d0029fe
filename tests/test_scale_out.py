"""Spreading a validation set: pytest-xdist workers, CI shards merged by `parity merge`, and one JUnit identity
for the same checks whether `parity check` or `pytest --parity-config` ran them."""

import json
import xml.etree.ElementTree as ET

import pytest

from parity.cli import main

from .conftest import IMAGES, SEED, seed_config_text

NAMES = ("astronaut", "chelsea", "flat", "noise")


@pytest.fixture
def deployed(tmp_path):
    """The seed's deployed (broken) pipeline on four images, without the model stage."""
    images = ", ".join(repr(str(IMAGES / f"{name}.png")) for name in NAMES)
    cfg = tmp_path / "parity_cfg.py"
    cfg.write_text(f"reference = dict(config='{SEED / 'hrnet_w30_512x384.py'}')\nimages = [{images}]\n"
                   f"dali = dict(pipeline='{SEED / 'deployed_pipeline.py'}:hrnet_w30_cls_preprocess_pipeline', "
                   "input_name='INPUT_PREPROCESS', batch_size=2)\n")
    return cfg


def junit_cases(path) -> set:
    outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}
    return {(case.get("classname"), case.get("name"), next((outcome[c.tag] for c in case if c.tag in outcome),
                                                           "passed"))
            for case in ET.parse(path).iter("testcase")}


@pytest.mark.slow
def test_xdist_workers_compute_each_image_once_and_the_controller_sums_up(pytester, deployed):
    result = pytester.runpytest_subprocess("--parity-config", str(deployed), "-n", "2", "-p", "no:cacheprovider",
                                           "--parity-report", "report")
    result.assert_outcomes(passed=14, failed=4, skipped=1)  # the checks: gpu_vs_cpu skips here
    result.stdout.fnmatch_lines(["*parity report summary*", "model_input*0*4*0*missing_normalization (4)*",
                                 "gpu-risk check: *", "determinism check: PASSED", "DALI ran on the CPU: *",
                                 "0 of 4 images match"])  # four images computed in all: none twice; the workers'
    # whole-run checks and GPU coverage reach the controller's summary as in a serial run
    # the workers drew their own images; the controller wrote one index over all of them
    index = (pytester.path / "report" / "index.html").read_text()
    assert all(f"id='img-{name}'" in index for name in NAMES) and "4 images, 4 failing" in index


@pytest.mark.slow
def test_under_xdist_the_degenerate_item_carries_the_controllers_verdict_and_reruns_with_lf(pytester):
    """The workers each see some images; the scheduler sends the degenerate item after every image's answer
    has reached the controller, which puts its verdict into that item's report: failed, so --lf reruns it."""
    cfg = pytester.makepyfile(parity_cfg=seed_config_text(IMAGES / "*.png", batch_size=2))
    first = pytester.runpytest_subprocess("--parity-config", str(cfg), "-n", "2", "-k", "degenerate or model_input")
    assert first.ret == pytest.ExitCode.TESTS_FAILED
    first.stdout.fnmatch_lines(["FAILED parity_cfg.py::degenerate - consequence of the model_input divergence*"])
    again = pytester.runpytest_subprocess("--parity-config", str(cfg), "-n", "2", "--lf")
    again.assert_outcomes(failed=9)  # the last failures alone (a full run has 8 images x 5 items and 4 checks)
    again.stdout.fnmatch_lines(["*FAILED parity_cfg.py::degenerate*"])


@pytest.mark.slow
def test_under_xdist_an_error_in_the_mmpretrain_config_is_a_collection_error_naming_it(pytester, deployed):
    # the controller schedules images without reading the MMPretrain config; the workers read it when collecting
    deployed.write_text(deployed.read_text().replace(str(SEED / "hrnet_w30_512x384.py"), "missing_model.py"))
    result = pytester.runpytest_subprocess("--parity-config", str(deployed), "-n", "2", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*ERROR collecting *parity_cfg.py*",
                                 "parity: *parity_cfg.py: reference.config='missing_model.py': file not found*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


@pytest.mark.slow
def test_shards_split_by_content_and_merge_into_one_verdict(tmp_path, deployed, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    codes = [main(["check", str(deployed), "--shard", f"{k}/2", "--json", f"s{k}.json", "--report", f"r{k}", "-q"])
             for k in (1, 2)]
    shards = [json.loads((tmp_path / f"s{k}.json").read_text()) for k in (1, 2)]
    ids = [{image["id"] for image in s["images"]} for s in shards]
    assert ids[0] | ids[1] == set(NAMES) and not ids[0] & ids[1]
    assert [s["shard"] for s in shards] == ["1/2", "2/2"] and set(codes) <= {0, 1}
    capsys.readouterr()
    assert main(["merge", "s1.json", "s2.json", "--json", "all.json", "--junit-xml", "all.xml", "--report", "all"]) == 1
    out = capsys.readouterr().out
    assert "0 of 4 images match (2 result files" in out and "model_input       0       4" in out
    merged = json.loads((tmp_path / "all.json").read_text())
    assert sorted(image["id"] for image in merged["images"]) == sorted(NAMES)
    assert len(junit_cases(tmp_path / "all.xml")) == 16
    index = (tmp_path / "all" / "index.html").read_text()
    assert all(f"id='img-{name}'" in index for name in NAMES) and "(2 shards)" in index
    # a shard missing, or given twice, is refused: a merge never passes on part of the set
    assert main(["merge", "s1.json"]) == 2
    assert "shard(s) [2] missing" in capsys.readouterr().err
    assert main(["merge", "s1.json", "s1.json"]) == 2


@pytest.mark.slow
def test_a_sharded_snapshot_is_recorded_and_checked_shard_by_shard(tmp_path, deployed, capsys, monkeypatch):
    """Each of N training jobs records its shard of the images; each serving job checks its shard against it;
    the merged verdict is the one an unsharded live check gives."""
    monkeypatch.chdir(tmp_path)
    for k in (1, 2):
        assert main(["snapshot", str(deployed), "--out", f"ref{k}", "--shard", f"{k}/2", "-q"]) == 0
    recorded = [json.loads((tmp_path / f"ref{k}" / "manifest.json").read_text()) for k in (1, 2)]
    ids = [{entry["id"] for entry in manifest["images"]} for manifest in recorded]
    assert ids[0] | ids[1] == set(NAMES) and not ids[0] & ids[1] and [m["shard"] for m in recorded] == ["1/2", "2/2"]
    assert [len(m["stages"]) for m in recorded] == [8, 8]  # an empty shard still says what the stages are
    codes = [main(["check", str(deployed), "--reference", f"ref{k}", "--shard", f"{k}/2", "--json", f"s{k}.json", "-q"])
             for k in (1, 2)]
    assert set(codes) <= {0, 1}  # these four images all fall in shard 2: shard 1 checks none, and passes
    assert main(["check", str(deployed), "--json", "live.json", "-q"]) == 1
    capsys.readouterr()
    assert main(["merge", "s1.json", "s2.json", "--json", "all.json"]) == 1
    merged, live = (json.loads((tmp_path / name).read_text()) for name in ("all.json", "live.json"))
    verdicts = [{i["id"]: [(s["stage"], s["status"]) for s in i["stages"]] for i in d["images"]} for d in (merged, live)]
    assert verdicts[0] == verdicts[1] and len(verdicts[0]) == 4
    # a shard's snapshot holds only its images: another shard, or the whole set, is refused before any image runs
    assert main(["check", str(deployed), "--reference", "ref1", "--shard", "2/2", "-q"]) == 2
    assert main(["check", str(deployed), "--reference", "ref1", "-q"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"parity: error: {tmp_path / 'ref1'}: holds shard 1/2 of the images only (`parity snapshot --shard 1/2`): check it "
                   "with --shard 1/2, not 2/2",
                   f"parity: error: {tmp_path / 'ref1'}: holds shard 1/2 of the images only (`parity snapshot --shard "
                   "1/2`): check it with --shard 1/2"]


@pytest.mark.slow
def test_merge_judges_the_degenerate_output_check_over_every_shards_answers(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "parity_cfg.py"
    cfg.write_text(seed_config_text(IMAGES / "*.png"))
    for k in (1, 2):
        main(["check", str(cfg), "--shard", f"{k}/2", "--json", f"s{k}.json", "-q"])
    shard_images = [json.loads((tmp_path / f"s{k}.json").read_text())["degenerate"]["images"] for k in (1, 2)]
    capsys.readouterr()
    assert main(["merge", "s1.json", "s2.json", "--json", "all.json", "--junit-xml", "all.xml"]) == 1
    assert "degenerate-output check: FAILED: degenerate: consequence of the model_input divergence" in capsys.readouterr().out
    merged = json.loads((tmp_path / "all.json").read_text())["degenerate"]
    assert merged["status"] == "failed" and merged["images"] == sum(shard_images) == 8 and merged["share"] == 0.9
    assert ("parity_cfg", "degenerate", "failed") in junit_cases(tmp_path / "all.xml")


@pytest.mark.slow
def test_a_shard_holds_the_same_images_in_pytest_and_the_cli(pytester, deployed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["check", str(deployed), "--shard", "2/2", "--json", "s2.json", "-q"])
    cli_ids = {image["id"] for image in json.loads((tmp_path / "s2.json").read_text())["images"]}
    result = pytester.runpytest_subprocess("--parity-config", str(deployed), "--parity-shard", "2/2",
                                           "--collect-only", "-q")
    assert {line.split("::")[1] for line in result.outlines if line.count("::") == 2} == cli_ids


@pytest.mark.slow
def test_the_cli_and_pytest_write_the_same_junit_identities_and_verdicts(pytester, deployed):
    pytester.chdir()
    assert main(["check", str(deployed), "--junit-xml", str(pytester.path / "cli.xml"), "-q"]) == 1
    pytester.runpytest_subprocess("--parity-config", str(deployed), "--junit-xml", "pytest.xml",
                                  "-p", "no:cacheprovider", f"--rootdir={deployed.parent}")
    assert junit_cases(pytester.path / "cli.xml") == junit_cases(pytester.path / "pytest.xml")
    suite = ET.parse(pytester.path / "cli.xml").getroot().find("testsuite")
    assert suite.get("timestamp") and suite.get("hostname") and float(suite.get("time")) > 0


@pytest.mark.slow
def test_tolerances_can_be_overridden_per_stage_from_the_command_line(deployed, capsys):
    assert main(["check", str(deployed), "--atol", "resize=0", "--max-mismatch", "resize=0", "-q"]) == 1
    assert "resize            0       4" in capsys.readouterr().out  # the corrected resize differs by up to 3 levels
    assert main(["check", str(deployed), "--atol", "rezise=1", "-q"]) == 2
    assert "did you mean 'resize'?" in capsys.readouterr().err
    assert main(["check", str(deployed), "--rtol", "resize=lots"]) == 2
    assert "--rtol 'resize=lots': expected [STAGE=]NUMBER" in capsys.readouterr().err


@pytest.mark.slow
def test_verbosity_levels_and_no_color(deployed, capsys, monkeypatch):
    import parity.cli.console as cli

    main(["check", str(deployed)])
    default = capsys.readouterr().out
    main(["check", str(deployed), "-vv"])
    every = capsys.readouterr().out
    assert default.count("same diagnosis as astronaut") == 3 and "same diagnosis as" not in every
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert "\x1b[31mFAILED" in cli.paint("FAILED | x")
    monkeypatch.setenv("NO_COLOR", "1")
    assert cli.paint("FAILED | x") == "FAILED | x"


@pytest.mark.slow
@pytest.mark.parametrize("reference_model", [True, False])
def test_one_degenerate_judge_gives_one_verdict_serially_under_xdist_and_merged(pytester, reference_model):
    """The seed's collapse (class 0, p=1 for every image), judged by a serial run, by the pytest-xdist
    controller over its workers' answers and by `parity merge` over two shards: the same verdict and findings,
    with or without a reference network (without one the deployed answers alone are judged)."""
    pytester.chdir()
    text = seed_config_text(IMAGES / "*.png", batch_size=2)
    if not reference_model:
        text = text.replace("onnx=", "reference_model=False, onnx=")
    cfg = pytester.makepyfile(parity_cfg=text)
    assert main(["check", str(cfg), "--json", "serial.json", "-q"]) == 1
    serial = json.loads((pytester.path / "serial.json").read_text())["degenerate"]
    for k in (1, 2):
        main(["check", str(cfg), "--shard", f"{k}/2", "--json", f"s{k}.json", "-q"])
    assert main(["merge", "s1.json", "s2.json", "--json", "merged.json"]) == 1
    merged = json.loads((pytester.path / "merged.json").read_text())["degenerate"]
    spread = pytester.runpytest_subprocess("--parity-config", str(cfg), "-n", "2", "-k", "degenerate or model",
                                           "-p", "no:cacheprovider", "--junit-xml", "xdist.xml")
    [xdist] = [c for c in ET.parse(pytester.path / "xdist.xml").iter("testcase") if c.get("name") == "degenerate"]
    assert serial["status"] == merged["status"] == "failed" and xdist.find("failure") is not None
    assert serial["findings"] == merged["findings"] and serial["images"] == merged["images"] == 8
    assert all(finding in xdist.find("failure").text for finding in serial["findings"])
    assert any(f.startswith("probabilities saturated: p >= 0.999 for 100% of images") for f in serial["findings"])
    assert spread.ret == pytest.ExitCode.TESTS_FAILED


CRASHY = '''import os

import mmpretrain.datasets  # noqa: F401  (its transforms registered first, then overridden)
from mmcv.transforms import LoadImageFromFile
from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module(name="LoadImageFromFile", force=True)
class DiesOnChelsea(LoadImageFromFile):
    def transform(self, results):
        if "chelsea" in results["img_path"]:
            os._exit(9)  # as the kernel's OOM killer would end it: nothing runs after
        return super().transform(results)
'''


@pytest.mark.slow
def test_a_worker_that_dies_fails_its_item_ends_the_run_and_leaves_no_spool_folder(pytester, monkeypatch):
    """A pytest-xdist worker killed mid-run (here the reference's image loading exits on chelsea.png) fails the
    item it was running, the run ends (exit 1, no hang), and the records it had spooled are removed by the
    controller: the worker could not remove them itself."""
    pytester.makepyfile(crashy=CRASHY)
    (pytester.path / "ref.py").write_text(f"_base_ = ['{SEED / 'hrnet_w30_512x384.py'}']\n"
                                          "custom_imports = dict(imports=['crashy'], allow_failed_imports=False)\n")
    cfg = pytester.makepyfile(parity_cfg=f"reference = dict(config='ref.py')\nimages = ['{IMAGES / '*.png'}']\n"
                              f"dali = dict(pipeline='{SEED / 'corrected_pipeline.py'}:hrnet_w30_cls_preprocess_pipeline', "
                              "input_name='INPUT_PREPROCESS', batch_size=2)\n")
    tmp = pytester.mkdir("tmp")
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    result = pytester.runpytest_subprocess("--parity-config", str(cfg), "-n", "2", "--max-worker-restart", "1",
                                           "-p", "no:cacheprovider", timeout=300)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*worker 'gw*' crashed while running 'parity_cfg.py::chelsea::*'*"])
    assert not list(tmp.glob("parity-*"))
