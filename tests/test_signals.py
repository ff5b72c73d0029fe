"""A CI job is cancelled, times out or is killed while the embedded Triton server runs: real signals to a
real run. The server and its stubs never outlive parity, and no temporary folder is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import SEED

CONFIG = SEED / "parity_triton_corrected.py"
pytestmark = pytest.mark.slow  # each runs parity or pytest with a real server until it is signalled


def _servers(tmp: Path) -> list[int]:
    """tritonserver processes (and their Python stubs) serving from a copy under ``tmp``."""
    out = subprocess.run(["pgrep", "-f", f"{tmp}/parity-triton-"], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def _start(tmp: Path, *argv: str) -> subprocess.Popen:
    """Run ``argv`` with temporary files under ``tmp`` until its tritonserver is up."""
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(list(argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _servers(tmp):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the server never started: {process.communicate()}")
        time.sleep(0.2)
    return process


def _gone(tmp: Path, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while _servers(tmp) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not _servers(tmp)


@pytest.mark.parametrize("signum, code, said", [
    (signal.SIGTERM, 143, "parity: stopped by SIGTERM"),
    (signal.SIGHUP, 129, "parity: stopped by SIGHUP"),
    (signal.SIGINT, 130, "parity: interrupted"),
])
def test_cli_stops_the_server_and_cleans_up_on_a_signal(tmp_path, signum, code, said):
    process = _start(tmp_path, sys.executable, "-m", "parity.cli", "check", str(CONFIG), "--json",
                     str(tmp_path / "result.json"))
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert said in err and "Traceback" not in err
    assert _gone(tmp_path, 5)
    assert not list(tmp_path.glob("parity-triton-*"))
    assert f'"exit_code": {code}' in (tmp_path / "result.json").read_text()  # CI still gets its result file


def test_pytest_run_stops_the_server_on_sigterm(tmp_path):
    process = _start(tmp_path, sys.executable, "-m", "pytest", "--parity-config", str(CONFIG), "-q",
                     "-p", "no:cacheprovider", "--rootdir", str(tmp_path))
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2 and "parity.run.interrupt.Terminated: SIGTERM" in out + err  # pytest: interrupted
    assert _gone(tmp_path, 5)
    assert not list(tmp_path.glob("parity-triton-*"))


def test_the_server_dies_with_parity_even_on_sigkill(tmp_path):
    """SIGKILL cannot be handled: the server was started with PR_SET_PDEATHSIG, so the kernel stops it. Only
    its temporary folder stays (nothing runs in a killed process to remove it)."""
    process = _start(tmp_path, sys.executable, "-m", "parity.cli", "check", str(CONFIG))
    process.kill()
    process.communicate(timeout=30)
    assert _gone(tmp_path, 30)


def _cancel_like_github_actions(process: subprocess.Popen) -> tuple[float, str]:
    """GitHub Actions' cancel: SIGINT to the job's processes, SIGTERM 7.5 s later, SIGKILL at 10 s. Returns the
    seconds from SIGINT to exit, and the output."""
    start = time.monotonic()
    for signum, at in ((signal.SIGINT, 0.0), (signal.SIGTERM, 7.5), (signal.SIGKILL, 10.0)):
        remaining = at - (time.monotonic() - start)
        if remaining > 0:
            try:
                process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                pass
        if process.poll() is not None:
            break
        os.killpg(process.pid, signum)
    out, err = process.communicate(timeout=30)
    return time.monotonic() - start, out + err


@pytest.mark.parametrize("argv, code, within", [
    (["-m", "parity.cli", "check", str(CONFIG)], 130, 3.0),
    (["-m", "pytest", "--parity-config", str(CONFIG), "-q", "-p", "no:cacheprovider"], 2, 7.5),
    (["-m", "pytest", "--parity-config", str(CONFIG), "-q", "-p", "no:cacheprovider", "-n", "2"], 2, 7.5),
], ids=["cli", "pytest", "pytest-xdist"])
def test_a_cancelled_ci_job_ends_before_sigkill_and_leaves_nothing_behind(tmp_path, argv, code, within):
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, *argv, *(["--rootdir", str(tmp_path)] if "pytest" in argv else [])],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, cwd=tmp_path)  # its own group, as a job's step
    deadline = time.monotonic() + 120
    while not _servers(tmp_path):
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"the server never started: {process.communicate()}")
        time.sleep(0.2)
    seconds, output = _cancel_like_github_actions(process)
    assert process.returncode == code, output[-3000:]
    assert seconds < within, f"{seconds:.1f} s from SIGINT to exit"  # never the runner's SIGKILL
    assert "Traceback" not in output  # pytest says where it stopped in one line, as on Ctrl-C
    assert _gone(tmp_path, 5)
    assert not list(tmp_path.glob("parity-triton-*")) and not list(tmp_path.glob("parity-records-*"))
