"""`task=eval`: a checkpoint or an exported model file scored on the configured protocol, with the model's own
architecture and preprocessing (from its sidecar or model card)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from facenet.data.images import EvalTransform
from facenet.errors import ConfigError
from facenet.files import sha256
from facenet.models.exported import ModelFile, is_model_file
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
    """Score the configured protocol with `cfg.ckpt` and its own preprocessing: a checkpoint (the network rebuilt
    from its sidecar) or an exported `.mindir` / `.onnx` (run by its runtime, fed as its model card says).
    `preprocess_set`: the config sets `preprocess.image_size` itself (a command-line override or an experiment)
    rather than inheriting the dataset's default; a value other than the model's is refused. The report and the
    tracker record which file (sha256) and which runtime produced the numbers."""
    if not cfg.ckpt:
        raise ConfigError("task=eval needs a checkpoint: add ckpt=PATH/TO/file.ckpt (or ckpt=pretrained:NAME)")
    if is_model_file(cfg.ckpt):
        model = ModelFile.open(cfg.ckpt)
        name, preprocess, source = model.path.name, model.preprocess, model.describe()
    else:
        model, spec, ckpt = _checkpoint_network(cfg)
        name, preprocess, source = ckpt.name, spec["preprocess"], _describe_checkpoint(ckpt)
    trained = preprocess["image_size"]
    if preprocess_set and cfg.preprocess.image_size != trained:
        raise ConfigError(
            f"preprocess.image_size={cfg.preprocess.image_size} is a training setting; {name} was trained at "
            f"{trained}x{trained} and task=eval applies the model's preprocessing. To evaluate at another size "
            f"on purpose, set eval.override_image_size={cfg.preprocess.image_size} instead."
        )
    protocol = instantiate(cfg.eval)
    data = protocol.prepare(os.cpu_count() or 1)  # generation (once, cached) uses every core
    log.info("evaluation: %s; model %s (%s)", protocol.describe(data), source["file"], source["runtime"])
    transform = EvalTransform(protocol.input_size(model), protocol.center_crop, preprocess["normalize"])
    out_dir = run_dir / "eval"
    metrics = protocol.evaluate(model, data, transform, cfg.hardware.data_workers, tracker, 0, out_dir)
    _record_source(source, out_dir, tracker)
    if (out_dir / "report.txt").is_file():
        log.info("report for %s:\n%s", source["file"], (out_dir / "report.txt").read_text().rstrip())
    return metrics


def _checkpoint_network(cfg: DictConfig):
    """(network with the checkpoint's weights, its spec, the checkpoint file)."""
    ckpt = resolve_checkpoint(cfg.ckpt)
    if not ckpt.is_file():
        raise ConfigError(f"checkpoint {str(ckpt)!r} does not exist")
    if sidecar(ckpt).is_file():
        spec = read_spec(ckpt)
    else:
        log.warning("%s has no sidecar %s: building the network from the current config", ckpt, sidecar(ckpt).name)
        spec = model_spec(cfg)
    net = network_from_spec(spec)
    load_network_weights(net, ckpt)
    return net, spec, ckpt


def _describe_checkpoint(ckpt: Path) -> dict:
    import mindspore as ms

    return {
        "file": str(ckpt),
        "format": "CKPT",
        "sha256": sha256(ckpt),
        "runtime": f"mindspore {ms.__version__}",
        "batch_size": "dynamic",
        "source_checkpoint": None,
    }


def _record_source(source: dict, out_dir: Path, tracker: Tracker) -> None:
    """`report.json` gains `model` (file, format, sha256, runtime); the run gets the same as `model.*` tags."""
    report = out_dir / "report.json"
    if report.is_file():
        body = json.loads(report.read_text())
        body["model"] = source
        report.write_text(json.dumps(body, indent=1))
        tracker.log_artifact(report, "eval")
    for key in ("file", "format", "sha256", "runtime"):
        tracker.set_tag(f"model.{key}", str(source[key]))
