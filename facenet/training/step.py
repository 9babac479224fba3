"""The compiled training step: forward, triplet loss with in-graph mining, gradients, optimizer update."""

from __future__ import annotations

import mindspore as ms
from mindspore import nn

from facenet.runtime import world


class TrainStep(nn.Cell):
    """step(images, labels) -> (loss, telemetry); parameters of network and optimizer live here, so saving this
    cell saves everything needed to resume (weights, moments, global step)."""

    def __init__(self, network: nn.Cell, loss: nn.Cell, optimizer: nn.Optimizer):
        super().__init__(auto_prefix=False)  # keep the network's own parameter names (as TrainOneStepCell does)
        self.network, self.loss, self.optimizer = network, loss, optimizer
        self.grad_fn = ms.value_and_grad(self.forward, None, optimizer.parameters, has_aux=True)
        _, size = world()
        # data parallel: every rank applies the mean of all ranks' gradients, so weights stay identical
        self.reducer = nn.DistributedGradReducer(optimizer.parameters, mean=True, degree=size) if size > 1 else None

    def forward(self, images, labels):
        return self.loss(self.network(images), labels)

    def construct(self, images, labels):
        (loss, telemetry), grads = self.grad_fn(images, labels)
        if self.reducer is not None:
            grads = self.reducer(grads)
        self.optimizer(grads)
        return loss, telemetry


TELEMETRY = ("active_fraction", "d_ap", "d_an", "embedding_norm")
