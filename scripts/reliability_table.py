"""Print the fault catalogue of docs/reliability.md from the tests that prove it (tests/test_reliability.py,
plus the signal and snapshot tests), so the document cannot drift from what is tested.

Run: .venv/bin/python scripts/reliability_table.py
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_reliability import CATALOGUE  # noqa: E402

# Faults proven by tests that need their own setup: real signals to a real run, recorded references.
ELSEWHERE = [
    ("signals", "SIGTERM during a run with the embedded Triton server (a CI timeout, a cancelled job)",
     "server and stubs stopped, temporary folder removed, exit 143, result files written",
     "tests/test_signals.py::test_cli_stops_the_server_and_cleans_up_on_a_signal[15-143-…]"),
    ("signals", "SIGHUP during a Triton run (a closed terminal)", "the same, exit 129",
     "tests/test_signals.py::test_cli_stops_the_server_and_cleans_up_on_a_signal[1-129-…]"),
    ("signals", "Ctrl-C (SIGINT) during a Triton run", "the same, exit 130, one line, no traceback",
     "tests/test_signals.py::test_cli_stops_the_server_and_cleans_up_on_a_signal[2-130-…]"),
    ("signals", "SIGTERM to `pytest --parity-config` during a Triton run", "pytest unwinds as for Ctrl-C; the "
     "server is stopped", "tests/test_signals.py::test_pytest_run_stops_the_server_on_sigterm"),
    ("signals", "SIGKILL to parity during a Triton run", "the server's watchdog gets SIGTERM from the kernel "
     "(PR_SET_PDEATHSIG) and ends the server and its stubs; only the temporary folder stays",
     "tests/test_signals.py::test_the_server_dies_with_parity_even_on_sigkill"),
    ("snapshots", "an image the snapshot does not have", "exit 2 naming it",
     "tests/test_snapshot.py::test_image_missing_from_the_snapshot_is_refused"),
    ("snapshots", "an image changed since the snapshot", "exit 2 with both hashes",
     "tests/test_snapshot.py::test_image_whose_bytes_changed_is_refused"),
    ("snapshots", "a snapshot of another reference config", "exit 2 naming what differs",
     "tests/test_snapshot.py::test_snapshot_of_another_reference_is_refused"),
    ("snapshots", "a truncated or corrupt snapshot file", "exit 2 naming the file",
     "tests/test_snapshot.py::test_corrupt_snapshot_file_is_named"),
    ("snapshots", "a corrupt or missing snapshot manifest", "exit 2 naming it",
     "tests/test_snapshot.py::test_corrupt_or_foreign_manifest_is_named"),
    ("snapshots", "`parity snapshot --out` over a folder of other files", "exit 2; nothing touched",
     "tests/test_snapshot.py::test_snapshot_refuses_to_overwrite_a_folder_that_is_not_a_snapshot"),
    ("extras", "the live reference in an environment without torch/MMPretrain", "exit 2 naming the extra "
     "(`pip install 'parity[reference]'`) and the snapshot alternative",
     "tests/test_snapshot.py::test_live_reference_without_the_training_stack_names_the_extra"),
]


def main() -> None:
    rows = [(f.area, f.fault, f.handling, f"tests/test_reliability.py::test_fault[{f.id}]") for f in CATALOGUE]
    rows += ELSEWHERE
    fixed = sum("silent pass" in handling for _, _, handling, _ in rows)
    print(f"**{len(rows)} faults tried, {len(rows)} handled, 0 silent passes** ({fixed} of them were silent passes "
          "before and are handled now). Each row is a test; the suite fails if one is not handled as written.\n")
    print("| area | fault | what parity does | the test that proves it |")
    print("| --- | --- | --- | --- |")
    for area, fault, handling, test in rows:
        print(f"| {area} | {fault} | {handling} | `{test}` |")


if __name__ == "__main__":
    main()
