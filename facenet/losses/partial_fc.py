"""Partial FC (An et al. 2021): each step scores the batch against the batch's own classes plus a random sample of
the others, a fixed number `sampled_count` of class centres in all (static shapes, GRAPH mode). The random keys are
made on the host from (seed, step) alone (`sample_keys`), so a resumed run samples exactly what an uninterrupted one
did; in the graph the batch's classes get key + 2 and the top `k` keys are taken, so every positive class is always
among them (under a sharded classifier: every positive class a rank holds, among its `k`). At rate 1 nothing is
sampled: the full softmax."""

from __future__ import annotations

import math

import mindspore as ms
import numpy as np
from mindspore import ops

from facenet.errors import ConfigError


def check_rate(rate: float) -> float:
    if not 0 < rate <= 1:
        raise ConfigError(f"loss.sample_rate must be in (0, 1], got {rate}")
    return float(rate)


def sampled_count(num_classes: int, rate: float, batch: int) -> int:
    """Class centres scored per step: ceil(rate x classes), at least the batch size (room for every positive)."""
    return min(num_classes, max(math.ceil(rate * num_classes), batch))


def sample_keys(seed: int, step: int, num_classes: int) -> ms.Tensor:
    """Uniform [0, 1) keys of every class for global step `step`."""
    return ms.Tensor(np.random.default_rng([seed, step, 7919]).random(num_classes, dtype=np.float32))


def sample_classes(labels, ids, keys, k: int):
    """Positions (k,) of the sampled centres among `ids` (the classes of the rows held, keyed by `keys`): every
    label's class held here, then the largest keys."""
    positive = (labels.astype(ms.int32).expand_dims(1) == ids.expand_dims(0)).astype(ms.float32).max(axis=0)
    _, index = ops.topk(keys + 2.0 * positive, k)
    return index
