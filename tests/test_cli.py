"""`parity check cfg.py` as a CI gate: exit codes, a summary table and JUnit XML."""

import xml.etree.ElementTree as ET

from parity.cli import main

from .conftest import SEED


def test_gate_passes_the_corrected_pipeline_and_writes_junit(tmp_path, capsys):
    junit = tmp_path / "parity.xml"
    assert main(["check", str(SEED / "parity_corrected.py"), "--junit-xml", str(junit), "-q"]) == 0
    out = capsys.readouterr().out
    assert "40 stage checks passed. 0 stage checks failed." in out and "8 of 8 images match" in out
    suite = ET.parse(junit).getroot()
    # 8 images x 5 stages, 8 model comparisons, 1 degenerate-output check
    assert (suite.get("tests"), suite.get("failures")) == ("49", "0")


def test_gate_fails_the_deployed_pipeline_with_the_cause(tmp_path, capsys):
    junit = tmp_path / "parity.xml"
    assert main(["check", str(SEED / "parity_deployed.py"), "--junit-xml", str(junit)]) == 1
    out = capsys.readouterr().out
    assert "FAILED | astronaut | first divergence at model_input (missing_normalization, channel_order, layout)" in out
    assert "model_input       0       8        0" in out and "missing_normalization (8)" in out
    failures = ET.parse(junit).getroot().findall("testcase/failure")
    assert len(failures) == 8 + 8 + 1 and "un-normalized" in failures[0].text
    assert "probabilities saturated: p >= 0.999 for 100% of images" in out


def test_gate_usage_errors_exit_2_with_one_line(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing.py")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("parity: error: parity config not found:") and err.count("\n") == 1
