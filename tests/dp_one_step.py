"""Run by msrun (tests/test_distributed.py): one data-parallel training step with hardware.mine_global_batch=true
on fixed per-rank batches; each rank writes its batch, the starting weights, the loss and the updated weights, for
the single-process oracle to redo.  Usage: msrun ... tests/dp_one_step.py OUT_DIR"""

import sys
from pathlib import Path

import mindspore as ms
import numpy as np
from hydra import compose, initialize_config_dir

from facenet.config.schema import register
from facenet.runtime import init_runtime, world
from facenet.training.setup import build_model, build_step

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = [
    "experiment=smoke",
    "hardware=cpu_dp",
    "hardware.mine_global_batch=true",
    "optimizer=sgd",
    "lr=0.05",
    "lr_schedule=constant",
    "miner=batch_hard",
    "margin=0.5",
]


def batch(rank: int) -> tuple[np.ndarray, np.ndarray]:
    """8 images of 4 identities per rank; identities 0 and 1 on both ranks (positives across ranks)."""
    rng = np.random.default_rng(rank)
    labels = np.repeat(np.array([0, 1, 2 + 2 * rank, 3 + 2 * rank], np.int32), 2)
    return rng.normal(0, 1, (8, 3, 32, 32)).astype(np.float32), labels


def config(overrides: list[str] = OVERRIDES):
    register()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def start_rank(overrides: list[str]):
    """This rank's (config, rank, world size, seeded network, its starting weights by name)."""
    cfg = config(overrides)
    init_runtime("CPU", 0, "GRAPH", None, distributed=True)
    rank, size = world()
    ms.set_seed(0)
    net = build_model(cfg)
    return cfg, rank, size, net, {p.name: p.asnumpy().copy() for p in net.trainable_params()}


def main(out: Path) -> None:
    cfg, rank, size, net, start = start_rank(OVERRIDES)
    step, _ = build_step(cfg, net, steps_per_epoch=1)
    images, labels = batch(rank)
    loss, _ = step(ms.Tensor(images), ms.Tensor(labels))
    after = {p.name: p.asnumpy() for p in net.trainable_params()}
    np.savez(
        out / f"rank{rank}.npz",
        loss=float(loss.asnumpy()),
        size=size,
        **{f"start/{k}": v for k, v in start.items()},
        **{f"after/{k}": v for k, v in after.items()},
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
