"""Run tritonserver so that nothing of it outlives parity: ``python -m parity.serving.triton_watchdog CMD...``.

parity starts this process as the leader of a new process group, with PR_SET_PDEATHSIG, so the kernel
sends it SIGTERM when parity dies, even of SIGKILL. It runs the server in its group and, when told to stop,
ends the whole group: the server's Python-backend stubs ignore SIGTERM and do not notice their parent's
death, so without this they would run on. (While parity lives, its own stop() ends the group.)
"""

import os
import signal
import subprocess
import sys


def main(command: list[str]) -> int:
    server = subprocess.Popen(command)

    def stop(signum, frame):
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        finally:
            os.killpg(0, signal.SIGKILL)  # the stubs, and this process

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    signal.signal(signal.SIGINT, stop)
    return server.wait()  # the server's own exit code, for parity's message


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
