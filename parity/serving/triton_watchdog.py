"""Run tritonserver so that nothing of it outlives parity: ``python -m parity.serving.triton_watchdog CMD...``.

parity starts this process as the leader of a new process group, with PR_SET_PDEATHSIG, so the kernel
sends it SIGTERM when parity dies, even of SIGKILL. It runs the server in its group and, when told to stop,
ends the whole group: the server's Python-backend stubs ignore SIGTERM and do not notice their parent's
death, so without this they would run on. (While parity lives, its own stop() ends the group.)

A stop does not wait for the server's own shutdown (2-3 s of unloading models parity no longer needs):
the group is killed at once, and the shared-memory regions its processes had mapped, which only a graceful
shutdown removes, are removed here. The signal handler only records the stop; the main loop acts on it.
"""

import contextlib
import os
import signal
import subprocess
import sys

POLL_S = 0.05


def _group() -> list[int]:
    """The other processes of this process group: the server and the Python stubs it started."""
    me, group, pids = os.getpid(), os.getpgid(0), []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me:
            with contextlib.suppress(OSError):
                if os.getpgid(int(entry)) == group:
                    pids.append(int(entry))
    return pids


def _shared_memory(pids: list[int]) -> set[str]:
    """The /dev/shm files those processes have mapped (the Python backend's regions)."""
    regions = set()
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].startswith("/dev/shm/"):
                    regions.add(fields[5].rstrip("\n").removesuffix(" (deleted)"))
    return regions


def main(command: list[str]) -> int:
    server = subprocess.Popen(command)
    stopping: list[int] = []

    def stop(signum, frame):
        stopping.append(signum)

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, stop)
    code = None
    while code is None and not stopping:
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = server.wait(timeout=POLL_S)  # polled: the handler never waits on a lock the loop holds
    if stopping:
        members = _group()
        regions = _shared_memory(members)
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.wait()
        for region in regions:
            with contextlib.suppress(OSError):
                os.unlink(region)
        os.killpg(0, signal.SIGKILL)  # anything started meanwhile, and this process
    return code if code is not None else 1  # the server's own exit code, for parity's message


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
