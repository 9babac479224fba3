"""Past one machine: a SLURM / submitit job's tasks as data-parallel ranks, the submitit launchers, Optuna studies
and MLflow stores shared through PostgreSQL. The mapping and the launcher's resources are checked against hand-made
environments; the rest with the real parts: submitit's local executor (its own code path, not a mock), a PostgreSQL
server and an MLflow server started here (tests/servers.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from facenet.errors import ConfigError
from facenet.jobs.environment import (
    JobTasks,
    _first_slurm_host,
    check_world,
    cluster_variables,
    job_tasks,
    scheduler_port,
)
from tests.conftest import ROOT

SMOKE = ["experiment=smoke", "tracking.log_every_steps=1"]


def test_slurm_variables_map_to_ranks():
    """A task of a 2-node x 4-task srun step: rank, local rank and the first node as MindSpore sees them."""
    env = {
        "SLURM_JOB_ID": "812",
        "SLURM_STEP_ID": "0",
        "SLURM_NTASKS": "8",
        "SLURM_STEP_NUM_TASKS": "8",
        "SLURM_PROCID": "5",
        "SLURM_LOCALID": "1",
        "SLURM_STEP_NUM_NODES": "2",
        "SLURM_STEP_NODELIST": "gpu[07-08]",
    }
    tasks = job_tasks(env)
    assert tasks == JobTasks("812", 8, 5, 1, 2, "gpu07", "SLURM")
    variables = cluster_variables(tasks, 21234, host="10.0.0.7", environ={})
    assert variables == {
        "MS_ROLE": "MS_WORKER",
        "MS_WORKER_NUM": "8",
        "MS_SCHED_HOST": "10.0.0.7",
        "MS_SCHED_PORT": "21234",
        "MS_NODE_ID": "5",
        "RANK_ID": "5",
        "RANK_SIZE": "8",
        "DEVICE_ID": "1",
    }
    array = job_tasks({**env, "SLURM_ARRAY_JOB_ID": "900", "SLURM_ARRAY_TASK_ID": "3"})
    assert array.job_id == "900_3"  # each array job has its own scheduler port
    assert scheduler_port("900_3", {}) != scheduler_port("900_4", {})
    assert scheduler_port("900_3", {}) == scheduler_port("900_3", {}) and 20000 <= scheduler_port("900_3", {}) <= 29999
    assert scheduler_port("1", {"FACENET_SCHED_PORT": "31000"}) == 31000


@pytest.mark.parametrize(
    "visible,local_rank,device",
    [
        (None, 5, 5),  # every task sees the node's devices (--gpus-per-node): its own by local rank
        ("0,1,2,3,4,5,6,7", 5, 5),
        ("3", 5, 0),  # SLURM bound one device to the task (--gpus-per-task=1): the only one it sees
    ],
)
def test_each_task_gets_its_own_device(visible, local_rank, device):
    from facenet.jobs.environment import device_id

    assert device_id(local_rank, {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}) == device
    assert device_id(local_rank, {} if visible is None else {"ASCEND_RT_VISIBLE_DEVICES": visible}) == device


def test_a_first_node_that_names_itself_loopback_is_not_the_scheduler_address(monkeypatch):
    """Debian maps a host's own name to 127.0.1.1: the scheduler must be at an address the other nodes reach."""
    import socket

    from facenet.jobs import environment

    table = {"gpu07": ["127.0.1.1", "10.0.0.7"], "gpu08": ["127.0.1.1"]}
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a: [(0, 0, 0, "", (ip, 0)) for ip in table[host]])
    monkeypatch.setattr(socket, "gethostname", lambda: "gpu08")
    monkeypatch.delenv("FACENET_SCHED_HOST", raising=False)
    assert environment._address("gpu07") == "10.0.0.7"
    with pytest.raises(ConfigError, match="resolves to 127.0.1.1 on itself.*set FACENET_SCHED_HOST"):
        environment._address("gpu08")
    monkeypatch.setenv("FACENET_SCHED_HOST", "10.0.0.8")
    assert environment._address("gpu08") == "10.0.0.8"


