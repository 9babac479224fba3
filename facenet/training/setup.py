"""`build_training(cfg)`: the parts of a training run (data and its sharding, network, loss, optimiser, compiled
step, evaluation pairs), built from config in one place. The training loop, the benchmarks and the tests use it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mindspore as ms
import numpy as np
import pandas as pd
from hydra.utils import get_class, get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from facenet.align import STYLES
from facenet.data.datasets import TrainSet
from facenet.data.images import NORMALIZATIONS, EvalTransform, TrainTransform, normalization
from facenet.data.pipeline import BadImages, train_batches
from facenet.errors import ConfigError
from facenet.evaluation.base import Protocol
from facenet.losses.base import EmbeddingLoss
from facenet.losses.classifier import sharded
from facenet.mining.base import MemorySettings
from facenet.models.build import build_network
from facenet.models.embedding import EmbeddingNet, count_parameters
from facenet.models.io import load_network_weights, read_checkpoint, read_spec, sidecar
from facenet.models.load import resolve_checkpoint
from facenet.runtime import mixed_precision, world
from facenet.tracking import Tracker
from facenet.training.finetune import apply_finetune
from facenet.training.optim import build_optimizer
from facenet.training.step import TrainStep

log = logging.getLogger(__name__)

ALIGN_STYLES = (None, *STYLES)


@dataclass
class Evaluation:
    protocol: Protocol
    data: Any  # protocol.prepare(): pair sets, open-set trials, templates
    transform: EvalTransform

    @property
    def size(self) -> int:
        """The comparisons it makes (pairs, probes)."""
        return self.protocol.size(self.data)

    def run(self, net, workers: int, tracker: Tracker, step: int, out_dir: Path, prefix: str) -> dict[str, float]:
        return self.protocol.evaluate(net, self.data, self.transform, workers, tracker, step, out_dir, prefix)


@dataclass
class Training:
    """What `build_training` returns: everything a training run is made of."""

    cfg: DictConfig
    data: TrainSet  # the whole training set
    table: pd.DataFrame  # the images this rank trains on (id, name, class, path)
    sampler: Any  # PKSampler or TripletSampler: epoch_indices(epoch), steps, batch_size, layout
    evaluation: Evaluation  # the run's own protocol: its accuracy picks best.ckpt
    net: EmbeddingNet
    step: TrainStep  # network + loss + optimiser: saving it saves everything a resume needs
    lr: np.ndarray  # learning rate per global step
    augment: TrainTransform
    also_eval: dict[str, Evaluation]  # more protocols, evaluated at the start (train.eval_at_start) and the end
    rank: int = 0
    world_size: int = 1

    @property
    def loss(self) -> EmbeddingLoss:
        return self.step.loss

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps

    @property
    def is_main(self) -> bool:
        """Rank 0 evaluates, tracks and writes checkpoints (every rank holds the same weights)."""
        return self.rank == 0

    def batches(self, epoch: int, skip: int = 0, bad: BadImages | None = None) -> Iterator[tuple]:
        """Epoch `epoch`'s (images, labels) batches from batch `skip` on, built ahead by the data workers."""
        return train_batches(
            self.data.images(self.table),
            self.table["class"].to_numpy(),
            self.sampler,
            self.augment,
            self.cfg.hardware.data_workers,
            self.cfg.seed,
            epoch,
            skip,
            bad,
        )


