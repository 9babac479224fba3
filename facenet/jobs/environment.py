"""A job's tasks as MindSpore data-parallel ranks, without msrun.

Inside a SLURM job step with several tasks (`srun`, or submitit's SLURM executor) or submitit's local executor with
`tasks_per_node > 1`, every task runs the same `run.py` job. MindSpore's dynamic cluster start-up needs, in each
worker: `MS_ROLE=MS_WORKER`, `MS_WORKER_NUM` (the world size), `MS_SCHED_HOST` / `MS_SCHED_PORT` (where the
scheduler listens) and `MS_NODE_ID` (the rank); plus one scheduler process (`MS_ROLE=MS_SCHED`) that msrun would
have started. `job_tasks` reads the job's tasks from the environment submitit or SLURM gives, `cluster_variables`
maps them to MindSpore's variables (`DEVICE_ID` = the task's local rank: one device per task, or 0 where SLURM
binds one device to each task), and `join_cluster`
sets them and, on global rank 0, starts the scheduler (`facenet.jobs.scheduler`) on the job's first node.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from facenet.errors import ConfigError

log = logging.getLogger(__name__)

PORT_ENV = "FACENET_SCHED_PORT"  # the scheduler's port, if the one derived from the job id is taken
PORTS = (20000, 29999)  # derived ports: below Linux's ephemeral range, above msrun's default 8118


@dataclass(frozen=True)
class JobTasks:
    """The tasks of one job step: how many, which one this is (global and on its node), and the nodes."""

    job_id: str
    world: int
    rank: int
    local_rank: int
    nodes: int
    first_host: str
    source: str  # what told us: "submitit (slurm)", "submitit (local)" or "SLURM"


def _first_slurm_host(nodelist: str) -> str:
    """The first host of a SLURM node list: `gpu[03-04,07],cpu1` -> `gpu03`."""
    depth, end = 0, len(nodelist)
    for i, c in enumerate(nodelist):  # the first entry: up to a comma outside brackets
        depth += (c == "[") - (c == "]")
        if c == "," and depth == 0:
            end = i
            break
    entry = nodelist[:end]
    if "[" not in entry:
        return entry
    prefix, _, ranges = entry.partition("[")
    return prefix + ranges.rstrip("]").split(",")[0].split("-")[0]


def job_tasks(environ: Mapping[str, str] | None = None) -> JobTasks | None:
    """The job step this process is a task of, from the variables submitit (SUBMITIT_*) or SLURM (SLURM_*) set;
    None outside such a job. submitit's own `JobEnvironment` is used where submitit started the task (its SLURM and
    local executors alike), SLURM's variables for a plain `srun`."""
    env = os.environ if environ is None else environ
    if "SUBMITIT_EXECUTOR" in env and env is os.environ:
        import submitit

        job = submitit.JobEnvironment()
        return JobTasks(
            str(job.job_id),
            int(job.num_tasks),
            int(job.global_rank),
            int(job.local_rank),
            int(job.num_nodes),
            str(job.hostnames[0]) if job.cluster == "slurm" else "127.0.0.1",
            f"submitit ({job.cluster})",
        )
    if "SUBMITIT_LOCAL_JOB_ID" in env:  # the same variables, read without submitit (a given mapping)
        return JobTasks(
            env["SUBMITIT_LOCAL_JOB_ID"],
            int(env["SUBMITIT_LOCAL_NTASKS"]),
            int(env["SUBMITIT_LOCAL_GLOBALID"]),
            int(env["SUBMITIT_LOCAL_LOCALID"]),
            int(env.get("SUBMITIT_LOCAL_JOB_NUM_NODES", "1")),
            "127.0.0.1",
            "submitit (local)",
        )
    if "SLURM_STEP_ID" in env or ("SLURM_PROCID" in env and "SLURM_NTASKS" in env):
        return JobTasks(
            env.get("SLURM_ARRAY_JOB_ID", env.get("SLURM_JOB_ID", "0"))
            + (f"_{env['SLURM_ARRAY_TASK_ID']}" if "SLURM_ARRAY_TASK_ID" in env else ""),
            int(env.get("SLURM_STEP_NUM_TASKS", env["SLURM_NTASKS"])),
            int(env["SLURM_PROCID"]),
            int(env.get("SLURM_LOCALID", "0")),
            int(env.get("SLURM_STEP_NUM_NODES", env.get("SLURM_JOB_NUM_NODES", "1"))),
            _first_slurm_host(env.get("SLURM_STEP_NODELIST", env.get("SLURM_JOB_NODELIST", "localhost"))),
            "SLURM",
        )
    return None


