"""Training and embedding throughput, and the share of step time spent in mining + loss.

    .venv/bin/python bench/throughput.py [--steps 20] [--repeats 3]

Prints images/s (median over repeats) for: the default config (compiled step alone, and end to end with the
data pipeline), ResNet-18 at 112x112 with 16 identities x 4 images, evaluation embedding, and the mining + loss
share (full step vs the same step with a trivial loss), per miner. Timings on shared 2-core machines are noisy:
compare ratios within one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from facenet.config.schema import register  # noqa: E402
from facenet.runtime import init_runtime  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"


def config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def time_loss(cfg, repeats: int, calls: int = 50) -> float:
    """Median ms of one mining + loss forward and backward on a P x K batch of embeddings (compiled)."""
    import mindspore as ms

    p, k = cfg.batch.identities, cfg.batch.images_per_identity
    loss = instantiate(cfg.loss, miner=instantiate(cfg.miner))
    grad = ms.jit(ms.value_and_grad(loss, 0, None, has_aux=True))
    e = np.random.default_rng(0).normal(size=(p * k, cfg.embedding_size)).astype(np.float32)
    e = ms.Tensor(e / np.linalg.norm(e, axis=1, keepdims=True))
    y = ms.Tensor(np.repeat(np.arange(p), k).astype(np.int32))
    grad(e, y)[1].asnumpy()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            out = grad(e, y)
        out[1].asnumpy()
        times.append(1000 * (time.perf_counter() - t) / calls)
    return statistics.median(times)


def build_step(cfg):
    from facenet.models.build import build_network
    from facenet.training.optim import build_optimizer
    from facenet.training.step import TrainStep

    net = build_network(cfg.backbone, cfg.head, cfg.preprocess.image_size)
    opt = build_optimizer(instantiate(cfg.optimizer), net, np.full(10_000, cfg.lr, np.float32))
    loss = instantiate(cfg.loss, miner=instantiate(cfg.miner))
    step = TrainStep(net, loss, opt)
    step.set_train(True)
    return net, step


def time_steps(step, cfg, steps: int, repeats: int) -> float:
    """Median images/s of the compiled step on random batches (compilation excluded)."""
    import mindspore as ms

    p, k, size = cfg.batch.identities, cfg.batch.images_per_identity, cfg.preprocess.image_size
    x = ms.Tensor(np.random.default_rng(0).uniform(-1, 1, (p * k, 3, size, size)).astype(np.float32))
    y = ms.Tensor(np.repeat(np.arange(p), k).astype(np.int32))
    step(x, y)[0].asnumpy()  # compile
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            out = step(x, y)
        out[0].asnumpy()
        rates.append(steps * p * k / (time.perf_counter() - t))
    return statistics.median(rates)


def time_pipeline(cfg, steps: int) -> float:
    """images/s end to end: mindspore.dataset pipeline (decode, augment, P x K batches) + compiled step."""
    from omegaconf import OmegaConf

    from facenet.data.images import TrainTransform
    from facenet.data.pipeline import train_batches
    from facenet.data.sampler import PKSampler

    data = instantiate(cfg.dataset).load(cfg.hardware.data_workers)
    p, k = cfg.batch.identities, cfg.batch.images_per_identity
    sampler = PKSampler(data.table["class"].to_numpy(), p, k, steps + 1, seed=0)
    tf = TrainTransform(cfg.preprocess.image_size, **OmegaConf.to_container(cfg.augment))
    batches = train_batches(
        data.table["path"].tolist(), data.table["class"].to_numpy(), sampler, tf, cfg.hardware.data_workers, 0, 1
    )
    _, step = build_step(cfg)
    step(*next(batches))[0].asnumpy()
    t = time.perf_counter()
    for images, labels in batches:
        out = step(images, labels)
    out[0].asnumpy()
    return steps * p * k / (time.perf_counter() - t)


def time_embedding(cfg, batch: int, repeats: int) -> float:
    import mindspore as ms

    from facenet.models.build import build_network

    net = build_network(cfg.backbone, cfg.head, cfg.preprocess.image_size)
    net.set_train(False)
    size = cfg.preprocess.image_size
    x = ms.Tensor(np.random.default_rng(0).uniform(-1, 1, (batch, 3, size, size)).astype(np.float32))
    net(x).asnumpy()
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(5):
            out = net(x)
        out.asnumpy()
        rates.append(5 * batch / (time.perf_counter() - t))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()
    register()
    init_runtime("CPU", 0, "GRAPH")
    default = config(f"data_dir={args.data_dir}")
    r18 = config("backbone=resnet18", "preprocess.image_size=112", "batch.identities=16", "batch.images_per_identity=4")
    print(f"{'what':<55s} {'images/s':>10s}", flush=True)
    for name, cfg in (("default (resnet_tiny @64, 16x4)", default), ("resnet18 @112, 16x4", r18)):
        _, step = build_step(cfg)
        print(f"{'train step, ' + name:<55s} {time_steps(step, cfg, args.steps, args.repeats):10.1f}", flush=True)
        print(
            f"{'embed batch 128, ' + name.split(',')[0]:<55s} {time_embedding(cfg, 128, args.repeats):10.1f}",
            flush=True,
        )
    rate = time_pipeline(default, args.steps * 2)
    print(f"{'train end to end incl. data pipeline, default':<55s} {rate:10.1f}", flush=True)
    header = f"{'mining + loss (fwd + bwd) share of a step':<55s} {'loss ms':>8s} {'step ms':>8s} {'share':>7s}"
    print("\n" + header)
    for name, base in (("default", []), ("resnet18 @112", ["backbone=resnet18", "preprocess.image_size=112"])):
        for miner in ("batch_all", "batch_hard", "semi_hard"):
            cfg = config(*base, f"miner={miner}", f"data_dir={args.data_dir}")
            _, step = build_step(cfg)
            step_ms = (
                1000
                * cfg.batch.identities
                * cfg.batch.images_per_identity
                / time_steps(step, cfg, args.steps, args.repeats)
            )
            loss_ms = time_loss(cfg, args.repeats)
            print(
                f"{name + ', ' + miner:<55s} {loss_ms:8.2f} {step_ms:8.1f} {100 * loss_ms / step_ms:6.1f}%", flush=True
            )


if __name__ == "__main__":
    main()