def test_submitit_local_variables_map_to_ranks():
    env = {
        "SUBMITIT_LOCAL_JOB_ID": "4242",
        "SUBMITIT_LOCAL_NTASKS": "2",
        "SUBMITIT_LOCAL_GLOBALID": "1",
        "SUBMITIT_LOCAL_LOCALID": "1",
        "SUBMITIT_LOCAL_JOB_NUM_NODES": "1",
    }
    assert job_tasks(env) == JobTasks("4242", 2, 1, 1, 1, "127.0.0.1", "submitit (local)")
    assert job_tasks({"HOME": "/root"}) is None  # not in a job: msrun or nothing


@pytest.mark.parametrize(
    "nodelist,first",
    [("gpu[03-04,07],cpu1", "gpu03"), ("node1,node2", "node1"), ("n[1-2]", "n1"), ("a-b[010-011]", "a-b010")],
)
def test_first_host_of_a_slurm_node_list(nodelist, first):
    assert _first_slurm_host(nodelist) == first


def test_ranks_started_must_be_what_the_hardware_group_says():
    check_world(16, 2, 8, "SLURM")
    with pytest.raises(
        ConfigError, match=r"SLURM started 8 ranks but hardware.nodes x hardware.ranks_per_node = 2 x 8"
    ):
        check_world(8, 2, 8, "SLURM")


def test_one_process_hardware_refuses_several_ranks(compose_cfg, tmp_path):
    from facenet.app import run

    with pytest.raises(ConfigError, match="hardware.ranks_per_node=2 need data parallel"):
        run(compose_cfg(*SMOKE, f"output_dir={tmp_path}", "hardware.ranks_per_node=2"))


def _launcher(name: str, *overrides: str):
    """The launcher Hydra would build for `hydra/launcher=<name>`, set up on the composed config."""
    from facenet.jobs.sbatch import launcher_for

    return launcher_for(list(overrides), name)


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["hardware=gpu_dp"], {"nodes": 1, "tasks_per_node": 8, "gpus_per_node": 8}),
        (["hardware=gpu_dp", "hardware.nodes=2"], {"nodes": 2, "tasks_per_node": 8, "gpus_per_node": 8}),
        (["hardware=cpu_dp"], {"nodes": 1, "tasks_per_node": 2, "gpus_per_node": None}),
        (["hardware=cpu"], {"nodes": 1, "tasks_per_node": 1, "gpus_per_node": None}),
        (["hardware=ascend_dp"], {"nodes": 1, "tasks_per_node": 8, "gpus_per_node": None}),
        (  # set in the launcher: kept
            ["hardware=gpu_dp", "hydra.launcher.tasks_per_node=4", "hydra.launcher.gpus_per_node=4"],
            {"nodes": 1, "tasks_per_node": 4, "gpus_per_node": 4},
        ),
        (  # GPUs asked through gres: not asked twice (SLURM refuses --gpus-per-node with --gres=gpu)
            ["hardware=gpu_dp", "hydra.launcher.gres=gpu:a100:8"],
            {"nodes": 1, "tasks_per_node": 8, "gpus_per_node": None},
        ),
    ],
)
def test_launcher_resources_come_from_the_hardware_group(overrides, expected):
    launcher = _launcher("submitit_slurm", *overrides)
    assert {k: launcher.params[k] for k in expected} == expected


