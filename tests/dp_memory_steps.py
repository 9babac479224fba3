"""Run by msrun (tests/test_distributed.py): three data-parallel training steps with a cross-batch memory and
hardware.mine_global_batch=true on fixed per-rank batches; each rank writes its losses, the starting and final
weights and its memory, for the single-process oracle to redo.  Usage: msrun ... tests/dp_memory_steps.py OUT_DIR"""

import sys
from pathlib import Path

import mindspore as ms
import numpy as np

from facenet.training.setup import build_step
from tests.dp_one_step import start_rank

OVERRIDES = [
    "experiment=smoke",
    "hardware=cpu_dp",
    "hardware.mine_global_batch=true",
    "optimizer=sgd",
    "lr=0.05",
    "lr_schedule=constant",
    "miner=semi_hard",
    "margin=0.5",
    "miner.memory.size=40",
    "miner.memory.start_step=1",
    "batch.identities=4",
]
STEPS = 3  # 16 global images a step into 40 slots: the third step wraps round


def batch(rank: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """8 images of 4 identities per rank and step; identities 0 and 1 on both ranks (positives across ranks),
    the others new each step (stored ones become the later steps' negatives)."""
    rng = np.random.default_rng([rank, step])
    labels = np.repeat(np.array([0, 1, 2 + 2 * rank + 4 * step, 3 + 2 * rank + 4 * step], np.int32), 2)
    return rng.normal(0, 1, (8, 3, 32, 32)).astype(np.float32), labels


def main(out: Path) -> None:
    cfg, rank, size, net, start = start_rank(OVERRIDES)
    step, _ = build_step(cfg, net, steps_per_epoch=STEPS)
    losses, fractions = [], []
    names = step.loss.TELEMETRY
    for s in range(STEPS):
        images, labels = batch(rank, s)
        loss, telemetry = step(ms.Tensor(images), ms.Tensor(labels))
        losses.append(float(loss.asnumpy()))
        fractions.append(float(telemetry.asnumpy()[names.index("memory_negative_fraction")]))
    after = {p.name: p.asnumpy() for p in net.trainable_params()}
    memory = {p.name: p.asnumpy() for p in step.memory.get_parameters()}
    np.savez(
        out / f"rank{rank}.npz",
        losses=np.array(losses),
        fractions=np.array(fractions),
        size=size,
        **{f"start/{k}": v for k, v in start.items()},
        **{f"after/{k}": v for k, v in after.items()},
        **{f"mem/{k}": v for k, v in memory.items()},
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
