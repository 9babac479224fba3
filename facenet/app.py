"""One entry point for every task: set up the runtime and tracking, run the task, return its metric."""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from facenet import sweeps
from facenet.config.overrides import check_overrides
from facenet.data.images import set_max_pixels
from facenet.errors import ConfigError, RunInterrupted, TrainingInterrupted
from facenet.interrupts import signal_name, signals_raise
from facenet.runs import close_stale, owner, read_state, write_state

log = logging.getLogger(__name__)


def _run_dir(cfg: DictConfig) -> Path:
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.output_dir) / "runs" / time.strftime("%Y-%m-%d/%H-%M-%S")


def command_line_overrides() -> list[str]:
    """The overrides typed for this run (a sweep job's: its own values); none when the config was composed in code."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _without_sidecar(ckpt: str | None) -> bool:
    """A checkpoint file without its sidecar (task=eval then builds the network from the config)."""
    if not ckpt or str(ckpt).startswith("pretrained:"):
        return False
    from facenet.models.io import sidecar

    path = Path(ckpt).expanduser()
    return path.is_file() and not sidecar(path).is_file()


def _eval(cfg: DictConfig, run_dir: Path, tracker, preprocess_set: bool = False) -> dict[str, float]:
    from facenet.evaluation.checkpoint import evaluate_checkpoint

    return evaluate_checkpoint(cfg, run_dir, tracker, preprocess_set)


def _train(cfg: DictConfig, run_dir: Path, tracker, resume=None) -> dict[str, float]:
    from facenet.training.trainer import train

    return train(cfg, run_dir, tracker, resume)


def _export(cfg: DictConfig, run_dir: Path, tracker) -> dict[str, float]:
    """task=export: the checkpoint's embedding network as cfg.export.format, with its model card, logged."""
    from facenet.export import export_checkpoint

    if not cfg.ckpt:
        raise ConfigError("task=export needs a checkpoint: add ckpt=PATH/TO/file.ckpt")
    out = Path(cfg.export.dir) if cfg.export.dir else run_dir / "export"
    model, card = export_checkpoint(cfg.ckpt, cfg.export.format, out, cfg.export.batch_size, cfg.hardware.device)
    for path in (model, card):
        tracker.log_artifact(path, "export")
    return {"model_bytes": float(model.stat().st_size)}


def _two_stage(cfg: DictConfig, run_dir: Path, tracker, unresolved: DictConfig) -> dict[str, float]:
    from facenet.two_stage import run_two_stage

    return run_two_stage(unresolved, run_dir, tracker, lambda stage, folder, parent: _run(stage, folder, parent))


TASKS = {"train": _train, "eval": _eval, "export": _export, "two_stage": _two_stage}


def run(cfg: DictConfig) -> dict[str, float]:
    """Run `cfg.task`; the MLflow run is marked FAILED if anything raises, KILLED if SIGINT / SIGTERM stops it."""
    with signals_raise():
        return _run(cfg)


