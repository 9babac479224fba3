"""The compiled training step: forward, loss (with in-graph mining), gradients, optimizer update."""

from __future__ import annotations

import mindspore as ms
from mindspore import nn, ops

from facenet.losses.classifier import sharded
from facenet.runtime import world


class _GatherForMining(nn.Cell):
    """All-gather of embeddings whose backward needs no communication: every rank computes the same global loss,
    so each holds the whole upstream gradient and keeps its own rows, times the number of ranks (what the
    reduce-scatter MindSpore's CPU backend lacks would give); the mean over ranks of the parameter gradients is
    then exactly the gradient of the global loss."""

    def __init__(self, rank: int, size: int):
        super().__init__()
        self.gather, self.rank, self.size = ops.AllGather(), rank, size

    def construct(self, x):
        return self.gather(x)

    def bprop(self, x, out, dout):
        b = x.shape[0]
        return (dout[self.rank * b : (self.rank + 1) * b] * self.size,)


class TrainStep(nn.Cell):
    """step(images, labels, *loss_inputs) -> (loss, telemetry); parameters of network, loss (a classifier's class
    weights, a cross-batch memory's state) and optimizer live here, so saving this cell saves everything needed to
    resume (weights, moments, global step, memory)."""

    def __init__(self, network: nn.Cell, loss: nn.Cell, optimizer: nn.Optimizer, mine_global_batch: bool = False):
        """`mine_global_batch` (data parallel): all-gather every rank's embeddings and labels and mine triplets over
        the global batch; each rank computes the same global loss, and the all-gather's backward (reduce-scatter)
        times the mean over ranks gives exactly the gradient of that loss. A memory then stores the global batch,
        the same on every rank."""
        super().__init__(auto_prefix=False)  # keep the network's own parameter names (as TrainOneStepCell does)
        self.network, self.loss, self.optimizer = network, loss, optimizer
        self.memory = getattr(loss, "memory", None)
        rank, size = world()
        if self.memory is not None and size > 1 and not mine_global_batch:
            raise AssertionError("a cross-batch memory under data parallel needs the global batch")
        self.gather = _GatherForMining(rank, size) if mine_global_batch and size > 1 else None
        self.gather_labels = ops.AllGather() if self.gather is not None else None
        self.grad_fn = ms.value_and_grad(self.forward, None, optimizer.parameters, has_aux=True)
        # data parallel: every rank applies the mean of all ranks' gradients, so weights stay identical; a sharded
        # classifier's (the optimiser's last parameters) are each rank's own rows, complete already: not reduced
        own = len(loss.trainable_params()) if sharded(loss) else 0
        self.shared = len(optimizer.parameters) - own
        if own and [p.name for p in optimizer.parameters[self.shared :]] != [p.name for p in loss.trainable_params()]:
            raise AssertionError("a sharded classifier's parameters must come last in the optimiser")
        shared = optimizer.parameters[: self.shared]
        self.reducer = nn.DistributedGradReducer(shared, mean=True, degree=size) if size > 1 else None

    def forward(self, images, labels, *inputs):
        embeddings = self.network.features(images) if self.loss.FEATURES else self.network(images)
        if self.gather is not None:
            embeddings, labels = self.gather(embeddings), self.gather_labels(labels)
        loss, telemetry = self.loss(embeddings, labels, *inputs)
        return loss, telemetry, embeddings, labels  # the last two for a memory (aux outputs: no gradient)

    def construct(self, images, labels, *inputs):
        """`inputs`: the loss's `step_inputs` of this step (none for most losses)."""
        (loss, telemetry, embeddings, labels), grads = self.grad_fn(images, labels, *inputs)
        if self.reducer is not None:
            grads = self.reducer(grads[: self.shared]) + grads[self.shared :]
        updated = self.optimizer(grads)
        if self.memory is not None:  # the batch enters after this step's mining read the memory
            self.memory.enqueue(ops.depend(embeddings, updated), ops.depend(labels, updated))
        return loss, telemetry
