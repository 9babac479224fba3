"""Run by msrun (tests/test_distributed.py): one data-parallel training step with loss=arcface, whose class centres
are sharded over the ranks (7 identities: 4 centres on rank 0, 3 and a padding row on rank 1), on fixed per-rank
batches; each rank writes its batch's loss, the starting and updated network weights and its share of the centres,
for the single-process oracle to redo.  Usage: msrun ... tests/dp_sharded_step.py OUT_DIR"""

import sys
from pathlib import Path

import mindspore as ms
import numpy as np

from facenet.training.setup import build_loss, build_step
from tests.dp_one_step import start_rank

CLASSES = 7
OVERRIDES = [
    "experiment=smoke",
    "hardware=cpu_dp",
    "loss=arcface",
    "loss.s=8",
    "optimizer=sgd",
    "lr=0.1",
    "lr_schedule=constant",
]


def batch(rank: int) -> tuple[np.ndarray, np.ndarray]:
    """8 images per rank whose classes lie on both ranks' shards (and class 0 on both ranks' batches)."""
    rng = np.random.default_rng(10 + rank)
    labels = np.array([[0, 1, 4, 6, 0, 5, 2, 2], [0, 3, 3, 5, 6, 1, 4, 4]][rank], np.int32)
    return rng.normal(0, 1, (8, 3, 32, 32)).astype(np.float32), labels


def main(out: Path) -> None:
    cfg, rank, size, net, start = start_rank(OVERRIDES)
    loss = build_loss(cfg, CLASSES)
    shard = loss.weight.asnumpy().copy()
    step, _ = build_step(cfg, net, 1, loss)
    images, labels = batch(rank)
    value, telemetry = step(ms.Tensor(images), ms.Tensor(labels))
    after = {p.name: p.asnumpy() for p in net.trainable_params()}
    np.savez(
        out / f"rank{rank}.npz",
        loss=float(value.asnumpy()),
        size=size,
        telemetry=telemetry.asnumpy(),
        shard_start=shard,
        shard_after=loss.weight.asnumpy(),
        offset=loss.offset,
        **{f"start/{k}": v for k, v in start.items()},
        **{f"after/{k}": v for k, v in after.items()},
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
