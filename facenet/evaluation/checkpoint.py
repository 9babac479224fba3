"""`task=eval`: a checkpoint scored on the configured protocol, with the checkpoint's own
architecture and preprocessing (from its sidecar)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from facenet.data.images import EvalTransform
from facenet.errors import ConfigError
from facenet.models.io import (
    load_network_weights,
    model_spec,
    network_from_spec,
    read_spec,
    sidecar,
)
from facenet.models.load import resolve_checkpoint
from facenet.tracking import Tracker

log = logging.getLogger(__name__)


def evaluate_checkpoint(
    cfg: DictConfig, run_dir: Path, tracker: Tracker, preprocess_set: bool = False
) -> dict[str, float]:
    """Rebuild the network from `cfg.ckpt`'s sidecar and score the configured pairs with the checkpoint's
    preprocessing. `preprocess_set`: the config sets `preprocess.image_size` itself (a command-line override or an
    experiment) rather than inheriting the dataset's default; a value other than the checkpoint's is refused."""
    if not cfg.ckpt:
        raise ConfigError("task=eval needs a checkpoint: add ckpt=PATH/TO/file.ckpt (or ckpt=pretrained:NAME)")
    ckpt = resolve_checkpoint(cfg.ckpt)
    if not ckpt.is_file():
        raise ConfigError(f"checkpoint {str(ckpt)!r} does not exist")
    if sidecar(ckpt).is_file():
        spec = read_spec(ckpt)
    else:
        log.warning("%s has no sidecar %s: building the network from the current config", ckpt, sidecar(ckpt).name)
        spec = model_spec(cfg)
    trained = spec["preprocess"]["image_size"]
    if preprocess_set and cfg.preprocess.image_size != trained:
        raise ConfigError(
            f"preprocess.image_size={cfg.preprocess.image_size} is a training setting; {ckpt.name} was trained at "
            f"{trained}x{trained} and task=eval applies the checkpoint's preprocessing. To evaluate at another size "
            f"on purpose, set eval.override_image_size={cfg.preprocess.image_size} instead."
        )
    net = network_from_spec(spec)
    load_network_weights(net, ckpt)
    protocol = instantiate(cfg.eval)
    data = protocol.prepare(os.cpu_count() or 1)  # generation (once, cached) uses every core
    log.info("evaluation: %s", protocol.describe(data))
    transform = EvalTransform(protocol.input_size(net), protocol.center_crop, spec["preprocess"]["normalize"])
    metrics = protocol.evaluate(net, data, transform, cfg.hardware.data_workers, tracker, 0, run_dir / "eval")
    if (run_dir / "eval" / "report.txt").is_file():
        log.info("report for %s:\n%s", ckpt, (run_dir / "eval" / "report.txt").read_text().rstrip())
    return metrics
