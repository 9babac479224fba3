"""Learning-rate schedules as pure functions returning one value per optimisation step.

Every schedule has the signature `(base_lr, epochs, steps_per_epoch, warmup_epochs, **kw) -> np.ndarray` of length
`epochs * steps_per_epoch`. Warm-up, when `warmup_epochs > 0`, rises linearly over the first
`W = round(warmup_epochs * steps_per_epoch)` steps as `base_lr * (s + 1) / W`; from step W on the schedule's own
rule applies, evaluated at the step's epoch `s / steps_per_epoch` (step and multistep milestones are absolute
epochs; cosine anneals over the steps after warm-up).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facenet.errors import ConfigError


def _steps(epochs: int, steps_per_epoch: int, warmup_epochs: float) -> tuple[np.ndarray, int]:
    if epochs < 1 or steps_per_epoch < 1:
        raise ConfigError(f"epochs and steps_per_epoch must be >= 1, got {epochs}, {steps_per_epoch}")
    total = epochs * steps_per_epoch
    warmup = int(round(warmup_epochs * steps_per_epoch))
    if not 0 <= warmup <= total:
        raise ConfigError(f"warmup_epochs={warmup_epochs} must lie between 0 and epochs={epochs}")
    return np.arange(total), warmup


def float32_lr(lr: np.ndarray, what: str = "the lr schedule", advice: str = "check lr and gamma") -> np.ndarray:
    """Per-step learning rates as float32; ConfigError naming the first step whose value float32 cannot hold (it
    would become inf, train on as NaN weights and be reported as a divergence)."""
    lr = np.asarray(lr, np.float64)
    with np.errstate(over="ignore"):
        out = lr.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise ConfigError(f"{what} reaches {lr[bad[0]]:.3g} at step {bad[0] + 1}, beyond float32: {advice}")
    return out


def _with_warmup(lr: np.ndarray, base_lr: float, warmup: int) -> np.ndarray:
    lr = lr.astype(np.float64)
    lr[:warmup] = base_lr * (np.arange(warmup) + 1) / warmup
    return float32_lr(lr)


def constant(base_lr: float, epochs: int, steps_per_epoch: int, warmup_epochs: float) -> np.ndarray:
    """base_lr at every step (after warm-up)."""
    s, w = _steps(epochs, steps_per_epoch, warmup_epochs)
    return _with_warmup(np.full(len(s), base_lr), base_lr, w)


def step(
    base_lr: float, epochs: int, steps_per_epoch: int, warmup_epochs: float, step_epochs: int, gamma: float
) -> np.ndarray:
    """base_lr * gamma ** floor(epoch / step_epochs)."""
    if step_epochs < 1:
        raise ConfigError(f"step_epochs must be >= 1, got {step_epochs}")
    s, w = _steps(epochs, steps_per_epoch, warmup_epochs)
    return _with_warmup(base_lr * gamma ** (s // steps_per_epoch // step_epochs), base_lr, w)


def multistep(
    base_lr: float, epochs: int, steps_per_epoch: int, warmup_epochs: float, milestones: Sequence[int], gamma: float
) -> np.ndarray:
    """base_lr * gamma ** (number of milestones <= epoch)."""
    s, w = _steps(epochs, steps_per_epoch, warmup_epochs)
    passed = np.searchsorted(np.sort(np.asarray(milestones)), s // steps_per_epoch, side="right")
    return _with_warmup(base_lr * gamma**passed, base_lr, w)


def cosine(base_lr: float, epochs: int, steps_per_epoch: int, warmup_epochs: float, min_lr: float) -> np.ndarray:
    """min_lr + (base_lr - min_lr) * (1 + cos(pi * t)) / 2, t going from 0 (first step after warm-up) to 1 (last
    step, which therefore runs at min_lr)."""
    s, w = _steps(epochs, steps_per_epoch, warmup_epochs)
    t = (s - w) / max(len(s) - w - 1, 1)  # 0 at the first post-warm-up step, 1 at the last
    return _with_warmup(min_lr + (base_lr - min_lr) * 0.5 * (1 + np.cos(np.pi * t)), base_lr, w)
