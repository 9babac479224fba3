"""What `task=` runs: one module per task, registered here (one line each). `facenet.tasks.base.Task` is the
contract; `facenet.tasks.context` is what every task shares (run directory, run.json, tracker, status)."""

from __future__ import annotations

from facenet.tasks.base import Continuation, Task, registry
from facenet.tasks.eval import Eval
from facenet.tasks.export import Export
from facenet.tasks.train import Train
from facenet.tasks.two_stage import TwoStage

TASKS = registry(
    Train(),
    Eval(),
    Export(),
    TwoStage(),
)

__all__ = ["TASKS", "Continuation", "Task", "registry"]
