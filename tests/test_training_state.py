"""The training state's sidecar round trip and resume position, the time budget, the NaN guard: hand-computed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facenet.errors import TrainingDiverged
from facenet.training.state import TrainState
from facenet.training.stopping import TimeBudget
from facenet.training.trainer import check_finite


def test_state_survives_a_json_sidecar():
    state = TrainState(
        epoch=3,
        epoch_step=7,
        global_step=31,
        best_accuracy=0.75,
        train_seconds=12.5,
        window=[np.array([0.5, 1.0, 0.2, 0.9, 1.0]), np.array([0.25, 0.5, 0.3, 0.8, 1.0])],
    )
    back = TrainState.from_sidecar(json.loads(json.dumps({"model": {}, **state.to_sidecar()})))
    assert (back.epoch, back.epoch_step, back.global_step) == (3, 7, 31)
    assert (back.best_accuracy, back.train_seconds) == (0.75, 12.5)
    assert len(back.window) == 2 and np.array_equal(back.window[1], [0.25, 0.5, 0.3, 0.8, 1.0])
    fresh = TrainState.from_sidecar(json.loads(json.dumps(TrainState().to_sidecar())))  # -inf survives JSON
    assert fresh.best_accuracy == float("-inf") and fresh.window == []


@pytest.mark.parametrize(
    "epoch,epoch_step,expected",
    [
        (1, 0, (1, 0)),  # a new run
        (2, 7, (2, 7)),  # stopped mid-epoch: the rest of epoch 2
        (2, 10, (3, 0)),  # stopped after epoch 2: epoch 3
        (2, -1, (3, 0)),  # a sidecar without epoch_step was written at the end of its epoch
        (2, 12, (3, 0)),  # more steps than this configuration's epoch has: the epoch is done
    ],
)
def test_resume_position(epoch, epoch_step, expected):
    assert TrainState(epoch=epoch, epoch_step=epoch_step).start(steps_per_epoch=10) == expected


def test_sidecar_without_state_fields_is_an_end_of_epoch_checkpoint():
    state = TrainState.from_sidecar({"epoch": 4, "step": 40})
    assert state.start(10) == (5, 0) and state.best_accuracy == float("-inf") and state.train_seconds == 0.0
    with pytest.raises(KeyError):
        TrainState.from_sidecar({"epoch": 4})


def test_time_budget_counts_training_time_across_epochs_and_resumes(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("facenet.training.stopping.time.perf_counter", lambda: now[0])
    budget = TimeBudget(max_minutes=1.0, spent=20.0)  # 20 s spent before a resume
    budget.start()
    now[0] += 30.0
    assert budget.running() == 30.0 and not budget.exceeded()
    assert budget.stop() == 50.0 and not budget.used_up
    budget.start()
    now[0] += 10.5
    assert budget.exceeded()  # 50 + 10.5 > 60
    assert budget.stop() == 60.5 and budget.used_up
    unlimited = TimeBudget(None, spent=1e9)
    assert not unlimited.exceeded() and not unlimited.used_up


def test_nan_guard_names_the_loss_then_the_embedding_norm():
    names = ("active_fraction", "d_ap", "d_an", "embedding_norm")
    check_finite(np.array([0.1, 1.0, 0.5, 0.9, 1.0]), names, 3)
    with pytest.raises(TrainingDiverged, match="loss became nan at step 3: lower lr"):
        check_finite(np.array([np.nan, 1.0, np.nan, np.nan, np.nan]), names, 3)
    with pytest.raises(TrainingDiverged, match="embedding norm became nan at step 4"):
        check_finite(np.array([0.0, 0.0, np.nan, np.nan, np.nan]), names, 4)
    with pytest.raises(TrainingDiverged, match="d an became inf at step 5"):
        check_finite(np.array([0.2, 1.0, 0.5, np.inf, 1.0]), names, 5)
