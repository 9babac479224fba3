"""Experiment tracking. The one module that talks to MLflow; a `NullTracker` keeps call sites unconditional."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

from facenet.errors import ConfigError, TrackingError, first_line

log = logging.getLogger(__name__)


def flatten(tree: Mapping, prefix: str = "") -> dict[str, str]:
    """{'a': {'b': 1}} -> {'a.b': '1'}; lists are kept as their string form."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = str(value)
    return out


class Tracker(Protocol):
    """What the code asks of a tracker: `MlflowTracker` logs one MLflow run, `NullTracker` nothing."""

    run_id: str | None  # set by start or resume
    run_name: str | None  # may be changed before start
    log_every_steps: int  # training logs its loss window every this many steps
    uri: str | None  # where the run is stored (None: nowhere)

    def start(self, params: Mapping, tags: Mapping[str, str], parent: Mapping | None = None) -> None:
        """Create the run, with the config as params; `parent`: the sweep it is a job of."""

    def resume(self, run_id: str | None, params: Mapping, tags: Mapping[str, str], step: int) -> None:
        """Continue run `run_id` (metrics go on from `step`), else start a new one."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Scalars at `step`."""

    def log_artifact(self, path: str | os.PathLike, folder: str | None = None) -> None:
        """A file, under `folder` of the run's artifacts."""

    def set_tag(self, key: str, value: str) -> None:
        """A tag of the run."""

    def end(self, status: str = "FINISHED") -> None:
        """Close the run as FINISHED, FAILED or KILLED."""


class NullTracker:
    """Tracks nothing."""

    run_id: str | None = None
    run_name: str | None = None
    log_every_steps = 10
    uri: str | None = None

    def start(self, params: Mapping, tags: Mapping[str, str], parent: Mapping | None = None) -> None:
        pass

    def resume(self, run_id: str | None, params: Mapping, tags: Mapping[str, str], step: int) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: str | os.PathLike, folder: str | None = None) -> None:
        pass

    def set_tag(self, key: str, value: str) -> None:
        pass

    def end(self, status: str = "FINISHED") -> None:
        pass


