"""pytest's own selection and rerun flags on parity items: each image is a node, each stage an item under it
(``cfg.py::astronaut::model_input``), and only the selected images are computed, each once.

Every run here is a fresh pytest process in a temporary folder (its own rootdir and cache), on a config of
three images; "N of M images match" in the summary counts the images actually computed.
"""

import pytest

from .conftest import IMAGES, SEED

IMAGE_NAMES = ("astronaut", "chelsea", "flat")


@pytest.fixture
def deployed(pytester):
    """The seed's deployed (broken) pipeline on three images, without the model stage: three passing stages and
    a failing model_input per image."""
    images = ", ".join(repr(str(IMAGES / f"{name}.png")) for name in IMAGE_NAMES)
    return pytester.makepyfile(parity_cfg=f"reference = dict(config='{SEED / 'hrnet_w30_512x384.py'}')\n"
                                          f"images = [{images}]\n"
                                          f"dali = dict(pipeline='{SEED / 'deployed_pipeline.py'}:"
                                          "hrnet_w30_cls_preprocess_pipeline', input_name='INPUT_PREPROCESS', "
                                          "batch_size=2)\n")


def computed(result) -> str:
    return next(line for line in result.outlines if "images match" in line)


@pytest.mark.slow
def test_one_item_per_image_and_stage_under_an_image_node(pytester, deployed):
    result = pytester.runpytest_subprocess("--parity-config", str(deployed), "--collect-only", "-q")
    assert "parity_cfg.py::astronaut::model_input" in result.outlines
    assert "parity_cfg.py::flat::resize" in result.outlines
    assert {"parity_cfg.py::gpu_risk", "parity_cfg.py::gpu_vs_cpu", "parity_cfg.py::determinism"} <= set(result.outlines)
    assert sum(line.startswith("parity_cfg.py::") for line in result.outlines) == 15  # 3 x 4 stages, 3 checks


@pytest.mark.slow
def test_k_computes_only_the_selected_image(pytester, deployed):
    result = pytester.runpytest_subprocess("--parity-config", str(deployed), "-k", "chelsea")
    result.assert_outcomes(passed=3, failed=1, deselected=11)
    assert computed(result) == "0 of 1 images match"


@pytest.mark.slow
def test_a_node_id_runs_that_item_and_computes_its_image(pytester, deployed):
    result = pytester.runpytest_subprocess("--parity-config", str(deployed), "parity_cfg.py::flat::resize")
    result.assert_outcomes(passed=1)
    assert computed(result) == "0 of 1 images match"
    # and without --parity-config: the node id names the config; the ini option says how to read it
    pytester.makeini(f"[pytest]\nparity_config = {deployed}\n")
    result = pytester.runpytest_subprocess("parity_cfg.py::flat")
    result.assert_outcomes(passed=3, failed=1)


@pytest.mark.slow
def test_deselect_and_marker_expressions(pytester, deployed):
    result = pytester.runpytest_subprocess("--parity-config", str(deployed), "--deselect", "parity_cfg.py::astronaut",
                                           "--deselect", "parity_cfg.py::flat::model_input")
    result.assert_outcomes(passed=8, failed=1, skipped=1, deselected=5)
    assert computed(result) == "0 of 2 images match"
    result = pytester.runpytest_subprocess("--parity-config", str(deployed), "-m", "parity")
    result.assert_outcomes(passed=11, failed=3, skipped=1)
    result = pytester.runpytest_subprocess("--parity-config", str(deployed), "-m", "not parity")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


@pytest.mark.slow
def test_last_failed_reruns_only_the_failures_and_failed_first_runs_them_first(pytester, deployed):
    first = pytester.runpytest_subprocess("--parity-config", str(deployed))
    first.assert_outcomes(passed=11, failed=3, skipped=1)
    again = pytester.runpytest_subprocess("--parity-config", str(deployed), "--lf")
    again.assert_outcomes(failed=3, deselected=12)
    again.stdout.fnmatch_lines(["run-last-failure: rerun previous 3 failures*"])
    assert "not in selected tests" not in again.stdout.str()
    assert computed(again) == "0 of 3 images match"
    ordered = pytester.runpytest_subprocess("--parity-config", str(deployed), "--ff", "-v")
    ordered.assert_outcomes(passed=11, failed=3, skipped=1)
    run = [line.split(" ")[0] for line in ordered.outlines if line.startswith("parity_cfg.py::")]
    assert [r.rsplit("::", 1)[1] for r in run[:3]] == ["model_input"] * 3


@pytest.mark.slow
def test_stepwise_stops_at_the_first_failure_and_resumes_there(pytester, deployed):
    first = pytester.runpytest_subprocess("--parity-config", str(deployed), "--sw")
    first.assert_outcomes(passed=5, failed=1, skipped=1)  # the checks and astronaut's first three stages
    assert computed(first) == "0 of 1 images match"  # the rest was never computed
    second = pytester.runpytest_subprocess("--parity-config", str(deployed), "--sw")
    second.stdout.fnmatch_lines(["stepwise: skipping 6 already passed items*"])
    second.assert_outcomes(failed=1, deselected=6)


@pytest.mark.slow
def test_exitfirst_stops_the_computing(pytester, deployed):
    result = pytester.runpytest_subprocess("--parity-config", str(deployed), "-x")
    result.assert_outcomes(passed=5, failed=1, skipped=1)
    assert computed(result) == "0 of 1 images match"


@pytest.mark.slow
def test_each_item_is_charged_its_own_time(pytester, deployed):
    """An image's computation goes to the item that triggered it (a DALI batch of two here), not the whole
    run to the first item; JUnit's times follow."""
    import xml.etree.ElementTree as ET

    result = pytester.runpytest_subprocess("--parity-config", str(deployed), "--junit-xml", "junit.xml")
    result.assert_outcomes(passed=11, failed=3, skipped=1)
    times = {f"{case.get('classname').rsplit('.', 1)[-1]}::{case.get('name')}": float(case.get("time"))
             for case in ET.parse(pytester.path / "junit.xml").iter("testcase")}
    total = sum(times.values())
    rest = sorted(t for name, t in times.items() if name not in ("astronaut::input", "flat::input",
                                                                  "parity_cfg::determinism"))
    assert times["flat::input"] > 10 * rest[len(rest) // 2]  # the second batch: flat alone
    assert times["astronaut::input"] < 0.9 * total  # the first batch: astronaut and chelsea


def test_a_nan_tolerance_in_the_config_is_a_usage_error_not_a_pass(pytester, deployed):
    deployed.write_text(deployed.read_text() + "\ntolerances = dict(pixels=dict(atol=float('nan')))\n")
    result = pytester.runpytest_subprocess("--parity-config", str(deployed))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*parity_cfg.py: tolerances.pixels.atol=nan: expected a non-negative number*"])


def test_the_plugin_costs_pytest_nothing_when_unused():
    """Installed, parity's entry point is imported by every pytest run in that environment: under 50 ms, and
    nothing of the engine (numpy, DALI, torch) is imported."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import pytest; import parity.plugin"],
                          capture_output=True, text=True, check=True)
    cumulative = {line.split("|")[2].strip(): int(line.split("|")[1]) for line in done.stderr.splitlines()
                  if line.startswith("import time:") and line.split("|")[1].strip().isdigit()}
    assert cumulative["parity.plugin"] < 50_000  # microseconds
    assert not {"numpy", "nvidia.dali", "torch", "parity.run.harness"} & set(cumulative)