def _run(cfg: DictConfig, stage_dir: Path | None = None, parent: dict | None = None) -> dict[str, float]:
    """One run. `stage_dir`, `parent`: a stage of a two-stage run, in that folder, nested under that MLflow run."""
    from facenet.provenance import environment, run_tags
    from facenet.runtime import init_runtime, world
    from facenet.tracking import NullTracker

    if cfg.task not in TASKS:
        raise ConfigError(f"task must be one of {sorted(TASKS)}, got {cfg.task!r}")
    if cfg.two_stage is not None and cfg.task != "two_stage":
        raise ConfigError(f"two_stage is read by task=two_stage only; task={cfg.task} would ignore it (drop "
                          "experiment=two_stage, or the task override)")  # fmt: skip
    overrides = command_line_overrides() if stage_dir is None else []
    if overrides:
        check_overrides(cfg.task, overrides, network_from_config=cfg.task == "eval" and _without_sidecar(cfg.ckpt))
    task = TASKS[cfg.task]
    if cfg.task == "two_stage":  # the stages resolve their own configs (stage 2's ${margin} is its own margin)
        task = functools.partial(task, unresolved=OmegaConf.create(OmegaConf.to_container(cfg)))
    if cfg.task == "eval":  # before resolving, while an inherited default is still an interpolation
        task = functools.partial(task, preprocess_set=not OmegaConf.is_interpolation(cfg.preprocess, "image_size"))
    OmegaConf.resolve(cfg)
    set_max_pixels(cfg.max_image_pixels)
    resume, parent_state = None, {}
    if cfg.resume and cfg.task == "two_stage":  # the stages resume themselves; the parent run continues
        stage_dir = Path(str(cfg.resume)).expanduser()
        parent_state = read_state(stage_dir)
        if not (stage_dir / "stage1").is_dir() or not parent_state:
            raise ConfigError(f"resume={cfg.resume}: not the run directory of a two-stage run (no stage1/ in it)")
    elif cfg.resume:
        from facenet.training.resume import find_resume_point

        if cfg.task != "train":
            raise ConfigError(f"resume= continues a training run; task={cfg.task} has nothing to resume")
        resume = find_resume_point(str(cfg.resume), cfg.output_dir)
        task = functools.partial(task, resume=resume)
    run_dir = resume.run_dir if resume else stage_dir or _run_dir(cfg)  # a resumed run keeps its folder and MLflow run
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {"status": "RUNNING", "run_id": None, "error": None, **owner()}
    write_state(run_dir, state)
    tracker = None
    try:
        hw = cfg.hardware
        threads = sweeps.job_threads(hw.cpu_threads)
        init_runtime(hw.device, hw.device_id, hw.mode, threads, hw.distributed)
        rank, size = world()
        if rank != 0:  # data parallel: rank 0 alone tracks, evaluates and checkpoints; the others keep a log dir
            run_dir = run_dir / f"rank_{rank}"
            run_dir.mkdir(parents=True, exist_ok=True)
            log.info("rank %d of %d: MLflow, evaluation and checkpoints are rank 0's", rank, size)
        else:  # runs a kill -9 left RUNNING in this output_dir are closed, with the reason (facenet/runs.py)
            close_stale(cfg.output_dir, keep=run_dir, found_by=f"the run in {run_dir}")
        if threads != hw.cpu_threads:
            log.info("CPU kernel threads: %d (a parallel sweep job's share of %d cores)", threads, os.cpu_count())
        config_file = run_dir / ("config.yaml" if resume is None and not parent_state
                                 else f"config.resume-{resume.state.global_step if resume else 0}.yaml")  # fmt: skip
        config_file.write_text(OmegaConf.to_yaml(cfg))
        (run_dir / "environment.json").write_text(json.dumps(environment(), indent=1))
        tracker = instantiate(cfg.tracking) if rank == 0 else NullTracker()
        tags, sweep = run_tags(cfg.task), parent or sweeps.job_sweep()
        tags["cpu_threads"] = str(threads or "default")
        tags["run_dir"] = str(run_dir.resolve())  # its files (reports, per-pair scores) without a download
        if cfg.ckpt:
            tags["parent_model" if cfg.task == "train" else "model"] = str(cfg.ckpt)
        if parent:
            tracker.run_name = f"{tracker.run_name + ' ' if tracker.run_name else ''}{run_dir.name}"
        elif sweep:
            tags["sweep_id"] = sweep["sweep_id"]
            tracker.run_name = tracker.run_name or sweeps.job_name(sweep)
        if resume is not None:
            tracker.resume(resume.run_id, OmegaConf.to_container(cfg), tags, resume.state.global_step)
        elif parent_state:
            tracker.resume(parent_state.get("run_id"), OmegaConf.to_container(cfg), tags, 0)
        else:
            tracker.start(OmegaConf.to_container(cfg), tags, parent=sweep)
        state.update(run_id=tracker.run_id, tracking_uri=getattr(tracker, "uri", None))
        write_state(run_dir, state)
        tracker.log_artifact(config_file)
        tracker.log_artifact(run_dir / "environment.json")
        metrics = task(cfg, run_dir, tracker)
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        tracker.log_artifact(run_dir / "metrics.json")
    except BaseException as err:
        stopped = KeyboardInterrupt | SystemExit | TrainingInterrupted | RunInterrupted
        status = "KILLED" if isinstance(err, stopped) else "FAILED"
        if isinstance(err, KeyboardInterrupt):
            after = "; resume=auto continues from its last checkpoint" if cfg.task == "train" else ""
            err = RunInterrupted(f"interrupted by {signal_name(err)}: run {run_dir} marked KILLED, nothing "
                                 f"half-written kept{after}")  # fmt: skip
        if cfg.task == "two_stage" and status == "KILLED":  # a stage's own advice (resume=auto) would not find it
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            err = RunInterrupted(f"two-stage run {run_dir} stopped ({first}); experiment=two_stage "
                                 f"resume={run_dir} (with the same overrides) continues it")  # fmt: skip
        if tracker is not None:
            tracker.end(status)
        message = (str(err).strip().splitlines() or [""])[0]
        write_state(run_dir, {**state, "status": status, "error": f"{type(err).__name__}: {message}"})
        if isinstance(err, RunInterrupted):
            raise err from None
        raise
    tracker.end("FINISHED")
    write_state(run_dir, {**state, "status": "FINISHED"})
    log.info("run directory: %s", run_dir)
    return metrics
