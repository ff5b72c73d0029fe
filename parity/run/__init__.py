"""One parity run: the harness per image, the whole-run checks, recording and the verdict."""
