"""pytest-xdist scheduling for parity items: a work unit is one DALI batch of images (all their stage
items), so every image is computed once in the whole run, on one worker, still batched; other tests keep
pytest-xdist's own grouping by class or module (``--dist loadscope``)."""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling


class BatchScheduling(LoadScopeScheduling):
    def __init__(self, config, log, scope):
        super().__init__(config, log)
        self._parity_scope = scope  # node id -> work unit, None for a node that is not parity's

    def _split_scope(self, nodeid: str) -> str:
        return self._parity_scope(nodeid) or super()._split_scope(nodeid)
