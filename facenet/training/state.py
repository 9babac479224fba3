"""Where a training run is: written into every periodic checkpoint's sidecar and read back, as one thing, to
resume the run exactly where it stopped."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class TrainState:
    """The run's position and the values that outlive a step.

    `epoch` is the epoch in progress (or the last one finished) and `epoch_step` the steps of it done;
    `window` holds the per-step [loss, *telemetry] rows not yet logged (a logging window an interruption cut);
    `train_seconds` counts time in training steps only (evaluation excluded), for `train.max_minutes`.
    """

    epoch: int = 1
    epoch_step: int = 0
    global_step: int = 0
    best_accuracy: float = float("-inf")
    train_seconds: float = 0.0
    window: list[np.ndarray] = field(default_factory=list)

    def start(self, steps_per_epoch: int) -> tuple[int, int]:
        """(first epoch to run, batches of it to skip): the rest of an interrupted epoch, else the next one."""
        if 0 <= self.epoch_step < steps_per_epoch:
            return self.epoch, self.epoch_step
        return self.epoch + 1, 0

    def to_sidecar(self) -> dict:
        """The JSON fields of a periodic checkpoint's sidecar (`step` is the global step, as in every sidecar)."""
        return {
            "epoch": self.epoch,
            "step": self.global_step,
            "epoch_step": self.epoch_step,
            "best_accuracy": self.best_accuracy,
            "train_seconds": self.train_seconds,
            "window": [np.asarray(w).tolist() for w in self.window],
        }

    @classmethod
    def from_sidecar(cls, spec: dict) -> TrainState:
        """The state a sidecar records. Raises KeyError / ValueError / TypeError if `epoch` or `step` is missing
        or malformed. A sidecar without `epoch_step` (written at the end of its epoch) counts as a finished epoch."""
        epoch, step = int(spec["epoch"]), int(spec["step"])
        return cls(
            epoch=epoch,
            epoch_step=int(spec.get("epoch_step", -1)),
            global_step=step,
            best_accuracy=float(spec.get("best_accuracy", float("-inf"))),
            train_seconds=float(spec.get("train_seconds", 0.0)),
            window=[np.asarray(w) for w in spec.get("window", [])],
        )
