"""Runs whose process is gone but whose records still say RUNNING (`kill -9`, the out-of-memory killer, a crash,
a power cut: nothing in the process could close them). Each run's `run.json` names the process that owns it (host,
pid, the process's start time); a run whose process no longer exists on this host is closed FAILED, with the
reason, in `run.json` and in MLflow alike. The next run in the same `output_dir` does it (`app.run`), and so does
`facenet runs clean`. `resume=auto` still continues such a run (it was not FINISHED)."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from facenet.errors import first_line
from facenet.interrupts import partial_file

log = logging.getLogger(__name__)
RUN_FILE = "run.json"  # a run directory's state
SWEEP_FILE = "sweep.json"  # a sweep directory's parent run and parameters (facenet/sweeps.py)
REASON = (
    "its process ended without closing the run (kill -9, the out-of-memory killer, a crash or a power cut); "
    "resume=auto continues it from its last checkpoint"
)


def job_dirs(sweep_dir: str | os.PathLike) -> list[Path]:
    """A sweep's job folders (those Hydra started: `.hydra/overrides.yaml`), numbered jobs first, in job order."""
    jobs = [p.parent.parent for p in Path(sweep_dir).glob("*/.hydra/overrides.yaml")]
    return sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else p.name))


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc), or None where unknown: tells a live
    process from a later one that reuses its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 (starttime); the name before it may hold spaces


def owner() -> dict:
    """What run.json records about the process that owns a run."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pid_start": _start_time(pid)}


def process_alive(state: dict) -> bool | None:
    """True / False for a run owned by a process of this host; None if it cannot be told (another host, or a
    run.json written before owners were recorded)."""
    pid = state.get("pid")
    if not isinstance(pid, int) or state.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        pass
    recorded, now = state.get("pid_start"), _start_time(pid)
    return not (recorded is not None and now is not None and recorded != now)


def write_state(run_dir: Path, state: dict) -> None:
    """run.json, written whole or not at all."""
    with partial_file(Path(run_dir) / RUN_FILE) as tmp:
        tmp.write_text(json.dumps(state, indent=1))


def read_state(run_dir: Path) -> dict:
    try:
        return json.loads((Path(run_dir) / RUN_FILE).read_text())
    except (OSError, ValueError):
        return {}


@dataclass(frozen=True)
class StaleRun:
    run_dir: Path
    state: dict


def stale_runs(output_dir: str | Path, keep: Path | None = None) -> list[StaleRun]:
    """Runs under `output_dir` (single runs and sweep jobs) recorded RUNNING whose process is gone."""
    out = Path(output_dir).expanduser()
    found = []
    for path in sorted([*out.glob(f"runs/*/*/{RUN_FILE}"), *out.glob(f"multiruns/*/*/*/{RUN_FILE}")]):
        run_dir = path.parent
        if keep is not None and run_dir.resolve() == Path(keep).resolve():
            continue
        state = read_state(run_dir)
        if state.get("status") == "RUNNING" and process_alive(state) is False:
            found.append(StaleRun(run_dir, state))
    return found


def close_stale(
    output_dir: str | Path, keep: Path | None = None, found_by: str = "", dry_run: bool = False
) -> list[StaleRun]:
    """Close every stale run under `output_dir` FAILED (run.json and its MLflow run), with the reason; returns
    them. `keep`: a run directory left alone (the one being resumed)."""
    stale = stale_runs(output_dir, keep)
    for run in [] if dry_run else stale:
        when = time.strftime("%Y-%m-%d %H:%M:%S")
        reason = f"{REASON} (found {when}{' by ' + found_by if found_by else ''})"
        mlflow_note = _close_mlflow(run.state, reason)
        write_state(run.run_dir, {**run.state, "status": "FAILED", "error": f"ProcessGone: {reason}"})
        log.warning(
            "run %s was RUNNING but process %s is gone: closed FAILED%s", run.run_dir, run.state.get("pid"), mlflow_note
        )
    return stale


def _close_mlflow(state: dict, reason: str) -> str:
    """Mark the run's MLflow run FAILED with the reason; a note for the log."""
    run_id, uri = state.get("run_id"), state.get("tracking_uri")
    if not run_id or not uri:
        return " (no MLflow run recorded)"
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        if client.get_run(run_id).info.status != "RUNNING":
            return ""
        client.set_tag(run_id, "end_reason", reason)
        client.set_terminated(run_id, "FAILED")
        return f" (MLflow run {run_id} too)"
    except Exception as err:  # noqa: BLE001 - an unreachable store must not stop the run that found this one
        return f" (its MLflow run {run_id} at {uri} could not be updated: {first_line(err, 200)})"
