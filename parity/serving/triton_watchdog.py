"""Run tritonserver so that nothing of it outlives parity: ``python -m parity.serving.triton_watchdog CMD...``.

parity starts this process as the leader of a new process group, with PR_SET_PDEATHSIG, so the kernel
sends it SIGTERM when parity dies, even of SIGKILL. It runs the server in its group and, when told to stop,
ends the whole group: the server's Python-backend stubs ignore SIGTERM and do not notice their parent's
death, so without this they would run on. (While parity lives, its own stop() ends the group.)

The signal handler only records the stop and forwards SIGTERM; the main loop polls the server, so a stop
takes as long as the server's own shutdown (2-3 s), never the grace period, unless the server hangs.
"""

import os
import signal
import subprocess
import sys
import time

GRACE_S = 10.0  # the server's own shutdown, before the whole group is killed
POLL_S = 0.05


def main(command: list[str]) -> int:
    server = subprocess.Popen(command)
    stop_at: list[float] = []  # when a stop was asked for (set by the handler)

    def stop(signum, frame):
        if not stop_at:
            stop_at.append(time.monotonic())
            server.send_signal(signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, stop)
    code = None
    while code is None and not (stop_at and time.monotonic() - stop_at[0] > GRACE_S):
        try:
            code = server.wait(timeout=POLL_S)  # polled: a handler never waits on a lock the main thread holds
        except subprocess.TimeoutExpired:
            pass
    if stop_at:
        os.killpg(0, signal.SIGKILL)  # the stubs, and this process
    return code if code is not None else 1  # the server's own exit code, for parity's message


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
