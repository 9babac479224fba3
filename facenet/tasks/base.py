"""The task contract: what `task=<name>` runs. A task states the settings it reads (so an override it would ignore
is refused), whether a run of it can be continued (`resume=`), and its work, `run(cfg, context)`; the run context
(`facenet.tasks.context`) owns everything tasks share."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from omegaconf import DictConfig

from facenet.config.overrides import Reads
from facenet.errors import ConfigError, RunInterrupted
from facenet.interrupts import signal_name

if TYPE_CHECKING:
    from facenet.tracking import Tracker

RunStage = Callable[[DictConfig, Path, dict], dict[str, float]]


@dataclass(frozen=True)
class Continuation:
    """Where a resumed run carries on: its folder, its MLflow run, the step it had reached, and what the task
    itself needs to continue (`point`: a training run's `ResumePoint`); or, for a sweep job that had finished, the
    metrics it ended with (`finished`)."""

    run_dir: Path
    run_id: str | None
    step: int
    point: Any = None
    finished: dict[str, float] | None = None  # a sweep job resubmitted after it finished: its metrics, not re-run


@dataclass
class RunContext:
    """What a task works in: its run directory (rank 0's, or `rank_<n>/`), its tracker, the config as composed
    (`unresolved`: interpolations intact), the run it continues, and a way to run a nested stage of its own."""

    run_dir: Path
    tracker: Tracker
    rank: int
    unresolved: DictConfig
    continuation: Continuation | None
    run_stage: RunStage
    metrics: dict[str, float] = field(default_factory=dict)

    def record(self, metrics: dict[str, float]) -> None:
        """The task's result: metrics.json in the run directory and the tracker."""
        self.metrics = metrics
        (self.run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        self.tracker.log_artifact(self.run_dir / "metrics.json")


class Task(ABC):
    """One value of `task=`. A subclass sets `name` and `reads` and writes `run`; the rest has defaults."""

    name: ClassVar[str]
    reads: ClassVar[Reads]
    resumes: ClassVar[bool] = False
    model_tag: ClassVar[str] = "model"  # the MLflow tag that records `ckpt=` (training: the model it starts from)
    resume_advice: ClassVar[str] = ""  # appended to the one line printed when an interrupt stops the run

    def reads_for(self, cfg: DictConfig) -> Reads:
        """The settings this run of the task reads (a task may read more for some configs)."""
        return self.reads

    def check(self, cfg: DictConfig) -> None:
        """Checks of the task's own settings, before any work starts (the config is not resolved yet)."""
        return None

    def continuation(self, cfg: DictConfig) -> Continuation:
        """Where `resume=` carries on (tasks with `resumes = True`)."""
        raise ConfigError(f"resume= continues a training run; task={self.name} has nothing to resume")

    def stopped(self, err: BaseException, run_dir: Path) -> BaseException:
        """What to raise when a signal or a stop condition ends the run (the run is marked KILLED)."""
        if isinstance(err, KeyboardInterrupt):
            return RunInterrupted(
                f"interrupted by {signal_name(err)}: run {run_dir} marked KILLED, nothing half-written kept"
                f"{self.resume_advice}"
            )
        return err

    def last_checkpoint(self, run_dir: Path) -> Path | None:
        """The checkpoint a failed run of this task can be continued from (tasks with `resumes = True`)."""
        return None

    @abstractmethod
    def run(self, cfg: DictConfig, context: RunContext) -> dict[str, float]:
        """Do the work in `context` (run directory, tracker); return the run's metrics."""


def registry(*tasks: Task) -> Mapping[str, Task]:
    """{name: task}, read-only. A task that does not state its name and the settings it reads is refused: without
    them the check that no override is accepted and ignored would quietly lapse for it."""
    out: dict[str, Task] = {}
    for task in tasks:
        kind = type(task).__name__
        if not isinstance(task, Task):
            raise TypeError(f"{kind} is not a facenet.tasks.Task")
        if not isinstance(getattr(task, "name", None), str) or not task.name:
            raise TypeError(f'{kind} has no name: set `name = "..."` (the value of task=)')
        if not isinstance(getattr(task, "reads", None), Reads):
            raise TypeError(f"task {task.name} does not state the settings it reads: set `reads = Reads(...)`")
        if task.name in out:
            raise TypeError(f"two tasks are named {task.name!r}")
        out[task.name] = task
    return MappingProxyType(out)
