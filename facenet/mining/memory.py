"""A cross-batch memory (XBM: Wang et al., CVPR 2020, "Cross-Batch Memory for Embedding Learning"): the embeddings
and labels of the last M training images, held in a ring buffer inside the compiled training step, so that each
batch's anchors find their negatives among the batch and the memory together.

- State: non-trainable parameters of the step (`memory.rows` (M, D + 2): each embedding with its squared norm,
  `memory.labels`, `memory.written`: the step each slot was written at, -1 while empty; `memory.position`, the
  next slot to write; `memory.step`, the batches stored so far). Training checkpoints hold them, so a resumed
  run continues with the memory it stopped with; the network's own load and export never see them.
- Order: a step mines against the memory as it was before the step, and its batch enters afterwards (`enqueue`,
  called by the training step once the loss and the update are computed): the batch is never in the memory it
  is mined against.
- Negatives only: a stored embedding is a negative of every anchor of another identity, and nothing to an anchor
  of its own identity (the batch holds K fresh images of each anchor's identity; a stored one is an older
  network's view of one of the same few images). So no embedding is ever paired with a stored copy of itself.
- Constants: stored embeddings carry no gradient (older weights computed them); the loss's gradient flows
  through the batch alone.
- Warm-up: the memory fills from step 0 and is mined from `start_step` on; before that, and in slots not yet
  written, it is no one's negative.
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn, ops

from facenet.mining.base import BIG, MemorySettings

# added to the squared distance of a slot not in use (empty, or every slot before `start_step`): then above BIG, so
# the miners see no negative there
UNUSED = 2 * BIG


class CrossBatchMemory(nn.Cell):
    """The last `settings.size` embeddings of `dim` dimensions, with their labels.

    Each embedding m is stored as the row [m, 1, |m|^2] (`memory.rows`, (M, D + 2)): one matrix product of the
    anchors' rows [-2a, |a|^2, 1] with them gives every squared distance |a|^2 + |m|^2 - 2 a.m, without (B, M)
    additions (each costs more than the product on this backend). An empty slot's row is [0, 1, UNUSED]."""

    def __init__(self, settings: MemorySettings, dim: int):
        super().__init__()
        m = settings.size
        if m < 1:
            raise ValueError("a cross-batch memory needs size >= 1")
        self.size, self.dim, self.start_step = m, int(dim), settings.start_step

        def state(name: str, value: np.ndarray) -> Parameter:
            return Parameter(ms.Tensor(value), name=f"memory.{name}", requires_grad=False)

        rows = np.zeros((m, self.dim + 2), np.float32)
        rows[:, self.dim], rows[:, self.dim + 1] = 1.0, UNUSED
        self.rows = state("rows", rows)
        self.labels = state("labels", np.full(m, -1, np.int32))
        self.written = state("written", np.full(m, -1, np.int32))
        self.position = state("position", np.zeros(1, np.int32))
        self.step = state("step", np.zeros(1, np.int32))
        self.product = ops.MatMul(transpose_b=True)

    def embeddings(self):
        """(M, D): the stored embeddings (zeros in empty slots), constants."""
        return ops.stop_gradient(self.rows[:, : self.dim])

    def in_use(self):
        """(M,) bool: slots written and mined this step (`start_step` reached)."""
        return ops.logical_and(self.written >= 0, self.step >= self.start_step)

    def squared_distances(self, anchors):
        """(B, M) squared L2 distances of `anchors` to the stored embeddings, at least BIG where a slot is not in
        use; a constant (no gradient)."""
        b = anchors.shape[0]
        anchors = ops.stop_gradient(anchors)
        waiting = (self.step < self.start_step).astype(ms.float32) * UNUSED  # before start_step: nothing in use
        norms = (anchors * anchors).sum(axis=1, keepdims=True) + waiting
        left = ops.concat([-2.0 * anchors, norms, ops.ones((b, 1), anchors.dtype)], axis=1)
        return ops.relu(self.product(left, ops.stop_gradient(self.rows)))

    def negatives(self, labels):
        """(B, M) bool: the stored embeddings of other identities than each anchor's (in use or not)."""
        return ops.not_equal(labels.reshape(-1, 1), self.labels.reshape(1, -1))

    def age(self):
        """(M,) float: steps since each slot was written (0 while empty)."""
        return (self.step - self.written).astype(ms.float32) * (self.written >= 0).astype(ms.float32)

    def enqueue(self, embeddings, labels):
        """Write a batch (B <= M rows) over the oldest slots, from the write position on, and advance."""
        b = embeddings.shape[0]
        slots = (self.position + ops.arange(b, dtype=ms.int32)) % self.size
        embeddings = ops.stop_gradient(embeddings)
        norms = (embeddings * embeddings).sum(axis=1, keepdims=True)
        rows = ops.concat([embeddings, ops.ones((b, 1), embeddings.dtype), norms], axis=1)
        ops.scatter_update(self.rows, slots, rows)
        ops.scatter_update(self.labels, slots, labels.astype(ms.int32))
        ops.scatter_update(self.written, slots, ops.broadcast_to(self.step, (b,)))
        ops.assign(self.position, (self.position + b) % self.size)
        ops.assign(self.step, self.step + 1)
