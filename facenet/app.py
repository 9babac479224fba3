"""One entry point for every task: set up the runtime and tracking, run the task, return its metric."""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from facenet.errors import ConfigError

log = logging.getLogger(__name__)


def _run_dir(cfg: DictConfig) -> Path:
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.output_dir) / "runs" / time.strftime("%Y-%m-%d/%H-%M-%S")


def _tags(cfg: DictConfig) -> dict[str, str]:
    tags = {"task": cfg.task}
    if HydraConfig.initialized():
        tags["hydra_overrides"] = " ".join(HydraConfig.get().overrides.task) or "(none)"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        ).stdout.strip()
        if commit:
            tags["git_commit"] = commit
    except (OSError, subprocess.SubprocessError):
        pass
    return tags


def evaluate_checkpoint(cfg: DictConfig, run_dir: Path, tracker, preprocess_set: bool = False) -> dict[str, float]:
    """task=eval: rebuild the network from the checkpoint's sidecar and score the configured pairs with the
    checkpoint's preprocessing. `preprocess_set`: the config sets `preprocess.image_size` itself (a command-line
    override or an experiment) rather than inheriting the dataset's default."""
    from facenet.data.images import EvalTransform
    from facenet.models.build import build_network
    from facenet.training.checkpoints import load_network_weights, read_spec, sidecar
    from facenet.training.trainer import evaluate_and_log, model_spec

    if not cfg.ckpt:
        raise ConfigError("task=eval needs a checkpoint: add ckpt=PATH/TO/file.ckpt")
    ckpt = Path(cfg.ckpt).expanduser()
    if not ckpt.is_file():
        raise ConfigError(f"checkpoint {str(ckpt)!r} does not exist")
    spec_file = sidecar(ckpt)
    if spec_file.is_file():
        spec = read_spec(ckpt)
    else:
        log.warning("%s has no sidecar %s: building the network from the current config", ckpt, spec_file.name)
        spec = model_spec(cfg)
    trained = spec["preprocess"]["image_size"]
    if preprocess_set and cfg.preprocess.image_size != trained:
        raise ConfigError(
            f"preprocess.image_size={cfg.preprocess.image_size} is a training setting; {ckpt.name} was trained at "
            f"{trained}x{trained} and task=eval applies the checkpoint's preprocessing. To evaluate at another size "
            f"on purpose, set eval.override_image_size={cfg.preprocess.image_size} instead."
        )
    net = build_network(spec["model"]["backbone"], spec["model"]["head"], trained)
    load_network_weights(net, ckpt)
    protocol = instantiate(cfg.eval)
    pairs = protocol.load(cfg.hardware.data_workers)
    transform = EvalTransform(protocol.input_size(net), protocol.center_crop)
    metrics = evaluate_and_log(net, pairs, protocol, transform, cfg.hardware.data_workers, tracker, 0, run_dir / "eval")
    log.info("verification report for %s:\n%s", ckpt, (run_dir / "eval" / "report.txt").read_text().rstrip())
    return metrics


def _train(cfg: DictConfig, run_dir: Path, tracker) -> dict[str, float]:
    from facenet.training.trainer import train

    return train(cfg, run_dir, tracker)


TASKS = {"train": _train, "eval": evaluate_checkpoint}


def run(cfg: DictConfig) -> dict[str, float]:
    """Run `cfg.task`; the MLflow run is marked FAILED if anything raises."""
    from facenet.runtime import init_runtime

    if cfg.task not in TASKS:
        raise ConfigError(f"task must be one of {sorted(TASKS)}, got {cfg.task!r}")
    task = TASKS[cfg.task]
    if cfg.task == "eval":  # before resolving, while an inherited default is still an interpolation
        task = functools.partial(task, preprocess_set=not OmegaConf.is_interpolation(cfg.preprocess, "image_size"))
    OmegaConf.resolve(cfg)
    hw = cfg.hardware
    init_runtime(hw.device, hw.device_id, hw.mode)
    run_dir = _run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    tracker = instantiate(cfg.tracking)
    tracker.start(OmegaConf.to_container(cfg), _tags(cfg))
    try:
        tracker.log_artifact(run_dir / "config.yaml")
        metrics = task(cfg, run_dir, tracker)
    except BaseException as err:
        tracker.end("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
        raise
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    tracker.log_artifact(run_dir / "metrics.json")
    tracker.end("FINISHED")
    log.info("run directory: %s", run_dir)
    return metrics
