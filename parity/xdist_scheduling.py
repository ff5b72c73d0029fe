"""pytest-xdist scheduling for parity items: a work unit is one DALI batch of images (all their stage
items), so every image is computed once in the whole run, on one worker, still batched; other tests keep
pytest-xdist's own grouping by class or module (``--dist loadscope``).

Two steps of ``LoadScopeScheduling`` take time in proportion to the run's size for every item it handles,
which a validation set turns quadratic (ImageNet's 50,000 images are 200,000 items): the index of an item
in a worker's collection (``list.index``) and a worker's pending items (a sum over every unit it was ever
sent, after each report). Here both are lookups.
"""

from __future__ import annotations

from collections import Counter

from xdist.scheduler import LoadScopeScheduling


class BatchScheduling(LoadScopeScheduling):
    def __init__(self, config, log, scope):
        super().__init__(config, log)
        self._parity_scope = scope  # node id -> work unit, None for a node that is not parity's
        self._indices: dict = {}  # worker -> {node id: index in its collection}
        self._pending: Counter = Counter()  # id of a worker's workload -> its items not reported yet

    def _split_scope(self, nodeid: str) -> str:
        return self._parity_scope(nodeid) or super()._split_scope(nodeid)

    def add_node(self, node) -> None:
        super().add_node(node)
        self._pending[id(self.assigned_work[node])] = 0  # (an id a removed worker's workload had is reset)

    def _assign_work_unit(self, node) -> None:
        scope, work_unit = self.workqueue.popitem(last=False)
        workload = self.assigned_work.setdefault(node, {})
        workload[scope] = work_unit
        if node not in self._indices:
            self._indices[node] = {nodeid: i for i, nodeid in enumerate(self.registered_collections[node])}
        indices = [self._indices[node][nodeid] for nodeid, completed in work_unit.items() if not completed]
        self._pending[id(workload)] += len(indices)
        node.send_runtest_some(indices)

    def mark_test_complete(self, node, item_index: int, duration: float = 0) -> None:
        self._pending[id(self.assigned_work[node])] -= 1  # before the parent reschedules on the count
        super().mark_test_complete(node, item_index, duration)

    def _pending_of(self, workload: dict) -> int:
        return self._pending[id(workload)]
