"""The pytest side of a run: collection nodes, items and pytest-xdist scheduling.

``parity_key`` lives here, not in :mod:`parity.plugin`, so the entry point and the session import it
without importing each other."""

import pytest

parity_key = pytest.StashKey["ParityPlugin"]()
