"""nox sessions: tests, lint and the seed example. `nox -s tests` is what CI runs (through .ci/run)."""

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

TORCH = ["torch==2.14.1", "torchvision==0.29.1"]


def _install(session):
    session.install("setuptools<81", "wheel")
    session.install(*TORCH)
    session.install("-e", ".[dev]")


@nox.session
def tests(session):
    """The test suite (no GPU needed; GPU-only tests skip with their reason)."""
    _install(session)
    session.run("pytest", "tests", "-ra", *session.posargs)


@nox.session
def lint(session):
    """ruff over the package, tests and fixtures."""
    session.install("ruff")
    session.run("ruff", "check", "parity", "tests", "fixtures", "benchmarks", "noxfile.py", "conftest.py")


@nox.session
def seed(session):
    """The bundled example: the deployed pipeline fails (expected), the corrected one passes."""
    _install(session)
    session.run("pytest", "--parity-config", "fixtures/seed/parity_deployed.py", success_codes=[1])
    session.run("pytest", "--parity-config", "fixtures/seed/parity_corrected.py")