def validate(cfg: DictConfig) -> None:
    """Range checks the schema's types cannot express, before any data is touched."""
    checks = {
        "epochs": (cfg.epochs, 1),
        "train.eval_every": (cfg.train.eval_every, 1),
        "train.ckpt_every": (cfg.train.ckpt_every, 1),
        "train.keep_checkpoint_max": (cfg.train.keep_checkpoint_max, 1),
        "preprocess.image_size": (cfg.preprocess.image_size, 8),
        "hardware.data_workers": (cfg.hardware.data_workers, 1),
        "train.max_bad_images": (cfg.train.max_bad_images, 0),
    }
    if cfg.train.max_minutes is not None:
        checks["train.max_minutes"] = (cfg.train.max_minutes, 1e-9)
    if cfg.train.steps_per_epoch is not None:
        checks["train.steps_per_epoch"] = (cfg.train.steps_per_epoch, 1)
    bad = [f"{key}={value} (must be >= {low})" for key, (value, low) in checks.items() if value < low]
    if cfg.finetune.backbone_lr_scale <= 0:
        bad.append(
            f"finetune.backbone_lr_scale={cfg.finetune.backbone_lr_scale} (must be > 0; to keep the backbone "
            "fixed, list its stages in finetune.freeze)"
        )
    if cfg.preprocess.normalize not in NORMALIZATIONS:
        bad.append(f"preprocess.normalize={cfg.preprocess.normalize} (one of {', '.join(NORMALIZATIONS)})")
    if cfg.preprocess.align.style not in ALIGN_STYLES:
        bad.append(f"preprocess.align.style={cfg.preprocess.align.style} (null or one of {', '.join(STYLES)})")
    clash = sorted(set(cfg.also_eval) & set(RESERVED_PREFIXES))
    if clash:
        bad.append(f"also_eval names {clash} (taken by the run's own metrics: {', '.join(RESERVED_PREFIXES)})")
    if bad:
        raise ConfigError("invalid settings: " + ", ".join(bad))
    MemorySettings(**cfg.miner.memory)  # its ranges, in one line, before the miner is built with them
    check_memory(cfg)
    loss = build_loss(cfg, num_classes=2)  # the loss's own settings and its miner, before any data is read
    check_batches(cfg, get_class(cfg.batch._target_).layout)
    if cfg.train.health == "stop" and not loss.USES_MINER:
        raise ConfigError(
            f"train.health=stop watches triplet runs (collapse, a dead miner, a loss pinned at the "
            f"margin); {choice(cfg, 'loss')} has none of these: use train.health=warn or off (its "
            "telemetry still goes to telemetry.csv)"
        )


def check_batches(cfg: DictConfig, layout: str) -> None:
    """ConfigError unless the miner (if any) can mine batches of `layout` (pk | shuffle | triplets)."""
    miner = instantiate(cfg.miner)
    if miner is not None and miner.layout != "pk" and miner.layout != layout:
        raise ConfigError(f"{choice(cfg, 'miner')} needs batch={miner.layout}, not batch={layout}")
    if miner is not None and miner.layout == "pk" and layout == "triplets":
        raise ConfigError(
            f"{choice(cfg, 'miner')} mines P x K batches (batch=pk); batch=triplets holds offline "
            "(anchor, positive, negative) triplets, which miner=random_triplets trains on"
        )
    if miner is not None and layout == "shuffle":
        raise ConfigError(
            f"{choice(cfg, 'miner')} mines triplets in P x K batches; batch=shuffle does not promise "
            "two images of an identity in a batch: use batch=pk, or a classification loss "
            "(loss=softmax | arcface | cosface | combined)"
        )


def check_memory(cfg: DictConfig) -> None:
    """ConfigError unless `miner.memory` can work with this loss, miner, batch and data parallelism (before any
    data is read)."""
    memory = MemorySettings(**cfg.miner.memory)
    if not memory.size:
        return
    size = f"miner.memory.size={memory.size}"
    if not get_class(cfg.loss._target_).USES_MINER:
        raise ConfigError(
            f"{size} does not apply to {choice(cfg, 'loss')}: a cross-batch memory holds earlier "
            "embeddings for a triplet miner; a classification loss compares each image with its class "
            "centres instead; drop miner.memory.size"
        )
    if getattr(get_object(cfg.miner._target_), "layout", "pk") != "pk":
        raise ConfigError(
            f"{size} needs online mining on P x K batches; {choice(cfg, 'miner')} trains on offline "
            "triplets, with nothing to mine: use miner=semi_hard | batch_hard | batch_all (batch=pk), "
            "or drop the memory"
        )
    check_batches(cfg, get_class(cfg.batch._target_).layout)  # P x K batches, before their sizes are read
    ranks, batch = world()[1], cfg.batch.identities * cfg.batch.images_per_identity + cfg.batch.singletons
    if ranks > 1 and not cfg.hardware.mine_global_batch:
        raise ConfigError(
            f"{size} under data parallel needs hardware.mine_global_batch=true: every rank then mines "
            "and stores the same global batch, so the memories stay identical"
        )
    if memory.size < ranks * batch:
        whole = (
            f"the global batch ({ranks} ranks x {batch} = {ranks * batch} images)"
            if ranks > 1
            else f"a batch ({batch} images)"
        )
        least = ranks * batch
        raise ConfigError(
            f"{size} is smaller than {whole}: the memory keeps the newest M embeddings and takes a "
            f"whole batch each step; use at least {least} (e.g. {16 * least})"
        )


