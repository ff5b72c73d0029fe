"""nox sessions. `nox` runs lint, typecheck and tests; CI runs the tests through .ci/run."""

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

TORCH = ["torch==2.14.1", "torchvision==0.29.1"]


def _install(session, *extra):
    session.install("setuptools<81", "wheel")
    session.install(*TORCH)
    session.install("-e", ".[dev]", *extra)


@nox.session
def tests(session):
    """The test suite (no GPU needed; GPU-only tests skip with their reason)."""
    _install(session)
    session.run("pytest", "tests", "-ra", "-n", "2", "--dist", "loadfile", "--max-worker-restart", "0", *session.posargs)


@nox.session
@nox.parametrize("pytest", ["8.3.5", "9.2.0"])
def pytest_native(session, pytest):
    """parity's pytest integration (selection, rerun flags, xdist, shards) under each supported pytest."""
    _install(session)
    session.install(f"pytest=={pytest}")
    session.run("pytest", "tests/test_pytest_native.py", "tests/test_scale_out.py", "tests/test_plugin.py", "-ra",
                *session.posargs)


@nox.session
def lint(session):
    """ruff over the package, tests, fixtures and benchmarks."""
    session.install("ruff")
    session.run("ruff", "check", "parity", "tests", "fixtures", "benchmarks", "noxfile.py", "conftest.py")


@nox.session
def typecheck(session):
    """mypy over the package."""
    _install(session, "mypy")
    session.run("mypy", "parity", "--ignore-missing-imports")


@nox.session
def benchmarks(session):
    """Harness overhead, throughput at 224x224, streaming memory and the bug-zoo figures."""
    _install(session)
    session.run("python", "benchmarks/bench_harness.py", "benchmarks/configs/parity_224.py", "40")
    session.run("python", "benchmarks/bench_harness.py", "fixtures/seed/parity_corrected.py", "10")
    session.run("python", "benchmarks/bench_stream.py", "benchmarks/configs/parity_224.py", "50000")
    session.run("python", "benchmarks/bench_xdist.py", "200", "2")
    session.run("python", "benchmarks/zoo_figures.py")
    session.run("python", "benchmarks/bench_triton.py")


@nox.session
def hrnet(session):
    """HRNet-W30 itself: export to ONNX (seeded weights) and compare ONNX Runtime with the torch reference."""
    _install(session)
    session.run("python", "scripts/export_hrnet.py")


@nox.session
def docs(session):
    """Build the docs with mkdocs, strict (broken links fail)."""
    session.install("mkdocs")
    session.run("mkdocs", "build", "--strict", "--site-dir", "build/docs")


@nox.session
def seed(session):
    """The bundled example: the deployed pipeline fails (expected), the corrected one passes."""
    _install(session)
    session.run("parity", "check", "fixtures/seed/parity_deployed.py", "--report", "parity-report/deployed",
                success_codes=[1])
    session.run("parity", "check", "fixtures/seed/parity_corrected.py", "--report", "parity-report/corrected")
