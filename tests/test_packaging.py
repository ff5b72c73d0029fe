"""parity as a team installs it: the built wheel in a fresh venv, not this checkout."""

import subprocess
import zipfile

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow  # each builds the wheel


def test_the_installed_wheel_suggests_snapshots_and_checks(tmp_path):
    run = subprocess.run(["bash", str(ROOT / "scripts" / "check_wheel.sh")], capture_output=True, text=True,
                         timeout=600, env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout + run.stderr
    assert "parity 0.1.0" in out and "/venv/lib/" in out  # the wheel's package, not the checkout's
    assert "EXACT: within 1 uint8 level(s)" in out  # suggest on a package config, over the shipped samples
    assert "check against the snapshot: failed 1" in out and "missing_normalization (8)" in out
    assert not list(tmp_path.glob("parity-wheel.*"))  # the work folder is removed


def test_the_wheel_ships_the_samples_and_no_test_code(tmp_path):
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path), str(ROOT)], check=True, timeout=300)
    names = zipfile.ZipFile(next(tmp_path.glob("parity-*.whl"))).namelist()
    assert sum(n.startswith("parity/samples/") and n.endswith(".png") for n in names) == 8
    assert not [n for n in names if n.startswith(("tests/", "fixtures/")) or n.endswith("zoo.py")]
    metadata = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(next(tmp_path.glob("parity-*.whl"))).read(metadata).decode()
    required = [line for line in text.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert sorted(r.split()[1].split(">")[0].lower() for r in required) == ["numpy", "pillow", "pytest"]
    assert "Requires-Dist: torch>=2.0; extra == \"reference\"" in text
