"""Collectives for a classifier sharded across data-parallel ranks (each rank holds `C / world` class centres), with
the backward passes the sharded loss needs. Every rank computes the same global loss from all ranks' features;
what differs is which class centres it scores them against.

- `GatherRows`: all ranks' features (or labels) stacked. Backward: each rank holds only its own centres' share of
  d loss / d features, so the shares are summed over ranks (AllReduce) and each rank keeps its own rows, times the
  number of ranks (the data-parallel gradient mean over ranks then gives the sum, the global loss's gradient).
- `SumOverRanks`: AllReduce(SUM) whose backward passes the upstream gradient through once: every rank's copy of the
  loss depends on the sum the same way, so d loss / d (this rank's part) is d loss / d sum.
- `MaxOverRanks`: the largest value per row over ranks, through AllGather (MindSpore's CPU AllReduce has SUM only);
  used for the softmax's shift, which carries no gradient.
"""

from __future__ import annotations

from mindspore import nn, ops


class GatherRows(nn.Cell):
    def __init__(self, rank: int, size: int):
        super().__init__()
        self.gather, self.reduce, self.rank, self.size = ops.AllGather(), ops.AllReduce(), rank, size

    def construct(self, x):
        return self.gather(x)

    def bprop(self, x, out, dout):
        b = x.shape[0]
        return (self.reduce(dout)[self.rank * b : (self.rank + 1) * b] * self.size,)


class SumOverRanks(nn.Cell):
    def __init__(self):
        super().__init__()
        self.reduce = ops.AllReduce()

    def construct(self, x):
        return self.reduce(x)

    def bprop(self, x, out, dout):
        return (dout,)


class MaxOverRanks(nn.Cell):
    """Element-wise maximum of a 1-D vector over ranks (no gradient)."""

    def __init__(self, size: int):
        super().__init__()
        self.gather, self.size = ops.AllGather(), size

    def construct(self, x):
        return ops.stop_gradient(self.gather(x).reshape(self.size, -1).max(0))
