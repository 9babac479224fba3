"""The run context: what every task shares. Checks before any work (overrides the task would ignore, mandatory
values, the task's own checks), then the run directory and its `run.json`, the runtime, the tracker's start and end,
and the status: FINISHED, FAILED when anything raises, KILLED when a signal or a stop condition ends the run. Data
parallel: rank 0 alone tracks; the other ranks keep a log folder (`rank_<n>/`)."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from facenet import sweeps
from facenet.config.overrides import check_mandatory, check_overrides
from facenet.data.images import set_max_pixels
from facenet.errors import ConfigError, RunInterrupted, TrainingInterrupted, first_line
from facenet.runs import close_stale, owner, write_state
from facenet.tasks.base import Continuation, RunContext, RunStage, Task

log = logging.getLogger(__name__)
STOPPED = KeyboardInterrupt | SystemExit | TrainingInterrupted | RunInterrupted  # a run that ends so is KILLED


def command_line_overrides() -> list[str]:
    """The overrides typed for this run (a sweep job's: its own values); none when the config was composed in code."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def prepare(cfg: DictConfig, task: Task, overrides: list[str]) -> Continuation | None:
    """Every check that needs no work, then the config resolved; the run `resume=` continues, if any."""
    reads = task.reads_for(cfg)
    if cfg.get("two_stage") is not None and not reads.covers("two_stage"):
        raise ConfigError(
            f"two_stage is read by task=two_stage only; task={task.name} would ignore it (drop "
            "experiment=two_stage, or the task override)"
        )
    check_overrides(task.name, reads, overrides)
    check_mandatory(cfg, task.name, reads)
    task.check(cfg)
    OmegaConf.resolve(cfg)
    set_max_pixels(cfg.max_image_pixels)
    if not cfg.resume:
        return None
    if not task.resumes:
        raise ConfigError(f"resume= continues a training run; task={task.name} has nothing to resume")
    return task.continuation(cfg)


def _new_run_dir(cfg: DictConfig) -> Path:
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.output_dir) / "runs" / time.strftime("%Y-%m-%d/%H-%M-%S")


@contextmanager
def open_run(
    cfg: DictConfig,
    task: Task,
    unresolved: DictConfig,
    continuation: Continuation | None,
    run_stage: RunStage,
    stage_dir: Path | None = None,
    parent: dict | None = None,
) -> Iterator[RunContext]:
    """The run of `task` with `cfg` (resolved): a new run directory, or the continued run's, or `stage_dir` (a
    stage of a two-stage run, nested under the MLflow run `parent`)."""
    from facenet.provenance import environment, run_tags
    from facenet.runtime import init_runtime, world
    from facenet.tracking import NullTracker

    run_dir = continuation.run_dir if continuation else stage_dir or _new_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {"status": "RUNNING", "run_id": None, "error": None, **owner()}
    write_state(run_dir, state)
    tracker = None
    try:
        hw = cfg.hardware
        threads = sweeps.job_threads(hw.cpu_threads)
        init_runtime(hw.device, hw.device_id, hw.mode, threads, hw.distributed, hw.nodes, hw.ranks_per_node, run_dir)
        rank, size = world()
        if rank != 0:  # data parallel: rank 0 alone tracks, evaluates and checkpoints; the others keep a log dir
            run_dir = run_dir / f"rank_{rank}"
            run_dir.mkdir(parents=True, exist_ok=True)
            log.info("rank %d of %d: MLflow, evaluation and checkpoints are rank 0's", rank, size)
        else:  # runs a kill -9 left RUNNING in this output_dir are closed, with the reason (facenet/runs.py)
            close_stale(cfg.output_dir, keep=run_dir, found_by=f"the run in {run_dir}")
        if threads != hw.cpu_threads:
            log.info("CPU kernel threads: %d (a parallel sweep job's share of %d cores)", threads, os.cpu_count())
        name = f"config.resume-{continuation.step}.yaml" if continuation else "config.yaml"
        config_file = run_dir / name
        config_file.write_text(OmegaConf.to_yaml(cfg))
        (run_dir / "environment.json").write_text(json.dumps(environment(), indent=1))
        tracker = instantiate(cfg.tracking) if rank == 0 else NullTracker()
        tags, sweep = run_tags(cfg.task), parent or sweeps.job_sweep()
        tags["cpu_threads"] = str(threads or "default")
        tags["run_dir"] = str(run_dir.resolve())  # its files (reports, per-pair scores) without a download
        if cfg.ckpt:
            tags[task.model_tag] = str(cfg.ckpt)
        if parent:
            tracker.run_name = f"{tracker.run_name + ' ' if tracker.run_name else ''}{run_dir.name}"
        elif sweep:
            tags["sweep_id"] = sweep["sweep_id"]
            tracker.run_name = tracker.run_name or sweeps.job_name(sweep)
        if continuation is not None:
            tracker.resume(continuation.run_id, OmegaConf.to_container(cfg), tags, continuation.step)
        else:
            tracker.start(OmegaConf.to_container(cfg), tags, parent=sweep)
        state.update(run_id=tracker.run_id, tracking_uri=tracker.uri)
        write_state(run_dir, state)
        tracker.log_artifact(config_file)
        tracker.log_artifact(run_dir / "environment.json")
        yield RunContext(run_dir, tracker, rank, unresolved, continuation, run_stage)
    except BaseException as err:
        status = "KILLED" if isinstance(err, STOPPED) else "FAILED"
        raised = task.stopped(err, run_dir) if status == "KILLED" else err
        message = first_line(raised) if str(raised).strip() else ""  # the type is written before it
        ckpt = task.last_checkpoint(run_dir) if status == "FAILED" else None
        if ckpt is not None:  # what resume=auto would continue from (a KILLED run's message names its own)
            message += f" (last checkpoint {ckpt}; resume=auto continues from it)"
            log.error("run %s failed; its last checkpoint: %s (resume=auto continues from it)", run_dir, ckpt)
        if tracker is not None:
            if ckpt is not None:
                tracker.set_tag("last_checkpoint", str(ckpt))
            tracker.end(status)
        error = f"{type(raised).__name__}: {message.strip()}" if message.strip() else type(raised).__name__
        write_state(run_dir, {**state, "status": status, "error": error})
        if raised is not err:
            raise raised from None
        raise
    tracker.end("FINISHED")
    write_state(run_dir, {**state, "status": "FINISHED"})
    log.info("run directory: %s", run_dir)