def scheduler_port(job_id: str, environ: Mapping[str, str] | None = None) -> int:
    """The same port in every task of a job: $FACENET_SCHED_PORT, else one derived from the job id (so two jobs
    sharing a node do not collide)."""
    env = os.environ if environ is None else environ
    if env.get(PORT_ENV):
        return int(env[PORT_ENV])
    digits = "".join(c for c in job_id if c.isdigit()) or "0"
    low, high = PORTS
    return low + int(digits) % (high - low + 1)


VISIBLE = ("CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES")  # what SLURM (or the user) lets a task see


def device_id(local_rank: int, environ: Mapping[str, str] | None = None) -> int:
    """The device of a task: its rank on the node, as on a node whose tasks all see every device (`--gpus-per-node`);
    0 where the task sees one device only (SLURM binding one to each task: `--gpus-per-task=1`)."""
    env = os.environ if environ is None else environ
    for name in VISIBLE:
        visible = [d for d in env.get(name, "").split(",") if d.strip()]
        if name in env and len(visible) <= local_rank:
            return 0 if len(visible) == 1 else local_rank % max(1, len(visible))
    return local_rank


def cluster_variables(
    tasks: JobTasks, port: int, host: str | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """MindSpore's dynamic-cluster variables for this task (a worker). `host`: the scheduler's address (default:
    the first node's name, resolved)."""
    return {
        "MS_ROLE": "MS_WORKER",
        "MS_WORKER_NUM": str(tasks.world),
        "MS_SCHED_HOST": host or _address(tasks.first_host),
        "MS_SCHED_PORT": str(port),
        "MS_NODE_ID": str(tasks.rank),
        "RANK_ID": str(tasks.rank),
        "RANK_SIZE": str(tasks.world),
        "DEVICE_ID": str(device_id(tasks.local_rank, environ)),
    }


HOST_ENV = "FACENET_SCHED_HOST"  # the scheduler's address, where the first node's name does not resolve to it


def _address(host: str) -> str:
    """The first node's address as every task reaches it. A name that resolves to loopback on its own node (Debian's
    /etc/hosts maps it to 127.0.1.1) would make the scheduler unreachable from the others: its other addresses are
    taken instead, else one line asking for $FACENET_SCHED_HOST."""
    if os.environ.get(HOST_ENV):
        return os.environ[HOST_ENV]
    if host in ("127.0.0.1", "localhost"):
        return "127.0.0.1"
    try:
        found = [info[4][0] for info in socket.getaddrinfo(host, None, socket.AF_INET)]
    except OSError as err:
        raise ConfigError(f"the job's first node {host!r} does not resolve to an address ({err})") from None
    routable = [a for a in found if not a.startswith("127.")]
    if routable:
        return routable[0]
    if host == socket.gethostname():  # this node's name resolves to loopback here only
        raise ConfigError(
            f"the first node {host!r} resolves to {found[0]} on itself, which the other nodes cannot reach: set "
            f"{HOST_ENV} to its network address"
        )
    return found[0]


def check_world(world: int, nodes: int, ranks_per_node: int, launcher: str) -> None:
    """The ranks a launcher started must be the ones the `hardware` group asks for (else its numbers would be
    ignored)."""
    if nodes < 1 or ranks_per_node < 1:
        raise ConfigError(f"hardware.nodes and hardware.ranks_per_node must be >= 1, got {nodes} and {ranks_per_node}")
    if world != nodes * ranks_per_node:
        raise ConfigError(
            f"{launcher} started {world} ranks but hardware.nodes x hardware.ranks_per_node = {nodes} x "
            f"{ranks_per_node} = {nodes * ranks_per_node}: set them to what the job runs"
        )


def join_cluster(tasks: JobTasks, log_dir: Path) -> subprocess.Popen | None:
    """Set this task's MindSpore cluster variables; on global rank 0 also start the scheduler (its output in
    `log_dir/ms_scheduler.log`) and return it."""
    port = scheduler_port(tasks.job_id)
    variables = cluster_variables(tasks, port)
    os.environ.update(variables)
    log.info(
        "rank %d of %d (%s job %s, local rank %d, %d node(s)); scheduler %s:%d",
        tasks.rank,
        tasks.world,
        tasks.source,
        tasks.job_id,
        tasks.local_rank,
        tasks.nodes,
        variables["MS_SCHED_HOST"],
        port,
    )
    if tasks.rank != 0:
        return None
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MS_ROLE": "MS_SCHED", "RANK_ID": "0"}
    env.pop("MS_NODE_ID", None)
    with open(log_dir / "ms_scheduler.log", "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "facenet.jobs.scheduler"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
