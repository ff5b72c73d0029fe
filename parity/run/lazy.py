"""Images computed when a test first asks for them, each once, still a DALI batch at a time.

pytest runs the selected items in order; the plan is that order. When an item needs an image that is not
computed, a stream of :meth:`parity.run.harness.Harness.run` starts at that image and goes on over the images
the following items need (its look-ahead), so ``-k one_image`` computes one image and ``-x`` stops the
computing at the next batch. Under pytest-xdist a stream stays within the image's ``group`` (the batches of
images the scheduler sends to one worker), so no image is computed on two workers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Generator, Sequence
from pathlib import Path


class LazyImages:
    def __init__(self, run: Callable, paths: dict[str, Path], on_image: Callable,
                 group: Callable[[str], object] = lambda image: None):
        self.run = run  # paths -> iterator of ImageResult (Harness.run)
        self.paths = paths  # image id -> file
        self.on_image = on_image  # called once per computed ImageResult, in the process that computed it
        self.group = group  # images with the same group may share a stream
        self.order: list[str] = []
        self.remaining: Counter = Counter()  # items still to run, per image
        self.done: dict = {}
        self.computed: set[str] = set()  # ids only: results are dropped, an image is never computed twice
        self._stream: Generator | None = None
        self._queued: set[str] = set()
        self.error: Exception | None = None  # a failed stream fails every later image: none retries

    def plan(self, images: list[str], also: Sequence[str] = ()) -> None:
        """``images``: the image of each selected item, in run order; ``also``: images a whole-run check needs
        after them (computed, never kept)."""
        self.order = list(dict.fromkeys([*images, *also]))
        self.remaining = Counter(images)

    def get(self, image: str):
        """The :class:`~parity.run.harness.ImageResult` of ``image``, computing it (and its look-ahead) if needed."""
        if image in self.done:
            return self.done[image]
        if self.error is not None:
            raise self.error
        if image not in self._queued:
            self._start(image)
        try:
            while image not in self.done:
                assert self._stream is not None  # started above, or by an earlier image's look-ahead
                result = next(self._stream)
                self.computed.add(result.image)
                self.on_image(result)
                if self.remaining[result.image] > 0 or result.image == image:
                    self.done[result.image] = result
        except Exception as exc:
            self.error = exc
            self.close()
            raise
        return self.done.pop(image) if self.remaining[image] <= 0 else self.done[image]

    def compute_all(self) -> None:
        """Every planned image not computed yet (for a check over the whole run: degenerate outputs)."""
        for image in self.order:
            if image not in self.computed:
                self.get(image)

    def release(self, image: str) -> None:
        """One item of ``image`` has run; its result is dropped after the last one."""
        self.remaining[image] -= 1
        if self.remaining[image] <= 0:
            self.done.pop(image, None)

    def _start(self, image: str) -> None:
        self.close()
        at = self.order.index(image) if image in self.order else len(self.order)
        group = self.group(image)
        ids = [image] + [i for i in self.order[at + 1:] if i not in self.computed and self.group(i) == group]
        self._queued = set(ids)
        self._stream = self.run([self.paths[i] for i in ids])

    def close(self) -> None:
        """Stop the running stream (its thread pools and any Triton server) without computing more."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        self._queued = set()
