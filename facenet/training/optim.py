"""Optimizers from config: a `_partial_` MindSpore optimizer completed with parameter groups and per-step lr."""

from __future__ import annotations

import functools

import mindspore as ms
import numpy as np
from mindspore import nn


def build_optimizer(factory: functools.partial, net: nn.Cell, lr: np.ndarray) -> nn.Optimizer:
    """Call the partial optimizer (from `optimizer=` config) with parameter groups and per-step learning rates.

    The configured `weight_decay` applies to convolution and dense weights only: decaying BatchNorm scales and
    biases hurts, and the reference implementations avoid it.
    """
    params = net.trainable_params()
    weight_decay = float(factory.keywords.get("weight_decay", 0.0))
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    lr = np.asarray(lr, np.float32)
    # a one-step run gets a plain float: MindSpore treats a 1-element lr tensor as a malformed dynamic schedule
    return factory(groups, learning_rate=float(lr[0]) if lr.size == 1 else ms.Tensor(lr))
