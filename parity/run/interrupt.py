"""SIGTERM and SIGHUP (a CI timeout, a cancelled job, Kubernetes, a closed terminal) unwind like Ctrl-C, so
the code that started a server or made a temporary folder cleans it up on the way out."""

from __future__ import annotations

import contextlib
import signal
import threading


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by a signal; a KeyboardInterrupt, so pytest unwinds for it as for Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum, frame):
    raise Terminated(signum)


@contextlib.contextmanager
def signals_unwind():
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
