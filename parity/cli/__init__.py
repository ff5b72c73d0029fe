"""The ``parity`` command: check, snapshot, merge and suggest."""

from parity.cli.main import main

__all__ = ["main"]
