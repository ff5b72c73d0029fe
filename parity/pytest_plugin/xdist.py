"""pytest-xdist scheduling for parity items: a work unit is whole DALI batches of images (all their stage
items; ``scope`` says which), so every image is computed once in the whole run, on one worker, still
batched; other tests keep pytest-xdist's own grouping by class or module (``--dist loadscope``).

A unit that ``waits`` (a check over every image, whose verdict is the controller's) goes to the last
worker left, after every other worker has finished: a worker holds back its last item until it is sent
more work or told to stop, so the others are told to stop, and the survivor runs the unit after its own
last item. Each worker's reports arrive in order, so every image's record reaches the controller first.

A crashed worker's whole workload goes back to the queue (``LoadScopeScheduling.remove_node``), its finished
units too: a worker handed one of those would be sent no item, never report, and never be sent more (the run
hung). Finished units are dropped from the queue instead; the unit that crashed runs again on the worker that
replaces it, within pytest-xdist's ``--max-worker-restart``.

Two steps of ``LoadScopeScheduling`` take time in proportion to the run's size for every item it handles,
which a validation set turns quadratic (ImageNet's 50,000 images are 200,000 items): the index of an item
in a worker's collection (``list.index``) and a worker's pending items (a sum over every unit it was ever
sent, after each report). Here both are lookups.
"""

from __future__ import annotations

from collections import Counter

from xdist.scheduler import LoadScopeScheduling


class BatchScheduling(LoadScopeScheduling):
    def __init__(self, config, log, scope, waits=lambda nodeid: False):
        super().__init__(config, log)
        self._parity_scope = scope  # node id -> work unit, None for a node that is not parity's
        self._waits = waits  # node id -> whether its unit goes after every other unit has been reported
        self._indices: dict = {}  # worker -> {node id: index in its collection}
        self._pending: Counter = Counter()  # id of a worker's workload -> its items not reported yet

    def _split_scope(self, nodeid: str) -> str:
        return self._parity_scope(nodeid) or super()._split_scope(nodeid)

    def add_node(self, node) -> None:
        super().add_node(node)
        self._pending[id(self.assigned_work[node])] = 0  # (an id a removed worker's workload had is reset)

    def _assign_work_unit(self, node) -> None:
        if node not in self.registered_collections:  # a replacement for a crashed worker, still collecting:
            return  # its own collection's end schedules it
        for finished in [s for s, unit in self.workqueue.items() if all(unit.values())]:
            del self.workqueue[finished]  # put back with a crashed worker's workload
        if not self.workqueue:
            node.shutdown()
            return
        scope = next((s for s, unit in self.workqueue.items() if self._ready(unit, node)), None)
        if scope is None:  # only units that wait are left
            if any(other is not node and not other.shutting_down for other in self.assigned_work):
                node.shutdown()  # another worker stays for them; remove_node sends them when this one is done
            return
        work_unit = self.workqueue.pop(scope)
        workload = self.assigned_work.setdefault(node, {})
        workload[scope] = work_unit
        if node not in self._indices:
            self._indices[node] = {nodeid: i for i, nodeid in enumerate(self.registered_collections[node])}
        indices = [self._indices[node][nodeid] for nodeid, completed in work_unit.items() if not completed]
        self._pending[id(workload)] += len(indices)
        node.send_runtest_some(indices)

    def _ready(self, unit: dict, node) -> bool:
        if not any(self._waits(nodeid) for nodeid in unit):
            return True
        others = any(not any(self._waits(n) for n in u) for u in self.workqueue.values())
        return not others and list(self.assigned_work) == [node]

    def mark_test_complete(self, node, item_index: int, duration: float = 0) -> None:
        self._pending[id(self.assigned_work[node])] -= 1  # before the parent reschedules on the count
        super().mark_test_complete(node, item_index, duration)

    def _pending_of(self, workload: dict) -> int:
        return self._pending[id(workload)]

    def remove_node(self, node):
        key = id(self.assigned_work[node])
        crashed = super().remove_node(node)  # (a crashed worker's unfinished units go back to the queue)
        del self._pending[key]
        if len(self.assigned_work) == 1 and self.workqueue:  # the survivor: what waited is its now
            self._reschedule(next(iter(self.assigned_work)))
        return crashed
