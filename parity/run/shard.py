"""``--parity-shard K/N``: split the images of a run over N CI jobs by content hash, so an image stays in
its shard when others are added, renamed or moved (``parity merge`` combines the shards' results)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as written on the command line
    count: int

    @classmethod
    def parse(cls, text: str | None, flag: str) -> Shard | None:
        from parity.errors import ParityUsageError

        if text is None:
            return None
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match or not 1 <= int(match[1]) <= int(match[2]):
            raise ParityUsageError(f"{flag} {text!r}: expected K/N with 1 <= K <= N, e.g. {flag} 2/4")
        return cls(int(match[1]), int(match[2]))

    def selects(self, path: Path) -> bool:
        return shard_of(path, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(path: Path, count: int) -> int:
    """The 1-based shard of an image file among ``count``: from the SHA-256 of its bytes."""
    from parity.reference.snapshot import file_sha256, shard_of_sha

    return shard_of_sha(file_sha256(path), count)
