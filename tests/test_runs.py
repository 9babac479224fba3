"""Runs left RUNNING by a process that is gone (kill -9, OOM killer, power cut) are closed FAILED with the reason,
in run.json and MLflow alike, by the next run in the same output_dir or by `facenet runs clean`; `resume=auto`
continues such a run from its newest periodic checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from facenet.runs import close_stale, owner, read_state, stale_runs, write_state
from tests.conftest import ROOT


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _store(out: Path):
    uri = f"sqlite:///{out / 'mlflow.db'}"
    out.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(uri)
    return client, uri, client.create_experiment("facenet")


def _run_dir(out: Path, name: str, state: dict) -> Path:
    run_dir = out / "runs" / "2026-01-01" / name
    run_dir.mkdir(parents=True)
    write_state(run_dir, state)
    return run_dir


def test_runs_whose_process_is_gone_are_closed_in_run_json_and_mlflow(tmp_path, capsys):
    from facenet.cli import main

    out = tmp_path / "out"
    client, uri, exp = _store(out)
    runs = {name: client.create_run(exp).info.run_id for name in ("dead", "alive", "elsewhere", "finished")}
    me = owner()
    dirs = {
        "dead": _run_dir(
            out, "dead", {"status": "RUNNING", "run_id": runs["dead"], "tracking_uri": uri, **me, "pid": _dead_pid()}
        ),
        "alive": _run_dir(out, "alive", {"status": "RUNNING", "run_id": runs["alive"], "tracking_uri": uri, **me}),
        "elsewhere": _run_dir(
            out,
            "elsewhere",
            {"status": "RUNNING", "run_id": runs["elsewhere"], "tracking_uri": uri, **me, "host": "another-host"},
        ),
        "finished": _run_dir(
            out,
            "finished",
            {"status": "FINISHED", "run_id": runs["finished"], "tracking_uri": uri, **me, "pid": _dead_pid()},
        ),
    }
    reused = _run_dir(out, "reused", {"status": "RUNNING", "run_id": None, **me, "pid_start": "1"})  # pid reused
    assert {r.run_dir for r in stale_runs(out)} == {dirs["dead"], reused}

    assert main(["runs", "clean", "--output-dir", str(out), "--dry-run"]) == 0
    assert "would close 2 run(s)" in capsys.readouterr().out
    assert read_state(dirs["dead"])["status"] == "RUNNING"

    assert main(["runs", "clean", "--output-dir", str(out)]) == 0
    assert "closed 2 run(s) FAILED" in capsys.readouterr().out
    dead = read_state(dirs["dead"])
    assert dead["status"] == "FAILED" and "ended without closing the run" in dead["error"]
    assert "facenet runs clean" in dead["error"]
    run = client.get_run(runs["dead"])
    assert run.info.status == "FAILED" and "kill -9" in run.data.tags["end_reason"]
    for name in ("alive", "elsewhere"):  # a live process, or one this host cannot see: left alone
        assert read_state(dirs[name])["status"] == "RUNNING" and client.get_run(runs[name]).info.status == "RUNNING"
    assert read_state(reused)["status"] == "FAILED"
    assert close_stale(out) == []  # nothing left


@pytest.mark.slow  # the kill -9 test below covers it too, with a real kill
def test_the_next_run_in_the_output_dir_closes_them(compose_cfg, tmp_path):
    from facenet.app import run

    out = tmp_path / "out"
    client, uri, exp = _store(out)
    dead_id = client.create_run(exp).info.run_id
    dead = _run_dir(
        out, "dead", {"status": "RUNNING", "run_id": dead_id, "tracking_uri": uri, **owner(), "pid": _dead_pid()}
    )
    run(compose_cfg("experiment=smoke", f"output_dir={out}", f"data_dir={tmp_path / 'data'}"))
    assert read_state(dead)["status"] == "FAILED" and client.get_run(dead_id).info.status == "FAILED"
    assert "found" in read_state(dead)["error"] and "by the run in" in read_state(dead)["error"]
    (new,) = [d for d in out.glob("runs/*/*") if d != dead]
    state = read_state(new)
    assert state["status"] == "FINISHED" and state["pid"] == os.getpid() and state["tracking_uri"] == uri


def _train_cmd(out: Path, data: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "run.py",
        "experiment=smoke",
        "epochs=3",
        "train.steps_per_epoch=25",
        "tracking.log_every_steps=5",
        f"output_dir={out}",
        f"data_dir={data}",
        *extra,
    ]


@pytest.mark.slow
def test_kill_9_mid_epoch_then_the_next_run_closes_it_and_resume_auto_finishes_it(tmp_path):
    out, data = tmp_path / "out", tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        _train_cmd(out, data), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:  # until epoch 2 is under way
        ckpts = list(out.glob("runs/*/*/checkpoints/facenet-rank0-1_25.ckpt"))
        if ckpts:
            try:
                client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
                (r,) = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
                if max((m.step for m in client.get_metric_history(r.info.run_id, "train/loss")), default=0) >= 35:
                    break
            except Exception:  # noqa: BLE001 - the store is being written
                pass
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run_dir,) = out.glob("runs/*/*")
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    run_id = read_state(run_dir)["run_id"]
    assert read_state(run_dir)["status"] == "RUNNING" and client.get_run(run_id).info.status == "RUNNING"

    # the next run in this output_dir (here: an evaluation of the killed run's checkpoint) closes it
    ckpt = run_dir / "checkpoints" / "facenet-rank0-1_25.ckpt"
    ev = subprocess.run(
        [
            sys.executable,
            "run.py",
            "experiment=smoke",
            "task=eval",
            f"ckpt={ckpt}",
            f"output_dir={out}",
            f"data_dir={data}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert read_state(run_dir)["status"] == "FAILED" and client.get_run(run_id).info.status == "FAILED"
    assert "kill -9" in client.get_run(run_id).data.tags["end_reason"]

    # resume=auto finds it and continues from its newest periodic checkpoint (epoch 1), in the same MLflow run
    res = subprocess.run(_train_cmd(out, data, "resume=auto"), cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resuming" in res.stdout + res.stderr and "epoch 2, step 0 of 25" in res.stdout + res.stderr
    run = client.get_run(run_id)
    assert read_state(run_dir)["status"] == "FINISHED" and run.info.status == "FINISHED"  # run.json == MLflow
    assert "end_reason" not in run.data.tags and run.data.tags["resumes"] == "1"
    steps = sorted(m.step for m in client.get_metric_history(run_id, "eval/accuracy"))
    assert steps[-1] == 75 and (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert json.loads((run_dir / "metrics.json").read_text())["accuracy"] == run.data.metrics["eval/accuracy"]
