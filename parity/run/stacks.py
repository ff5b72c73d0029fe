"""Python's garbage collector and the stacks parity loads.

torch, MMPretrain, mmcv and DALI leave about 400,000 objects tracked by the collector. Left alone, it
walks all of them in each full collection: seven times while they are imported (1.2 to 2.7 s on our
2-core machine), at pytest's last collection and again while Python finalizes its modules at exit
(1.9 s). Those objects live as long as the process, so parity loads them with the collector paused and
then freezes them (:func:`gc.freeze`): later collections, the one at exit included, skip them. Only the first
load in a process freezes: a later one (the API or in-process runs in a user's test suite) would pin every
earlier run's uncollected cycles, DALI pipelines and arrays among them, for the life of the process.
"""

from __future__ import annotations

import contextlib
import gc

_frozen = False


@contextlib.contextmanager
def loading_stacks():
    """For the block that first imports the stacks and builds the pipelines: no collection during it, and
    what it leaves (with everything older) moved to the permanent generation after it. Later blocks run as
    any other code."""
    global _frozen
    if _frozen:
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        _frozen = True
        if enabled:
            gc.enable()
