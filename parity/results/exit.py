"""The exit codes of a run, the same for ``parity check``, ``parity merge`` and the summary of a pytest run:
0 every check passed, 1 a parity failure, 2 a usage error (an image or input that could not be checked),
3 a bug in parity itself, 130 interrupted (128+N when stopped by signal N)."""

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
