"""Triplet health: the monitor on hand-built windows, and real runs made to collapse, to starve their miner, and
left healthy."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from facenet.app import run
from facenet.errors import ConfigError, TrainingUnhealthy
from facenet.losses import TripletLoss
from facenet.training.health import TelemetryLog, TripletHealth

NAMES = TripletLoss.TELEMETRY


def window(loss=0.15, active=0.6, d_ap=0.6, d_an=0.9, norm=1.0, easy=0.5, semi=0.2, hard=0.3):
    return {
        "loss": loss,
        "active_fraction": active,
        "d_ap": d_ap,
        "d_an": d_an,
        "embedding_norm": norm,
        "easy_fraction": easy,
        "semi_hard_fraction": semi,
        "hard_fraction": hard,
    }


COLLAPSED = window(loss=0.2, active=1.0, d_ap=0.004, d_an=0.005, easy=0.0, semi=0.6, hard=0.4)


def feed(monitor, windows, every=10):
    return [monitor.observe(every * (i + 1), w) for i, w in enumerate(windows)]


def test_a_condition_is_reported_once_when_it_has_held_for_n_windows_and_again_after_it_went_away():
    monitor = TripletHealth("warn", 3, 0.2, NAMES)
    found = feed(
        monitor, [window(), COLLAPSED, COLLAPSED, COLLAPSED, COLLAPSED, window(), COLLAPSED, COLLAPSED, COLLAPSED]
    )
    kinds = [(f.kind, f.since_step, f.step) if f else None for f in found]
    assert kinds == [None, None, None, ("collapse", 10, 40), None, None, None, None, ("collapse", 60, 90)]
    assert "lower lr 10x" in found[3].message and "since step 10" in found[3].message
    # the loss sits at the margin during a collapse: reported as the collapse alone
    assert [f.kind for f in monitor.findings] == ["collapse", "collapse"]


def test_collapse_to_the_origin_and_relative_to_the_norm():
    monitor = TripletHealth("warn", 1, 0.2, NAMES)
    assert monitor.observe(1, window(d_ap=0.3, d_an=0.45, norm=10.0)).kind == "collapse"  # < 5% of a norm of 10
    assert TripletHealth("warn", 1, 0.2, NAMES).observe(1, window(d_ap=0.3, d_an=0.45, norm=1.0)) is None
    origin = window(d_ap=0.0, d_an=0.0, norm=1e-8)
    assert TripletHealth("warn", 1, 0.2, NAMES).observe(1, origin).kind == "collapse"


@pytest.mark.parametrize(
    "fractions, cause",
    [
        ((0.0, 0.0, 0.0), "no valid triplet"),
        ((1.0, 0.0, 0.0), "raise margin"),
        ((0.6, 0.0, 0.4), "batch_hard or batch_all"),
    ],
)
def test_a_dead_miner_names_its_likely_cause(fractions, cause):
    easy, semi, hard = fractions
    monitor = TripletHealth("warn", 2, 0.0 if hard else 0.2, NAMES)
    dead = window(loss=0.0, active=0.004, easy=easy, semi=semi, hard=hard)
    found = feed(monitor, [dead, dead])
    assert found[0] is None and found[1].kind == "dead_miner" and cause in found[1].message


def test_loss_pinned_at_the_margin_without_collapse():
    monitor = TripletHealth("warn", 3, 0.5, NAMES)
    pinned = [window(loss=0.5 + e, d_ap=0.7, d_an=0.7) for e in (0.004, -0.003, 0.009)]
    assert [f.kind if f else None for f in feed(monitor, pinned)] == [None, None, "pinned_at_margin"]
    learning = [window(loss=0.5 * (1 - 0.03 * i)) for i in range(1, 6)]  # 3% below the margin and falling
    assert feed(TripletHealth("warn", 3, 0.5, NAMES), learning) == [None] * 5


def test_two_conditions_due_in_one_window_are_both_reported():
    both = window(loss=0.2, active=0.01, d_ap=0.8, d_an=0.8, easy=0.6, semi=0.0, hard=0.4)  # dead and pinned
    monitor = TripletHealth("warn", 2, 0.2, NAMES)
    found = feed(monitor, [both, both, both, both])
    assert [(f.kind, f.since_step, f.step) if f else None for f in found] == [
        None,
        ("dead_miner", 0, 20),
        ("pinned_at_margin", 0, 30),
        None,
    ]


def test_off_and_losses_without_the_telemetry_are_not_watched():
    assert feed(TripletHealth("off", 1, 0.2, NAMES), [COLLAPSED]) == [None]
    assert feed(TripletHealth("warn", 1, None, NAMES), [COLLAPSED]) == [None]
    assert feed(TripletHealth("warn", 1, 0.2, ("d_ap", "d_an")), [COLLAPSED]) == [None]
    with pytest.raises(ConfigError, match="train.health must be one of"):
        TripletHealth("loud", 1, 0.2, NAMES)
    with pytest.raises(ConfigError, match="train.health_windows must be >= 1"):
        TripletHealth("warn", 0, 0.2, NAMES)


def test_telemetry_log_keeps_rows_up_to_the_resumed_step(tmp_path):
    names = ("loss", "d_ap")
    log = TelemetryLog(tmp_path, names)
    for step in (5, 10, 15):
        log.append(step, {"loss": step / 100, "d_ap": 1.0})
    resumed = TelemetryLog(tmp_path, names, resume_step=10)  # steps after the checkpoint are logged again
    resumed.append(15, {"loss": 0.5, "d_ap": 2.0})
    table = pd.read_csv(tmp_path / "telemetry.csv")
    assert table["step"].tolist() == [5, 10, 15] and table["loss"].tolist() == [0.05, 0.1, 0.5]


# real runs: the smoke set (16 identities x 4 images, 32 px), a window every 2 steps
RUN = ("experiment=smoke", "epochs=2", "train.steps_per_epoch=10", "tracking.log_every_steps=2")


def _run(compose_cfg, tmp_path, *overrides):
    return run(compose_cfg(*RUN, f"output_dir={tmp_path}", *overrides))


def _mlflow_run(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (r,) = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
    return client, r


def test_a_healthy_default_run_raises_nothing_and_draws_its_distances(compose_cfg, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, "facenet"):
        _run(compose_cfg, tmp_path, "train.health=stop")
    assert not [r for r in caplog.records if "training health" in r.getMessage()]
    client, r = _mlflow_run(tmp_path)
    assert r.info.status == "FINISHED" and not [k for k in r.data.tags if k.startswith("health.")]
    assert {"train/triplet_health.png", "train/telemetry.csv"} <= {
        a.path for a in client.list_artifacts(r.info.run_id, "train")
    }
    (run_dir,) = tmp_path.glob("runs/*/*")
    table = pd.read_csv(run_dir / "telemetry.csv")
    assert table["step"].tolist() == list(range(2, 21, 2))
    assert (table["d_an_p90"] >= table["d_an_p50"]).all() and (table["d_an_p50"] >= table["d_an_p10"]).all()
    history = client.get_metric_history(r.info.run_id, "train/d_ap_p50")
    assert [m.value for m in history] == pytest.approx(table["d_ap_p50"].tolist(), rel=1e-5)


@pytest.mark.slow  # a minute's worth of compiling on 2 cores; CI runs it (.ci/run)
def test_a_collapsing_run_is_warned_then_stopped(compose_cfg, tmp_path, caplog):
    """Batch-hard mining at 100x the default learning rate puts every embedding on one point within a few
    windows: warned (the run goes on), or under train.health=stop ended FAILED naming its last good checkpoint."""
    collapse = ("miner=batch_hard", "lr=0.2")
    with caplog.at_level(logging.WARNING, "facenet"):
        _run(compose_cfg, tmp_path / "warn", *collapse)
    (warning,) = [r.getMessage() for r in caplog.records if "training health" in r.getMessage()]
    assert "embeddings collapsed" in warning and "lower lr 10x" in warning
    step = int(warning.split("training health at step ")[1].split(":")[0])
    assert step <= 2 * 6  # within the first six windows
    client, r = _mlflow_run(tmp_path / "warn")
    assert r.info.status == "FINISHED" and "embeddings collapsed" in r.data.tags["health.collapse"]

    # 100x from the second epoch on: the first epoch's checkpoint is the last good one
    later = ("miner=batch_hard", "lr_schedule=multistep", "lr_schedule.milestones=[1]", "lr_schedule.gamma=100")
    with pytest.raises(
        TrainingUnhealthy,
        match=r"stopped by train.health=stop at step \d+: embeddings collapsed"
        r".*; last checkpoint before it: \S+/checkpoints/facenet-rank0-1_10.ckpt$",
    ):
        _run(compose_cfg, tmp_path / "stop", *later, "train.health=stop")
    client, r = _mlflow_run(tmp_path / "stop")
    assert r.info.status == "FAILED"
    (run_dir,) = (tmp_path / "stop").glob("runs/*/*")
    assert json.loads((run_dir / "run.json").read_text())["error"].startswith("TrainingUnhealthy: stopped by")
    assert (run_dir / "triplet_health.png").is_file()


def test_a_run_whose_miner_finds_nothing_is_stopped(compose_cfg, tmp_path):
    """margin=0 with semi-hard mining: the semi-hard band is empty, the miner selects only triplets that cost
    nothing."""
    with pytest.raises(TrainingUnhealthy, match=r"dead miner: .* set a margin > 0"):
        _run(compose_cfg, tmp_path, "margin=0", "train.health=stop")
    (run_dir,) = tmp_path.glob("runs/*/*")
    assert json.loads((run_dir / "run.json").read_text())["status"] == "FAILED"
    client, r = _mlflow_run(tmp_path)
    assert r.info.status == "FAILED" and "dead miner" in r.data.tags["health.dead_miner"]


class _Tags:
    def __init__(self):
        self.tags, self.metrics = {}, {}

    def set_tag(self, key, value):
        self.tags[key] = value

    def log_metrics(self, metrics, step):
        self.metrics.update({(k, step): v for k, v in metrics.items()})


def test_warn_tags_the_run_and_stop_says_when_no_checkpoint_was_written(caplog):
    finding = TripletHealth("warn", 1, 0.2, NAMES).observe(30, COLLAPSED)
    tracker = _Tags()
    with caplog.at_level(logging.WARNING):
        TripletHealth("warn", 1, 0.2, NAMES).react(finding, None, tracker)
    assert "training health at step 30: embeddings collapsed" in caplog.text and "train.health=stop" in caplog.text
    assert tracker.tags["health.collapse"].startswith("step 30: embeddings collapsed") and tracker.metrics == {
        ("health/collapse", 30): 1.0
    }
    with pytest.raises(TrainingUnhealthy, match=r"at step 30: embeddings.*; no checkpoint was written before it$"):
        TripletHealth("stop", 1, 0.2, NAMES).react(finding, None, _Tags())