def server_unreachable(uri: str, timeout: float) -> str | None:
    """None if the MLflow tracking server at `uri` answers its /health endpoint, else the reason it does not."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            return None if response.status == 200 else f"HTTP {response.status} from /health"
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code} from /health"
    except (urllib.error.URLError, OSError, ValueError) as err:
        return str(getattr(err, "reason", err))


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///PATH[?options]` URI; None for other stores."""
    return Path(uri[len("sqlite:///") :].split("?")[0]) if uri.startswith("sqlite:///") else None


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """For a local SQLite store: an exclusive lock (a `.lock` file beside the database) while a process creates or
    migrates the store, or an experiment. Without it, two runs started at once on a new store both run MLflow's
    schema migrations and one fails ("Online migration expected to match one row"), or both create the experiment.
    Other stores (servers, databases) migrate once; experiments created at once there are `experiment_id`'s job."""
    db = sqlite_file(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no flock; concurrent first runs on a new store are not guarded there
        yield
        return
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def experiment_id(client, name: str, artifact_location: str | None = None) -> str:
    """The id of the experiment `name`, created if there is none. Two processes creating it at the same instant on
    a server or a database (two sweeps starting together) both find none and both create it: the loser gets
    RESOURCE_ALREADY_EXISTS and reads the winner's."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)  # deleted experiments too: their name stays taken
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException as err:
            exp = client.get_experiment_by_name(name) if err.error_code == "RESOURCE_ALREADY_EXISTS" else None
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        raise TrackingError(
            f"MLflow experiment {name!r} (id {exp.experiment_id}) is deleted: restore it (mlflow experiments restore "
            f"--experiment-id {exp.experiment_id}), purge it (mlflow gc --experiment-ids {exp.experiment_id}) or "
            "choose another tracking.experiment"
        )
    return exp.experiment_id


def existing_store(tracking_uri: str | None) -> str:
    """The store a command reads runs from: the given URI, else $MLFLOW_TRACKING_URI, else the default
    `sqlite:///outputs/mlflow.db`; a local store that does not exist is one line, not an empty new database."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///outputs/mlflow.db"
    if (db := sqlite_file(uri)) is not None and not db.is_file():
        raise TrackingError(f"no MLflow store at {uri}: pass --tracking-uri (e.g. sqlite:///OUTPUT_DIR/mlflow.db)")
    return uri


class MlflowTracker(NullTracker):
    """Logs one run. Tracking URI: the configured one, else $MLFLOW_TRACKING_URI, else
    `sqlite:///<output_dir>/mlflow.db` with artifacts under `<output_dir>/mlartifacts`.

    An http(s) URI must answer at start (within `connect_timeout` seconds): a run fails fast with the reason, or with
    `fallback_local` logs to the local store instead and says so.
    """

    def __init__(
        self,
        tracking_uri: str | None,
        experiment: str,
        run_name: str | None,
        output_dir: str,
        log_every_steps: int,
        fallback_local: bool,
        connect_timeout: float,
    ):
        out = Path(output_dir).expanduser().resolve()
        self.local_uri = f"sqlite:///{out / 'mlflow.db'}"
        self.uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or self.local_uri
        self.fallback_local, self.connect_timeout = fallback_local, connect_timeout
        if connect_timeout <= 0:
            raise ConfigError(f"tracking.connect_timeout must be > 0 seconds, got {connect_timeout}")
        self.artifact_root = (out / "mlartifacts").as_uri()
        self.experiment, self.run_name = experiment, run_name
        if log_every_steps < 1:
            raise ConfigError(f"tracking.log_every_steps must be >= 1, got {log_every_steps}")
        self.log_every_steps = log_every_steps
        self.client = None
        self.run_id = None
        self.out = out
        self.pending: list[tuple[str, tuple]] = []  # calls kept while the tracking store does not answer
        self._outage = False
        if self.uri.startswith(("http://", "https://")):  # a lost server must not stall training for minutes
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")

    def check_server(self) -> None:
        """For an http(s) tracking URI: fail fast if the server does not answer, or switch to the local store."""
        if not self.uri.startswith(("http://", "https://")):
            return
        reason = server_unreachable(self.uri, self.connect_timeout)
        if reason is None:
            return
        if not self.fallback_local:
            raise TrackingError(
                f"MLflow tracking server {self.uri} is unreachable ({reason}). Start it (docs/sweeps.md, 'Tracking "
                f"server'), fix tracking.tracking_uri, or set tracking.fallback_local=true to log to {self.local_uri}"
            )
        log.warning(
            "MLflow tracking server %s is unreachable (%s): logging to %s instead", self.uri, reason, self.local_uri
        )
        self.uri = self.local_uri

    def start(self, params: Mapping, tags: Mapping[str, str], parent: Mapping | None = None) -> None:
        """Create the run. `parent`: the sweep this run is a job of ({parent_run_id, tracking_uri}, from
        `facenet.sweeps.job_sweep`): the run is nested under the sweep's parent run when both use one store."""
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.check_server()
        tags = dict(tags)
        if parent and parent.get("parent_run_id"):
            if parent.get("tracking_uri") == self.uri:
                tags["mlflow.parentRunId"] = parent["parent_run_id"]
            else:
                log.warning(
                    "sweep parent run is in %s, this run in %s: not nested", parent.get("tracking_uri"), self.uri
                )
        with store_lock(self.uri):  # one process at a time creates the store (schema migrations) and experiments
            self.client = MlflowClient(self.uri)
            exp_id = experiment_id(
                self.client, self.experiment, self.artifact_root if self.uri.startswith("sqlite") else None
            )
            run = self.client.create_run(exp_id, run_name=self.run_name, tags=dict(tags))
        self.run_id = run.info.run_id
        items = [Param(k, v[:6000]) for k, v in flatten(params).items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])
        log.info("MLflow run %s in experiment %r at %s", self.run_id, self.experiment, self.uri)

    def resume(self, run_id: str | None, params: Mapping, tags: Mapping[str, str], step: int) -> None:
        """Continue an earlier run (a resumed training): same run id, metrics go on from `step`. If that run is not
        in this store, a new run is started (and says why)."""
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self.check_server()
        with store_lock(self.uri):
            self.client = MlflowClient(self.uri)
            self.client.search_experiments(max_results=1)  # opens (and if need be migrates) the store under the lock
        try:
            run = self.client.get_run(run_id) if run_id else None
        except MlflowException:
            run = None
        if run is None:
            log.warning("MLflow run %s is not in %s: the resumed training logs to a new run", run_id, self.uri)
            self.start(params, {**tags, "resumed_from_run": str(run_id)})
            return
        self.run_id = run_id
        self.client.update_run(run_id, status="RUNNING")
        if "end_reason" in run.data.tags:  # closed FAILED when its process was found gone (facenet/runs.py)
            self.client.set_tag(run_id, "end_reason_before_resume", run.data.tags["end_reason"])
            self.client.delete_tag(run_id, "end_reason")
        resumes = int(run.data.tags.get("resumes", "0")) + 1
        self.client.set_tag(run_id, "resumes", str(resumes))
        self.client.set_tag(run_id, f"resume_{resumes}_at_step", str(step))
        log.info("MLflow run %s continues (resume %d, from step %d) at %s", run_id, resumes, step, self.uri)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self._send("metrics", ([(k, float(v), now, step) for k, v in metrics.items()],))

    def log_artifact(self, path: str | os.PathLike, folder: str | None = None) -> None:
        self._send("artifact", (str(path), folder))

    def set_tag(self, key: str, value: str) -> None:
        self._send("tag", (key, value))

    def _send(self, kind: str, args: tuple) -> bool:
        """Queue the call and send everything queued, in order. A store that stops answering mid-run does not stop
        training: the calls wait (warned once per outage) and go out when it answers again, or at the end are
        written to a file."""
        self.pending.append((kind, args))
        return self._flush()

    def _flush(self) -> bool:
        from mlflow.entities import Metric

        while self.pending:
            kind, args = self.pending[0]
            try:
                if kind == "metrics":
                    self.client.log_batch(self.run_id, metrics=[Metric(*m) for m in args[0]])
                elif kind == "tag":
                    self.client.set_tag(self.run_id, *args)
                else:
                    self.client.log_artifact(self.run_id, *args)
            except Exception as err:  # noqa: BLE001 - any transport or server error: keep the data, keep training
                if not self._outage:
                    log.warning(
                        "MLflow at %s does not answer (%s): training goes on, %d logging call(s) kept for later",
                        self.uri,
                        first_line(err, 200),
                        len(self.pending),
                    )
                self._outage = True
                return False
            self.pending.pop(0)
        if self._outage:
            log.warning("MLflow at %s answers again: kept logging calls sent", self.uri)
            self._outage = False
        return True

    def end(self, status: str = "FINISHED") -> None:
        if self.client is None or self.run_id is None:
            return
        for delay in (0.5, 1.0, 2.0, 4.0) if self.uri.startswith("sqlite") else ():  # a busy local store: wait
            if not self.pending or self._flush():
                break
            time.sleep(delay)
        if self.pending and not self._flush():
            unsent = self.out / f"mlflow-unsent-{self.run_id}.json"
            unsent.parent.mkdir(parents=True, exist_ok=True)
            unsent.write_text(json.dumps([{"kind": k, "args": a} for k, a in self.pending], indent=1, default=str))
            log.warning(
                "MLflow at %s still does not answer: %d logging call(s) of run %s written to %s",
                self.uri,
                len(self.pending),
                self.run_id,
                unsent,
            )
        try:
            self.client.set_terminated(self.run_id, status)
        except Exception as err:  # noqa: BLE001
            log.warning("could not mark MLflow run %s %s: %s", self.run_id, status, first_line(err, 200))
