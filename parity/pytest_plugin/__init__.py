"""The pytest side of a run: collection nodes, items and pytest-xdist scheduling.

``parity_key`` lives here, not in :mod:`parity.plugin`, so the entry point and the session import it
without importing each other."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from parity.pytest_plugin.session import ParityPlugin  # noqa: F401 (named in the StashKey below)

parity_key = pytest.StashKey["ParityPlugin"]()