def test_a_sweep_over_hardware_is_refused(tmp_path, caplog):
    """Before anything starts (no parent run, no sweep folder): one line; the launcher refuses too, for sweepers
    that bring keys of their own."""
    proc = _run(
        ["run.py", "-m", "hydra/launcher=submitit_local", "hardware=cpu,cpu_dp", "experiment=smoke",
         f"output_dir={tmp_path / 'out'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        timeout=120,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in out, out[-2000:]
    assert "this sweep varies hardware: the jobs of one submitit sweep share one resource request" in out
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "out" / "mlflow.db").exists()
    launcher = _launcher("submitit_local")
    with pytest.raises(SystemExit):
        launcher.launch([["hardware=cpu", "margin=0.2"], ["hardware=gpu", "margin=0.2"]], 0)
    assert "this sweep varies hardware" in caplog.text


def test_the_rendered_sbatch_script_in_the_docs_is_what_the_launcher_submits(capsys):
    """docs/cluster.md shows the script for hardware=gpu_dp on 2 nodes x 8 GPUs under the command that renders it;
    `facenet sbatch` with that command prints exactly the block (an array of 3 jobs, 2 nodes x 8 tasks x 8 GPUs)."""
    import re
    import shlex

    from facenet.cli import main

    text = (ROOT / "docs" / "cluster.md").read_text()
    command, block = re.search(r"<!-- facenet (sbatch .*?) -->\n```bash\n(.*?)```", text, re.S).groups()
    assert main(shlex.split(command)) == 0
    rendered = capsys.readouterr().out
    assert rendered == block
    for line in ("--nodes=2", "--ntasks-per-node=8", "--gpus-per-node=8", "--array=0-2%3", "--partition=gpu"):
        assert f"#SBATCH {line}\n" in rendered


def test_a_job_whose_process_died_is_a_failed_job_not_the_end_of_the_sweep(tmp_path):
    """submitit raises from `results()` for a job killed by SIGKILL or the out-of-memory killer: the launcher turns
    it into a job that returned nothing (the summary then lists it CRASHED), so the other jobs' results are kept."""
    from types import SimpleNamespace

    from hydra.core.utils import JobStatus
    from submitit.core.utils import UncompletedJobError

    launcher = _launcher("submitit_local", f"hydra.sweep.dir={tmp_path}")

    class Died:
        job_id, paths = "77_1", SimpleNamespace(stdout=tmp_path / "77_1_0_log.out")

        def results(self):
            raise UncompletedJobError("Job 77_1 (task: 0) with path ... has not produced any output (state: FAILED)")

    ret = launcher._result(Died(), 1, ["margin=0.5"])
    assert ret.overrides == ["margin=0.5"] and ret.working_dir == str(tmp_path / "1")
    # what Hydra's sweepers read: the basic sweeper raises for a FAILED return (ending the sweep), so a dead job
    # returns nothing, as a failed job does; Optuna records the trial FAILED (not a float)
    assert ret.status == JobStatus.COMPLETED and ret.return_value is None


def test_a_shared_study_needs_its_name():
    from facenet.study import check_shared

    check_shared(None, None)
    check_shared("postgresql+psycopg2://u@h/optuna", "margins")
    with pytest.raises(ConfigError, match="needs hydra.sweeper.study_name: the study every sweep process joins"):
        check_shared("postgresql+psycopg2://u@h/optuna", None)


def test_resubmitting_into_another_sweeps_folder_is_refused(tmp_path):
    from facenet.sweeps import SweepCallback

    (tmp_path / "sweep.json").write_text(json.dumps({"sweep_id": "s1", "params": {"margin": "0.2,0.5"}}))
    callback = SweepCallback()
    callback.sweep_dir, callback.params = tmp_path, {"margin": "0.2,0.5"}
    assert callback._earlier()["sweep_id"] == "s1"  # the same sweep: its parent is reused
    callback.params = {"lr": "0.1,0.2"}
    with pytest.raises(ConfigError, match=r"holds sweep s1 over \{'margin': '0.2,0.5'\}, not \{'lr': '0.1,0.2'\}"):
        callback._earlier()


def test_a_resubmitted_job_keeps_a_finished_run_and_restarts_one_without_checkpoints(tmp_path, compose_cfg):
    from facenet.runs import write_state
    from facenet.tasks.train import sweep_job_continuation

    done, bare = tmp_path / "0", tmp_path / "1"
    for job, status in ((done, "FINISHED"), (bare, "KILLED")):
        job.mkdir()
        write_state(job, {"status": status, "run_id": f"run-{job.name}"})
    (done / "metrics.json").write_text(json.dumps({"accuracy": 0.75}))
    cfg = compose_cfg(*SMOKE, "margin=0.5")
    kept = sweep_job_continuation(done, cfg)
    assert kept.finished == {"accuracy": 0.75} and kept.run_id == "run-0"
    assert sweep_job_continuation(bare, cfg) is None  # killed before its first checkpoint: it starts over
    # a folder holding another job's run (an Optuna sweep resubmitted: new trials under the old job numbers)
    (done / "config.yaml").write_text(OmegaConf.to_yaml(compose_cfg(*SMOKE, "margin=0.2", "resume=auto")))
    assert sweep_job_continuation(done, compose_cfg(*SMOKE, "margin=0.2")).finished  # resume aside, the same
    with pytest.raises(ConfigError, match=r"holds a run with other settings \(loss, margin\), not this job's"):
        sweep_job_continuation(done, cfg)


def test_an_experiment_created_by_another_process_meanwhile_is_used_not_an_error(tmp_path):
    """Two sweeps starting together on one server both find no experiment and both create it (seen in CI: the
    second died on RESOURCE_ALREADY_EXISTS). The interleaving is forced on a real store: the lookup answers "none"
    once, as it did for the process that lost the race."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from facenet.errors import TrackingError
    from facenet.tracking import experiment_id

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    winner = MlflowClient(uri).create_experiment("shared")

    class LateClient(MlflowClient):
        looked = 0

        def get_experiment_by_name(self, name):
            self.looked += 1
            return None if self.looked == 1 else super().get_experiment_by_name(name)

    assert experiment_id(LateClient(uri), "shared") == winner
    assert experiment_id(MlflowClient(uri), "new") != winner
    with pytest.raises(MlflowException, match="Invalid experiment name"):  # other errors are not swallowed
        experiment_id(LateClient(uri), "")
    # a deleted experiment keeps its name: one line saying how to get it back, not create_run's "must be active"
    MlflowClient(uri).delete_experiment(winner)
    with pytest.raises(
        TrackingError, match=rf"'shared' \(id {winner}\) is deleted: restore it .*--experiment-id {winner}"
    ):
        experiment_id(MlflowClient(uri), "shared")


def _run(args: list[str], timeout: int = 900, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env, **kwargs
    )


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _stop_what_the_test_started():
    """Every process a test started (a sweep, its submitit jobs: one process group each) is stopped when the test
    ends, also when it fails half-way."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    _STARTED.append(proc)
    return proc


def _wait(condition, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(
                f"{what}: the process ended first ({proc.returncode}): {log.read_text()[-3000:] if log else ''}"
            )
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout} s{': ' + log.read_text()[-3000:] if log else ''}")


@pytest.fixture(scope="module")
def pg():
    """A PostgreSQL server for this module's tests: databases for MLflow and for Optuna studies."""
    from tests.servers import postgres

    with postgres("mlflow", "optuna") as base:
        yield base


@pytest.fixture(scope="module")
def pg_mlflow(pg, tmp_path_factory):
    """An MLflow tracking server whose backend store is the PostgreSQL database `mlflow`; artifacts in a folder (the
    shared file system of a cluster)."""
    from tests.servers import mlflow_server

    with mlflow_server(f"{pg}/mlflow", tmp_path_factory.mktemp("pg-artifacts") / "artifacts") as url:
        yield url


def _children(client, parent_id: str) -> list:
    from mlflow.entities import ViewType

    experiment = client.get_run(parent_id).info.experiment_id
    runs = client.search_runs([experiment], run_view_type=ViewType.ALL, max_results=1000)
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]


