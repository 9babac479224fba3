"""Optimizers from config: a `_partial_` MindSpore optimizer completed with parameter groups and per-step lr."""

from __future__ import annotations

import functools

import mindspore as ms
import numpy as np
from mindspore import nn

from facenet.training.schedules import float32_lr


def _lr(values: np.ndarray) -> float | ms.Tensor:
    # a one-step run gets a plain float: MindSpore treats a 1-element lr tensor as a malformed dynamic schedule
    return float(values[0]) if values.size == 1 else ms.Tensor(values)


def build_optimizer(
    factory: functools.partial, net: nn.Cell, lr: np.ndarray, backbone_lr_scale: float = 1.0, extra: list | tuple = ()
) -> nn.Optimizer:
    """Call the partial optimizer (from `optimizer=` config) with parameter groups and per-step learning rates.

    The configured `weight_decay` applies to convolution and dense weights only: decaying BatchNorm scales and
    biases hurts, and the reference implementations avoid it. `backbone_lr_scale` != 1 gives the backbone's
    parameters (`backbone.*`) the schedule times that factor, the rest the schedule itself (fine-tuning).
    Parameters that do not require gradients (frozen) are left out. `extra`: more parameters trained with the
    network at the head's rate (a classification loss's class weights; decayed like the network's weights), after
    the network's in the optimiser's parameter order.
    """
    weight_decay = float(factory.keywords.get("weight_decay", 0.0))
    lr = np.asarray(lr, np.float32)

    def groups(params: list, **extra) -> list[dict]:
        return [
            {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay, **extra},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, **extra},
        ]

    params = net.trainable_params()
    if backbone_lr_scale == 1.0:
        parts = groups(params)
    else:
        backbone = [p for p in params if p.name.startswith("backbone.")]
        parts = groups([p for p in params if not p.name.startswith("backbone.")])
        scaled = float32_lr(
            lr.astype(np.float64) * backbone_lr_scale, "the backbone's lr", "lower finetune.backbone_lr_scale"
        )
        parts += groups(backbone, lr=_lr(scaled))
    parts += groups(list(extra))  # last: a sharded classifier's gradients skip the data-parallel mean
    return factory([g for g in parts if g["params"]], learning_rate=_lr(lr))
