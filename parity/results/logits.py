"""Numbers of one logit row that a result records: its probabilities, and a fingerprint identical rows share."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fingerprint(logits: np.ndarray) -> list[float]:
    """A few numbers that identical logit rows share (min, max, mean, std, first and last logit): the
    identical-logits finding compares them across images without keeping any image's logits."""
    row = np.asarray(logits, np.float64).ravel()
    return [float(row.min()), float(row.max()), float(row.mean()), float(row.std()), float(row[0]), float(row[-1])]
