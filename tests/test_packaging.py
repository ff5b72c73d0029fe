"""parity as a team installs it: the built wheel in a fresh venv, not this checkout."""

import subprocess
import zipfile

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow  # each builds the wheel


def test_the_installed_wheel_suggests_snapshots_and_checks(tmp_path):
    """About 95 s on 2 busy cores (66 s before the timm snapshot's serving image was added)."""
    run = subprocess.run(["bash", str(ROOT / "scripts" / "check_wheel.sh")], capture_output=True, text=True,
                         timeout=600, env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout + run.stderr
    assert "parity 0.1.0" in out and "/venv/lib/" in out  # the wheel's package, not the checkout's
    assert "EXACT: within 1 uint8 level(s)" in out  # suggest on a package config, over the shipped samples
    assert "check against the snapshot: failed 1" in out and "missing_normalization (8)" in out
    # a timm snapshot recorded beside timm, checked by the wheel in a serving image where neither imports
    assert "serving image lacks: torch timm torchvision mmpretrain mmcv mmengine" in out
    assert "12 of 12 images match" in out and "reference: snapshot " in out  # the corrected ViT pipeline
    assert "timm snapshot, deployed ViT pipeline: failed 1 ['brightness_contrast', 'size', 'wrong_normalization']" in out
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


def test_the_triton_client_extra_leaves_a_numpy_2_project_on_numpy_2(tmp_path):
    """A user project pinned to numpy 2 installs parity[dali,onnx,triton,report] without a downgrade: only the
    embedded server ([triton-server]) needs numpy<2."""
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "dist"), str(ROOT)], check=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("parity-*.whl"))
    base = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", "import sys; print(sys._base_executable)"],
                          capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([base, "-m", "venv", str(tmp_path / "venv")], check=True, timeout=120)
    python = str(tmp_path / "venv" / "bin" / "python")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # not this checkout's PYTHONPATH
    install = subprocess.run([python, "-m", "pip", "install", "-q", "numpy>=2", f"parity[dali,onnx,triton,report] @ {wheel.as_uri()}"],
                             capture_output=True, text=True, timeout=1200, env=env)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    check = subprocess.run([python, "-c", "import numpy, parity, tritonclient.grpc; print(numpy.__version__, parity.__file__)"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert check.returncode == 0, check.stderr[-3000:]
    version, where = check.stdout.split()
    assert version.startswith("2.") and where.startswith(str(tmp_path / "venv")), check.stdout
    assert "nvidia-pytriton" not in subprocess.run([python, "-m", "pip", "list"], capture_output=True, text=True, env=env).stdout


def test_without_the_server_extra_the_embedded_triton_stage_is_one_sentence_naming_it(monkeypatch):
    import importlib.util

    from parity.errors import ParityExtraError
    from parity.serving.triton import _pytriton_root

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)  # as where nvidia-pytriton is absent
    with pytest.raises(ParityExtraError, match=r"pip install 'parity\[triton-server\]', or set `triton.url`") as info:
        _pytriton_root()
    assert "numpy<2" in str(info.value) and "\n" not in str(info.value)
