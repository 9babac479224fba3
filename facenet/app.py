"""One entry point for every task: look the task up, check and resolve its config, run it in a run context."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from facenet.errors import ConfigError
from facenet.interrupts import signals_raise
from facenet.tasks import TASKS
from facenet.tasks.context import command_line_overrides, open_run, prepare


def run(cfg: DictConfig) -> dict[str, float]:
    """Run `cfg.task`; the MLflow run is marked FAILED if anything raises, KILLED if SIGINT / SIGTERM stops it."""
    with signals_raise():
        return _run(cfg)


def _run(cfg: DictConfig, stage_dir: Path | None = None, parent: dict | None = None) -> dict[str, float]:
    """One run. `stage_dir`, `parent`: a stage of a two-stage run, in that folder, nested under that MLflow run."""
    task = TASKS.get(cfg.task)
    if task is None:
        raise ConfigError(f"task must be one of {sorted(TASKS)}, got {cfg.task!r}")
    unresolved = OmegaConf.create(OmegaConf.to_container(cfg))  # before interpolations are resolved
    continuation = prepare(cfg, task, command_line_overrides() if stage_dir is None else [])
    if continuation is not None and continuation.finished is not None:  # a resubmitted sweep's finished job
        return continuation.finished
    with open_run(cfg, task, unresolved, continuation, _run, stage_dir, parent) as context:
        context.record(task.run(cfg, context))
    return context.metrics