@pytest.mark.slow
def test_submitit_sweep_on_a_postgres_mlflow_survives_sigterm_and_resumes(tmp_path, pg_mlflow):
    """Acceptance: a submitit_local sweep against the PostgreSQL-backed server is one parent with a child per job and
    the sweep's artifacts; SIGTERM to one job ends it KILLED with its checkpoint named while the other finishes;
    resubmitting with resume=auto continues the killed job in its own MLflow run and closes the parent FINISHED."""
    from mlflow.tracking import MlflowClient

    sweep = tmp_path / "sweep"
    args = [
        "run.py",
        "-m",
        "hydra/launcher=submitit_local",
        "margin=0.2,0.5",
        *SMOKE,
        "epochs=4",
        "train.steps_per_epoch=25",
        "tracking=mlflow_server",
        f"tracking.tracking_uri={pg_mlflow}",
        "tracking.experiment=submitit",
        f"output_dir={tmp_path / 'out'}",
        f"data_dir={tmp_path / 'data'}",
        f"hydra.sweep.dir={sweep}",
    ]
    log = tmp_path / "sweep.log"
    proc = _start(args, log)
    job = sweep / "1"

    def checkpointed() -> int | None:  # job 1's process, once it has written its first checkpoint
        state = json.loads((job / "run.json").read_text()) if (job / "run.json").is_file() else {}
        return state.get("pid") if list((job / "checkpoints").glob("facenet-rank0-*.ckpt")) else None

    os.kill(_wait(checkpointed, 600, "job 1's first checkpoint", proc, log), signal.SIGTERM)
    assert proc.wait(timeout=600) == 1  # a job did not finish: the sweep says so
    text = log.read_text()
    state = json.loads((job / "run.json").read_text())
    assert state["status"] == "KILLED" and "stopped by SIGTERM" in state["error"], state
    assert "checkpoint " + str(job / "checkpoints") in state["error"]
    assert json.loads((sweep / "0" / "run.json").read_text())["status"] == "FINISHED"
    assert "1 of 2 job(s) finished, 1 KILLED" in text
    client = MlflowClient(pg_mlflow)
    parent_id = json.loads((sweep / "sweep.json").read_text())["parent_run_id"]
    assert client.get_run(parent_id).info.status == "FINISHED"
    killed_id = state["run_id"]
    statuses = {r.info.run_id: r.info.status for r in _children(client, parent_id)}
    assert statuses[killed_id] == "KILLED" and sorted(statuses.values()) == ["FINISHED", "KILLED"]
    assert client.get_run(parent_id).data.metrics["sweep/killed_jobs"] == 1

    again = _run([*args, "resume=auto"], timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 of 2 job(s) finished" in again.stdout + again.stderr
    parent = client.get_run(parent_id)  # the same parent, reopened and closed again
    assert parent.info.status == "FINISHED" and parent.data.tags["resumes"] == "1"
    children = _children(client, parent_id)
    assert len(children) == 2 and {c.info.status for c in children} == {"FINISHED"}
    resumed = client.get_run(killed_id)
    assert resumed.data.tags["resumes"] == "1" and int(resumed.data.tags["resume_1_at_step"]) > 0
    assert resumed.data.metrics["train/steps"] == 4 * 25
    # what a basic-launcher sweep leaves on its parent (tests/test_sweeps.py)
    artifacts = {a.path for a in client.list_artifacts(parent_id)}
    assert artifacts == {"sweep_summary.csv", "sweep_accuracy.png", "comparison"}
    assert parent.data.metrics["sweep/finished_jobs"] == 2 and parent.data.metrics["best/accuracy"] > 0


@pytest.mark.slow
def test_two_tasks_under_submitit_equal_the_msrun_run(tmp_path):
    """Acceptance: the data-parallel test's 2-rank msrun run, and the same run as a 2-task job of submitit's local
    executor (no msrun: ranks from the job's environment, the scheduler started by rank 0): the same weights (their
    SHA-1 on every rank) and the same losses at every step (1e-6)."""
    import re

    import numpy as np
    from mlflow.tracking import MlflowClient

    from tests.test_distributed import _msrun

    msrun_out, _, msrun_digest = _msrun(tmp_path / "msrun", "tracking.log_every_steps=1")
    sweep = tmp_path / "sweep"
    out = tmp_path / "submitit"
    proc = _run(
        [
            "run.py",
            "-m",
            "hydra/launcher=submitit_local",
            "hardware=cpu_dp",
            "experiment=smoke",
            "epochs=2",
            "batch.identities=4",
            "tracking.log_every_steps=1",
            f"output_dir={out}",
            f"data_dir={tmp_path / 'msrun' / 'data'}",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = "".join(p.read_text() for p in sweep.glob(".submitit/*/*_log.*"))
    assert "submitit (local) job" in logs and (sweep / "0" / "ms_scheduler.log").is_file()
    digests = {r: re.findall(rf"rank {r} of 2: final weights sha1 (\w+)", logs) for r in (0, 1)}
    assert digests[0] == digests[1] == [msrun_digest]

    def losses(uri: str) -> np.ndarray:
        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
        (run,) = [r for r in runs if r.data.tags.get("task") == "train"]
        history = sorted(client.get_metric_history(run.info.run_id, "train/loss"), key=lambda m: m.step)
        return np.array([[m.step, m.value] for m in history])

    a, b = losses(f"sqlite:///{msrun_out / 'mlflow.db'}"), losses(f"sqlite:///{out / 'mlflow.db'}")
    assert len(a) == 6 and a.shape == b.shape and (a[:, 0] == b[:, 0]).all()
    np.testing.assert_allclose(a[:, 1], b[:, 1], rtol=0, atol=1e-6)


def _optuna_sweep(tmp_path: Path, name: str, storage: str, study: str, trials: int, seed: int) -> list[str]:
    return [
        "run.py",
        "--config-dir",
        "multirun_sweeps",
        "--config-name",
        "optuna",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.study_name={study}",
        f"hydra.sweeper.sampler.seed={seed}",
        "experiment=smoke",
        "tracking=off",
        f"output_dir={tmp_path / name}",
        f"data_dir={tmp_path / 'data'}",
        f"hydra.sweep.dir={tmp_path / name / 'sweep'}",
    ]


def _trial_jobs(*sweeps: Path) -> list[tuple[dict, float | None]]:
    """Every job the sweeps ran: (its swept values, its accuracy or None)."""
    jobs = []
    for sweep in sweeps:
        for overrides in sweep.glob("*/.hydra/overrides.yaml"):
            values = {o.split("=")[0]: o.split("=", 1)[1] for o in OmegaConf.load(overrides)}
            metrics = overrides.parent.parent / "metrics.json"
            accuracy = json.loads(metrics.read_text())["accuracy"] if metrics.is_file() else None
            jobs.append(({k: values[k] for k in ("lr", "margin", "miner")}, accuracy))
    return jobs


@pytest.mark.slow
def test_two_optuna_processes_share_one_postgres_study_and_a_stopped_one_continues(tmp_path, pg):
    """Acceptance: two sweep processes on one PostgreSQL storage run one study of 6 trials together: six trial
    numbers, each run once (its values are exactly one job's, its value that job's accuracy), none lost. A process
    stopped mid-study closes its running trial FAIL; started again, it continues the study."""
    import optuna

    from facenet.study import compatible_storage

    compatible_storage()
    storage = f"{pg}/optuna"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [
        _start(_optuna_sweep(tmp_path, name, storage, "shared", 3, seed), log)
        for name, seed, log in (("a", 1, logs[0]), ("b", 2, logs[1]))
    ]
    for proc, log in zip(procs, logs, strict=True):
        assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    assert sorted(t.number for t in trials) == list(range(6))
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    jobs = _trial_jobs(tmp_path / "a" / "sweep", tmp_path / "b" / "sweep")
    assert len(jobs) == 6
    for trial in trials:
        params = {k: str(v) for k, v in trial.params.items()}
        (match,) = [acc for values, acc in jobs if values == params]
        assert trial.value == pytest.approx(match)

    # stopped after its first trial, mid-way through the second; then started again
    log = tmp_path / "c.log"
    proc = _start(_optuna_sweep(tmp_path, "c", storage, "resumable", 3, 3), log)

    def second_trial_running() -> bool:
        try:
            study = optuna.load_study(study_name="resumable", storage=storage)
        except KeyError:
            return False
        states = [t.state for t in study.trials]
        return states.count(optuna.trial.TrialState.COMPLETE) == 1 and optuna.trial.TrialState.RUNNING in states

    _wait(second_trial_running, 600, "the second trial", proc, log)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) != 0
    states = [t.state.name for t in optuna.load_study(study_name="resumable", storage=storage).trials]
    assert states == ["COMPLETE", "FAIL"], log.read_text()[-3000:]
    again = _run(_optuna_sweep(tmp_path, "c2", storage, "resumable", 2, 4))
    assert again.returncode == 0, again.stderr[-3000:]
    trials = optuna.load_study(study_name="resumable", storage=storage).trials
    assert [(t.number, t.state.name) for t in trials] == [
        (0, "COMPLETE"),
        (1, "FAIL"),
        (2, "COMPLETE"),
        (3, "COMPLETE"),
    ]
    assert "Using an existing study with name 'resumable'" in again.stderr


@pytest.mark.slow
def test_sweeps_opening_a_new_postgres_storage_at_once_all_get_the_study(pg, tmp_path):
    """Four processes open the same study on a new database at the same moment: without the schema lock two of
    them create Optuna's tables together and one fails (`duplicate key value violates unique constraint`, seen in
    the test above); with it, all four open one study."""
    import optuna
    import psycopg2

    from facenet.study import compatible_storage

    port = int(pg.rsplit(":", 1)[1])
    conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute('CREATE DATABASE "fresh"')
    conn.close()
    url = f"{pg}/fresh"
    go = time.time() + 8  # every process waits for the same instant, then opens the storage
    code = (
        "import time, sys; from facenet.study import compatible_storage; compatible_storage(); import optuna; "
        f"time.sleep(max(0, {go} - time.time())); "
        f"optuna.create_study(study_name='race', storage='{url}', load_if_exists=True, direction='maximize')"
    )
    procs = [_start(["-c", code], tmp_path / f"open{i}.log") for i in range(4)]
    for i, proc in enumerate(procs):
        assert proc.wait(timeout=120) == 0, (tmp_path / f"open{i}.log").read_text()[-2000:]
    compatible_storage()
    assert optuna.load_study(study_name="race", storage=url).trials == []


@pytest.mark.slow
def test_processes_creating_one_experiment_on_the_server_at_once_all_get_it(pg_mlflow, tmp_path):
    """Six processes ask the PostgreSQL-backed server for a new experiment at the same instant: all get one id."""
    go = time.time() + 8
    code = (
        "import time; from mlflow.tracking import MlflowClient; from facenet.tracking import experiment_id; "
        f"client = MlflowClient('{pg_mlflow}'); time.sleep(max(0, {go} - time.time())); "
        "print('id', experiment_id(client, 'at-once'))"
    )
    logs = [tmp_path / f"create{i}.log" for i in range(6)]
    procs = [_start(["-c", code], log) for log in logs]
    for proc, log in zip(procs, logs, strict=True):
        assert proc.wait(timeout=120) == 0, log.read_text()[-2000:]
    ids = {line for log in logs for line in log.read_text().splitlines() if line.startswith("id ")}
    assert len(ids) == 1, ids


@pytest.mark.slow
def test_two_sweeps_at_once_on_one_postgres_mlflow_lose_nothing(tmp_path, pg_mlflow):
    """Acceptance: two sweeps write to the PostgreSQL-backed server at the same time: every run is there with its
    parent, every job's final metrics equal its metrics.json, every logged loss step is there, every artifact."""
    from mlflow.tracking import MlflowClient

    procs, logs = [], []
    for name, margins in (("x", "0.1,0.3"), ("y", "0.2,0.4")):
        logs.append(tmp_path / f"{name}.log")
        args = [
            "run.py",
            "-m",
            f"margin={margins}",
            *SMOKE,
            "tracking=mlflow_server",
            f"tracking.tracking_uri={pg_mlflow}",
            "tracking.experiment=concurrent",
            f"output_dir={tmp_path / name}",
            f"data_dir={tmp_path / 'data'}",
            f"hydra.sweep.dir={tmp_path / name / 'sweep'}",
        ]
        procs.append(_start(args, logs[-1]))
    for proc, log in zip(procs, logs, strict=True):
        assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
    client = MlflowClient(pg_mlflow)
    for name in ("x", "y"):
        sweep = tmp_path / name / "sweep"
        parent_id = json.loads((sweep / "sweep.json").read_text())["parent_run_id"]
        assert {"sweep_summary.csv", "sweep_accuracy.png", "comparison"} <= {
            a.path for a in client.list_artifacts(parent_id)
        }
        children = {c.info.run_id: c for c in _children(client, parent_id)}
        assert len(children) == 2
        for job in (sweep / "0", sweep / "1"):
            state = json.loads((job / "run.json").read_text())
            run = children[state["run_id"]]
            assert run.info.status == "FINISHED"
            metrics = json.loads((job / "metrics.json").read_text())
            summary = {"epoch", "best_accuracy", "train_minutes", "images_per_sec", "parameters"}  # the run's, not eval
            assert {"accuracy", "auc", "threshold", "eer"} <= set(metrics) - summary
            for key in set(metrics) - summary:
                assert run.data.metrics[f"eval/{key}"] == pytest.approx(metrics[key]), key
            assert run.data.metrics["model/parameters"] == metrics["parameters"]
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
            assert steps == list(range(1, int(run.data.metrics["train/steps"]) + 1))
            logged = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert {"config.yaml", "environment.json", "metrics.json", "checkpoints", "eval"} <= logged


@pytest.mark.slow
def test_doctor_checks_the_postgres_backed_server_and_storage(pg, pg_mlflow, tmp_path, capsys):
    """`facenet doctor` against the real server (a probe run with a metric and an artifact through the server's
    artifact proxy, then deleted) and the PostgreSQL databases."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    from facenet.cli import main

    code = main(["doctor", "--tracking-uri", pg_mlflow, "--storage", f"{pg}/optuna"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ok  tracking writable" in out and "a run, a metric and an artifact written and deleted" in out
    client = MlflowClient(pg_mlflow)
    probe = client.get_experiment_by_name("facenet-doctor")
    live = client.search_runs([probe.experiment_id], run_view_type=ViewType.ACTIVE_ONLY)
    assert live == []  # the probe run was deleted
    code = main(["doctor", "--tracking-uri", f"{pg}/nosuchdb"])
    out = capsys.readouterr().out
    assert code == 1 and 'database "nosuchdb" does not exist' in out
