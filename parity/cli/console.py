"""Colours in what the ``parity`` command prints."""

from __future__ import annotations

import os
import re
import sys


def paint(text: str) -> str:
    """PASSED green and FAILED red on a terminal, unless NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return text
    return re.sub(r"\b(PASSED|FAILED|ERROR)\b", lambda m: _COLOURS[m[1]] + m[1] + "\x1b[0m", text)


_COLOURS = {"PASSED": "\x1b[32m", "FAILED": "\x1b[31m", "ERROR": "\x1b[31m"}
