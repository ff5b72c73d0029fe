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
    ("signals", "GitHub Actions' cancel (SIGINT to the job, SIGTERM at 7.5 s, SIGKILL at 10 s) during a Triton run, "
     "to `parity check`, `pytest` and `pytest -n 2`", "each ends before SIGKILL (the CLI with 130 within 3 s; the "
     "server's group is killed at once and its /dev/shm regions removed: 0.03 s, 15 s before), no traceback, no server, no parity-triton-*/parity-records-* folder",
     "tests/test_signals.py::test_a_cancelled_ci_job_ends_before_sigkill_and_leaves_nothing_behind"),
    ("signals", "a parity.py in the working directory of a Triton run", "the server runs in its own folder: its "
     "Python stubs import the real parity (the ensemble failed to load)",
     "tests/test_triton.py::test_a_parity_py_in_the_working_directory_does_not_shadow_parity_in_the_servers_stubs"),
    ("signals", "`ulimit -v` (or a missing system library) makes an installed stack fail to import", "exit 2 saying "
     "it is installed and fails to import, with the reason (it said `pip install 'parity[dali]'`)",
     "tests/test_extras.py::test_a_missing_package_names_the_extra_and_a_failing_one_says_why"),
    ("outputs", "`--report` on a mount point (a CI volume: rename gives EBUSY)", "the folder is filled entry by "
     "entry (it ended with exit 3)",
     "tests/test_cli.py::test_a_report_folder_that_is_a_mount_point_is_written_and_rewritten"),
    ("outputs", "a full disk under `--json`/`--junit-xml`", "exit 2 in one sentence; the other file is still written; "
     "none reads as a pass", "tests/test_cli.py::test_a_full_disk_is_one_sentence_and_leaves_no_file_that_reads_as_a_pass"),
    ("outputs", "a run ended by `os._exit(0)` in a pipeline module", "exit 0 from the process, but the result files "
     "(written first as an unfinished run's) say exit 3: never a pass",
     "tests/test_cli.py::test_a_run_ended_from_outside_leaves_result_files_that_do_not_pass"),
    ("outputs", "an infinite tolerance (atol=inf) or a NaN in DALI's output, in `--json`", "strict JSON: the numbers "
     "as \"Infinity\"/\"NaN\" strings, read back by parity merge (bare tokens before)",
     "tests/test_cli.py::test_the_json_result_is_strict_json_where_a_number_is_infinite"),
    ("images", "file names with a newline, a control character, '+' beside '_', or bytes that are not UTF-8",
     "spelled as escapes in ids, console lines and JUnit (no forged line, well-formed XML), one report section "
     "each (a non-UTF-8 name ended with exit 3)",
     "tests/test_cli.py::test_odd_file_names_neither_forge_lines_nor_break_junit_nor_share_a_report_section"),
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