def build_data(cfg: DictConfig) -> tuple[TrainSet, pd.DataFrame, Any, Protocol, Any]:
    """(training set, this rank's share of it, its batch sampler, evaluation protocol, its data).

    Data parallel: each rank samples its own identities (class % ranks == rank) with the same step count.
    """
    # generating a synthetic set (once, cached) is a process pool: all cores, whatever the pipeline's thread count
    data = instantiate(cfg.dataset).load(os.cpu_count() or 1)
    protocol = instantiate(cfg.eval)
    sets = protocol.prepare(os.cpu_count() or 1)
    rank, size = world()
    classes = data.table["class"].to_numpy()
    if len(classes) and (classes.min() < 0 or classes.max() >= data.num_identities):  # a classifier needs 0..C-1
        log.info(
            "identity labels renumbered 0..%d (the index's run from %d to %d)",
            data.num_identities - 1,
            classes.min(),
            classes.max(),
        )
        data.table["class"] = pd.factorize(data.table["class"], sort=True)[0]
    table = data.table
    sampler = instantiate(cfg.batch)(table, steps_per_epoch=cfg.train.steps_per_epoch, seed=cfg.seed)
    if size > 1:
        table = table[table["class"] % size == rank].reset_index(drop=True)
        per_rank = cfg.train.steps_per_epoch or max(1, sampler.steps // size)
        sampler = instantiate(cfg.batch)(table, steps_per_epoch=per_rank, seed=cfg.seed + rank)
        log.info(
            "rank %d of %d: %d images of %d identities, %d steps/epoch, global batch %d",
            rank,
            size,
            len(table),
            table["class"].nunique(),
            per_rank,
            size * sampler.batch_size,
        )
    return data, table, sampler, protocol, sets


def build_model(cfg: DictConfig) -> EmbeddingNet:
    """The embedding network: initialised (`init_std`), or with a checkpoint's weights if `ckpt` is set (a warm
    start, also `ckpt=pretrained:<name>`; the optimiser starts fresh). A warm start must feed the network as the
    checkpoint was trained: its image size and standardisation must match `preprocess`."""
    net = build_network(cfg.backbone, cfg.head, cfg.preprocess.image_size, cfg.init_std)
    if cfg.ckpt:
        ckpt = resolve_checkpoint(cfg.ckpt)
        load_network_weights(net, ckpt)
        if sidecar(ckpt).is_file():
            check_preprocess(cfg, read_spec(ckpt)["preprocess"], str(cfg.ckpt))
        log.info("initial weights from %s (optimizer state starts fresh)", cfg.ckpt)
    return net


def check_preprocess(cfg: DictConfig, trained: dict, source: str) -> None:
    """ConfigError unless `cfg.preprocess` feeds the network as `trained` (a sidecar's preprocess) did."""
    wanted = {"image_size": int(trained["image_size"]), "normalize": normalization(trained.get("normalize", "unit"))}
    have = {"image_size": int(cfg.preprocess.image_size), "normalize": normalization(cfg.preprocess.normalize)}
    differ = [f"preprocess.{k}={wanted[k]}" for k in wanted if wanted[k] != have[k]]
    if differ:
        raise ConfigError(
            f"{source} was trained with {', '.join(differ)}; this run has "
            f"{', '.join(f'preprocess.{k}={have[k]}' for k in wanted if wanted[k] != have[k])}: set "
            f"{' '.join(differ)} (experiment=finetune does, for pretrained:casia-webface)"
        )


def choice(cfg: DictConfig, group: str) -> str:
    """How the command line names `cfg`'s option of `group` (`miner=semi_hard`), else its class."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized() and group in HydraConfig.get().runtime.choices:
        return f"{group}={HydraConfig.get().runtime.choices[group]}"
    node = cfg[group]
    return f"{group}={node._target_.rsplit('.', 1)[-1] if node is not None else 'none'}"


def build_loss(cfg: DictConfig, num_classes: int | None = None, miner=None) -> EmbeddingLoss:
    """The configured loss: triplet loss with `miner` (or the configured one); a classification loss with the
    training set's `num_classes` identities. A miner given to a classification loss is refused, not ignored."""
    factory = instantiate(cfg.loss)
    miner = miner if miner is not None else instantiate(cfg.miner)
    if factory.func.USES_MINER:
        if miner is None:
            raise ConfigError(
                f"{choice(cfg, 'loss')} compares images with images and needs a miner: "
                "miner=semi_hard | batch_hard | batch_all | random_triplets"
            )
        per_anchor = cfg.batch.images_per_identity - 1 if "images_per_identity" in cfg.batch else None
        return factory(miner=miner, embedding_size=int(cfg.embedding_size), positives_per_anchor=per_anchor)
    if miner is not None:
        raise ConfigError(
            f"{choice(cfg, 'miner')} does not apply to {choice(cfg, 'loss')}: a classification loss "
            "compares each image with the class centres, not with other images; drop the miner "
            "(the loss selects miner=none)"
        )
    if num_classes is None:
        raise ConfigError(f"{choice(cfg, 'loss')} needs the training set's identity count")
    shard = {"shard": world()} if factory.func.SHARDS and world()[1] > 1 else {}  # its share of the centres
    return factory(num_classes=num_classes, embedding_size=int(cfg.embedding_size), seed=int(cfg.seed), **shard)


def warm_start_loss(loss: EmbeddingLoss, ckpt: str | os.PathLike, source: str) -> None:
    """A warm start (`ckpt=`) also takes the checkpoint's classifier when it has one of this loss's shapes;
    otherwise the classifier starts fresh, and the log says why. A cross-batch memory always starts empty: the
    embeddings another run stored are its network's, not this one's."""
    memory = getattr(loss, "memory", None)
    own = {p.name for p in memory.get_parameters()} if memory is not None else set()
    wanted = {p.name: p for p in loss.get_parameters() if p.name not in own}
    if not wanted:
        return
    params = read_checkpoint(resolve_checkpoint(ckpt))
    if sharded(loss):
        return _warm_start_shard(loss, params.get("classifier"), source)
    found = {k: params[k] for k in wanted if k in params}
    if len(found) == len(wanted) and all(tuple(v.shape) == tuple(wanted[k].shape) for k, v in found.items()):
        ms.load_param_into_net(loss, found, strict_load=True)
        log.info("classifier (%d identities) from %s", loss.num_classes, source)
        return
    theirs = params.get("classifier")
    why = (
        f"its classifier is for {theirs.shape[0]} identities"
        if theirs is not None and found.keys() == wanted.keys()
        else "it has no classifier of this loss"
        if theirs is None
        else "its classifier is another loss's"
    )
    log.warning("%s: %s; the classifier (%d identities) starts fresh", source, why, loss.num_classes)


def _warm_start_shard(loss: EmbeddingLoss, theirs, source: str) -> None:
    """A sharded classifier takes its rows of a whole `(C, D)` classifier (a single process's); a share of one
    (a sharded run's best.ckpt holds rank 0's) or another shape is not taken."""
    whole = (loss.num_classes, loss.weight.shape[1])
    if theirs is None or tuple(theirs.shape) != whole:
        why = "it has no classifier of this loss" if theirs is None else f"its classifier is {tuple(theirs.shape)}"
        log.warning(
            "%s: %s, not the whole %s this rank takes its rows from; the classifier (%d identities) starts fresh",
            source,
            why,
            whole,
            loss.num_classes,
        )
        return
    rows = loss.weight.asnumpy().copy()
    mine = theirs.asnumpy()[loss.offset : loss.offset + loss.local]
    rows[: len(mine)] = mine  # the padding rows, past the last class, keep their initial values
    loss.weight.set_data(ms.Tensor(rows))
    log.info(
        "classifier rows %d-%d of %d identities from %s",
        loss.offset,
        loss.offset + len(mine) - 1,
        loss.num_classes,
        source,
    )


def build_step(
    cfg: DictConfig, net: EmbeddingNet, steps_per_epoch: int, loss: EmbeddingLoss | None = None
) -> tuple[TrainStep, np.ndarray]:
    """The compiled training step (network, `loss` or the configured triplet loss, one optimiser over the network
    and the loss's own parameters) and the learning rate of every global step."""
    lr = instantiate(cfg.lr_schedule)(epochs=cfg.epochs, steps_per_epoch=steps_per_epoch)
    apply_finetune(net, list(cfg.finetune.freeze), cfg.finetune.bn)
    loss = loss if loss is not None else build_loss(cfg)
    if cfg.ckpt:
        warm_start_loss(loss, cfg.ckpt, str(cfg.ckpt))
    optimizer = build_optimizer(
        instantiate(cfg.optimizer), net, lr, cfg.finetune.backbone_lr_scale, loss.trainable_params()
    )
    if cfg.hardware.mine_global_batch and world()[1] == 1:
        raise ConfigError("hardware.mine_global_batch=true needs data-parallel ranks (hardware=cpu_dp/gpu_dp/...)")
    if cfg.hardware.mine_global_batch and not loss.USES_MINER:
        raise ConfigError(
            f"hardware.mine_global_batch=true mines triplets over all ranks; {choice(cfg, 'loss')} "
            "mines nothing: set it false"
        )
    step = TrainStep(net, loss, optimizer, cfg.hardware.mine_global_batch)
    step.set_train(True)
    return step, lr


def build_training(cfg: DictConfig) -> Training:
    """Every part of a training run, in the order that makes a seeded run reproducible."""
    validate(cfg)
    ms.set_seed(cfg.seed)
    data, table, sampler, protocol, sets = build_data(cfg)
    log.info(
        "training set: %d images of %d identities from %s; evaluation: %s; %d steps/epoch of %d images (%s)",
        len(data),
        data.num_identities,
        data.root,
        protocol.describe(sets),
        sampler.steps,
        sampler.batch_size,
        sampler.layout,
    )
    loss = build_loss(cfg, data.num_identities)
    memory = getattr(loss, "memory", None)
    if memory is not None and memory.start_step >= cfg.epochs * sampler.steps:
        log.warning(
            "miner.memory.start_step=%d is past this run's last step (%d): the memory fills but is never "
            "mined; lower it",
            memory.start_step,
            cfg.epochs * sampler.steps,
        )
    net = build_model(cfg)
    evaluation = Evaluation(
        protocol, sets, EvalTransform(protocol.input_size(net), protocol.center_crop, cfg.preprocess.normalize)
    )
    also = {name: build_evaluation(node, net, cfg.preprocess.normalize) for name, node in cfg.also_eval.items()}
    net = mixed_precision(net, cfg.hardware.amp_level, cfg.hardware.device)
    log.info("network: %s, %.2fM parameters", cfg.backbone._target_.rsplit(".", 1)[-1], count_parameters(net) / 1e6)
    step, lr = build_step(cfg, net, sampler.steps, loss)
    augment = TrainTransform(
        int(cfg.preprocess.image_size), **OmegaConf.to_container(cfg.augment), normalize=cfg.preprocess.normalize
    )
    rank, size = world()
    return Training(cfg, data, table, sampler, evaluation, net, step, lr, augment, also, rank, size)


RESERVED_PREFIXES = ("eval", "train", "model", "data", "checkpoints")


def build_evaluation(node: DictConfig, net: EmbeddingNet, normalize: str) -> Evaluation:
    """A protocol of `also_eval`, its pairs and its transform."""
    protocol = instantiate(node)
    return Evaluation(
        protocol,
        protocol.prepare(os.cpu_count() or 1),
        EvalTransform(protocol.input_size(net), protocol.center_crop, normalize),
    )
