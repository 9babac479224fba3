"""Hydra multiruns as MLflow parent/child runs, with a summary on the parent.

`SweepCallback` (registered in conf/config.yaml under `hydra.callbacks`) opens a parent run when a multirun starts
and writes `<sweep dir>/sweep.json`; every job (`facenet.app.run`) reads it to tag its own run as a child
(`mlflow.parentRunId`, `sweep_id`). When the multirun ends, the callback collects every job directory into a table
(`sweep_summary.csv`: overrides, status, final metrics), plots the swept parameters against accuracy, records the
best job (and Optuna's best trial where the Optuna sweeper ran) on the parent, compares the finished jobs (`facenet
compare`: `comparison/` on the parent) and closes it.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import time
import uuid
from pathlib import Path

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from facenet.runs import RUN_FILE, SWEEP_FILE, job_dirs

log = logging.getLogger(__name__)

SUMMARY_CSV = "sweep_summary.csv"
METRIC = "accuracy"  # what run.py returns and sweepers optimise


def in_multirun() -> bool:
    return (
        HydraConfig.initialized() and HydraConfig.get().mode is not None and HydraConfig.get().mode.name == "MULTIRUN"
    )


def job_sweep() -> dict | None:
    """The sweep this job belongs to ({sweep_id, parent_run_id, tracking_uri}), if it runs in a tracked multirun."""
    if not in_multirun():
        return None
    path = Path(HydraConfig.get().sweep.dir) / SWEEP_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def job_dir() -> Path | None:
    """This sweep job's own folder (`<sweep dir>/<job number>`), None outside a multirun."""
    return Path(HydraConfig.get().runtime.output_dir) if in_multirun() else None


def job_in_own_process() -> bool:
    """True for a sweep job that runs in a process of its own (submitit, joblib), not in the sweep's: a signal it
    receives stops that job only (it ends KILLED and the sweep goes on), not the sweep."""
    sweep = job_sweep()
    if sweep is None:
        return False
    from facenet.runs import owner

    me = owner()
    return (sweep.get("host"), sweep.get("pid")) != (me["host"], me["pid"])


def job_name(sweep: dict) -> str:
    """A sweep job's run name: its values of the swept parameters, e.g. `margin=0.5 lr=0.002`."""
    hc = HydraConfig.get()
    swept = [o for o in hc.overrides.task if o.partition("=")[0].lstrip("+~") in sweep.get("params", {})]
    return " ".join(swept) or f"job {hc.job.num}"


def job_threads(cpu_threads: int | None) -> int | None:
    """CPU kernel threads for this job: `hardware.cpu_threads` if set; under the joblib launcher, the job's share of
    the cores (so parallel jobs do not oversubscribe them); else None (MindSpore's default)."""
    if cpu_threads is not None or not HydraConfig.initialized():
        return cpu_threads
    launcher = HydraConfig.get().launcher
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return None
    cores = os.cpu_count() or 1
    n_jobs = int(launcher.get("n_jobs") or -1)
    parallel = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)  # joblib: -1 all cores, -2 all but one, ...
    return max(1, cores // parallel)


def _parse_overrides(overrides: list[str]) -> dict[str, str]:
    out = {}
    for item in overrides:
        key, _, value = item.partition("=")
        out[key.lstrip("+~")] = value
    return out


def _numeric(column: pd.Series) -> pd.Series:
    """The column as numbers if every value parses as one (missing values allowed), else unchanged."""
    converted = pd.to_numeric(column, errors="coerce")
    return converted if converted.notna().sum() == column.notna().sum() else column


def summarize(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per job directory of a sweep. Columns: job, status, the job's overrides, its final metrics
    (`accuracy` first), run_id, error, dir.

    A job that started (Hydra wrote its `.hydra/overrides.yaml`) but never recorded an end is reported
    CRASHED, not dropped.
    """
    rows, override_keys, metric_keys = [], {}, {METRIC: None}
    for job_dir in job_dirs(sweep_dir):
        overrides = _parse_overrides(list(OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")))
        state = json.loads((job_dir / RUN_FILE).read_text()) if (job_dir / RUN_FILE).is_file() else {}
        status = state.get("status", "CRASHED")
        status = "CRASHED" if status == "RUNNING" else status
        metrics_file = job_dir / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if status == "FINISHED" and metrics_file.is_file() else {}
        override_keys.update(dict.fromkeys(overrides))
        metric_keys.update(dict.fromkeys(metrics))
        job = int(job_dir.name) if job_dir.name.isdigit() else job_dir.name
        rows.append(
            {
                "job": job,
                "status": status,
                **overrides,
                **metrics,
                "run_id": state.get("run_id"),
                "error": state.get("error"),
                "dir": str(job_dir),
            }
        )
    columns = ["job", "status", *override_keys, *metric_keys, "run_id", "error", "dir"]
    return pd.DataFrame(rows, columns=columns).apply(_numeric)


def override_columns(table: pd.DataFrame) -> list[str]:
    """The override columns of a `summarize` table (between `status` and the first metric)."""
    columns = list(table.columns)
    return columns[columns.index("status") + 1 : columns.index(METRIC)]


def varying(table: pd.DataFrame, overrides: list[str]) -> list[str]:
    """The override columns that take more than one value in the table (the swept parameters)."""
    return [c for c in overrides if c in table and table[c].astype(str).nunique() > 1]


def _sweeper_params(config: DictConfig) -> dict[str, str]:
    """What the sweep varies: `hydra.sweeper.params` plus sweep overrides from the command line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = {str(k): str(v) for k, v in (OmegaConf.select(config, "hydra.sweeper.params") or {}).items()}
    for o in OverridesParser.create().parse_overrides(list(config.hydra.overrides.task)):
        if o.is_sweep_override():
            params[o.key_or_group] = o.input_line.partition("=")[2]
    return params


class SweepCallback(Callback):
    """Parent MLflow run and summary for every Hydra multirun."""

    def __init__(self) -> None:
        self.tracker = None
        self.sweep_dir: Path | None = None
        self.trials = None  # an Optuna sweep's asked trials (facenet/study.py)

    def __getstate__(self) -> dict:
        """Launchers that run jobs in other processes pickle the callbacks: the parent run stays here."""
        return {"tracker": None, "sweep_dir": None, "trials": None}

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        # Hydra turns a callback's exception into a one-line warning: say what happened, then stop the sweep
        from facenet.errors import UserError

        try:
            self._start(config)
        except UserError as err:
            log.error("%s", err)
            raise SystemExit(1) from None
        except Exception:
            log.exception("could not set up the sweep's parent run")
            raise SystemExit(1) from None

    def _start(self, config: DictConfig) -> None:
        from hydra.utils import instantiate

        from facenet.errors import UserError
        from facenet.provenance import run_tags
        from facenet.tracking import MlflowTracker, flatten

        self.params = _sweeper_params(config)
        if "submitit" in str(config.hydra.launcher.get("_target_", "")).lower():
            from facenet.jobs.launcher import RESOURCE_KEYS, override_key, varying_hardware

            swept = [k for k in self.params if override_key(k) in RESOURCE_KEYS]
            if swept:
                raise varying_hardware(swept)
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        if "optuna" in str(config.hydra.sweeper.get("_target_", "")).lower():
            from facenet.study import AskedTrials, check_shared, compatible_storage

            check_shared(config.hydra.sweeper.get("storage"), config.hydra.sweeper.get("study_name"))
            compatible_storage()
            self.trials = AskedTrials()
            self.trials.start()
        earlier = self._earlier()
        self.sweep_id = earlier["sweep_id"] if earlier else f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        base = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
        try:
            params = flatten(OmegaConf.to_container(base, resolve=True))
        except Exception:  # noqa: BLE001 - an unresolvable key must not stop the sweep; the jobs will report it
            params = flatten(OmegaConf.to_container(base, resolve=False))
        # the parent shows what varies as sweep.<key> = its sweep spec, not the base value
        params = {k: v for k, v in params.items() if not any(k == p or k.startswith(p + ".") for p in self.params)}
        params.update({f"sweep.{k}": v for k, v in self.params.items()})
        try:
            self.tracker = instantiate(config.tracking)
            if not isinstance(self.tracker, MlflowTracker):  # tracking=off: summary files only
                self.tracker = None
            else:
                self.tracker.run_name = f"sweep {config.hydra.job.config_name} {self.sweep_id}"
                tags = {
                    **run_tags("sweep"),
                    "sweep_id": self.sweep_id,
                    "sweep_dir": str(self.sweep_dir),
                    "sweep.sweeper": str(config.hydra.sweeper._target_).rsplit(".", 1)[-1],
                    "sweep.launcher": str(config.hydra.launcher._target_).rsplit(".", 1)[-1],
                }
                tags["hydra_overrides"] = " ".join(config.hydra.overrides.task) or "(none)"
                if earlier and earlier.get("parent_run_id"):  # resubmitted: the same parent run goes on
                    self.tracker.resume(earlier["parent_run_id"], params, tags, 0)
                else:
                    self.tracker.start(params, tags)
        except UserError as err:
            log.error("%s", err)
            raise SystemExit(1) from None
        from facenet.runs import owner

        # what every job reads, in its own process or on another machine (the sweep dir is shared): the parent run,
        # and the process that launched the sweep (a job in another process is stopped alone by a signal)
        state = {"sweep_id": self.sweep_id, "params": self.params, **owner()}
        if self.tracker is not None:
            state.update(parent_run_id=self.tracker.run_id, tracking_uri=self.tracker.uri)
        (self.sweep_dir / SWEEP_FILE).write_text(json.dumps(state, indent=1))
        atexit.register(self._abandon)
        log.info("sweep %s over %s -> %s", self.sweep_id, ", ".join(self.params) or "(no parameters)", self.sweep_dir)

    def _earlier(self) -> dict | None:
        """The sweep this folder already holds (a resubmission: `hydra.sweep.dir=<its folder>`); it must be the same
        sweep."""
        from facenet.errors import ConfigError

        path = self.sweep_dir / SWEEP_FILE
        if not path.is_file():
            return None
        earlier = json.loads(path.read_text())
        if earlier.get("params") != self.params:
            raise ConfigError(
                f"{self.sweep_dir} holds sweep {earlier.get('sweep_id')} over {earlier.get('params')}, not "
                f"{self.params}: resubmit it with the same sweep, or choose another hydra.sweep.dir"
            )
        log.info(
            "sweep %s resubmitted in %s: its jobs go on (resume=auto continues the unfinished ones)",
            earlier.get("sweep_id"),
            self.sweep_dir,
        )
        return earlier

    def _abandon(self) -> None:
        """The process exits without on_multirun_end (interrupted, or the sweeper raised): close the parent KILLED,
        and an Optuna sweep's trials still running FAIL."""
        if self.trials is not None:
            self.trials.close_running("its sweep process was stopped")
        self._close("KILLED")

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        """Summary, plots, comparison and the parent run's end; then, if a job failed, the command exits 1 (a
        callback's exception would be a warning, so SystemExit: Hydra lets it through)."""
        atexit.unregister(self._abandon)
        if self.trials is not None:
            self.trials.stop()
        failed = self._finish()
        if failed:
            log.error("%d sweep job(s) failed (see the summary above)", failed)
            raise SystemExit(1)

    def _finish(self) -> int:
        """Everything the sweep leaves behind; returns how many of its jobs failed."""
        table = summarize(self.sweep_dir)
        if table.empty:
            log.warning("sweep %s: no job directories under %s", self.sweep_id, self.sweep_dir)
            self._close("FAILED")
            return 0
        table.insert(0, "sweep_id", self.sweep_id)
        csv = self.sweep_dir / SUMMARY_CSV
        table.to_csv(csv, index=False)
        files = [csv, *self._plots(table)]
        failed = table[table["status"] != "FINISHED"]
        ok = table[table["status"] == "FINISHED"].dropna(subset=[METRIC])
        swept = varying(table, override_columns(table))
        shown = [c for c in ("job", "status", *swept, METRIC, f"{METRIC}_std") if c in table]
        log.info("sweep %s summary (%s):\n%s", self.sweep_id, csv, table[shown].to_string(index=False))
        for _, row in failed.iterrows():
            log.error("job %s %s: %s", row["job"], row["status"], row.get("error") or "no error recorded")
        counts = table["status"].value_counts()
        log.info(
            "sweep %s: %d of %d job(s) finished%s",
            self.sweep_id,
            int(counts.get("FINISHED", 0)),
            len(table),
            "".join(f", {int(n)} {status}" for status, n in counts.items() if status != "FINISHED"),
        )
        if len(failed):
            log.info(
                "to continue the unfinished jobs: the same command with hydra.sweep.dir=%s resume=auto", self.sweep_dir
            )
        optuna = self.sweep_dir / "optimization_results.yaml"
        if optuna.is_file():
            files.append(optuna)
        comparison = self._compare(len(ok))
        if self.tracker is None:
            return len(failed)
        for path in comparison:
            self.tracker.log_artifact(path, "comparison")
        metrics = {
            "sweep/jobs": len(table),
            "sweep/finished_jobs": len(table) - len(failed),
            "sweep/failed_jobs": len(failed),
            "sweep/killed_jobs": int((table["status"] == "KILLED").sum()),
        }
        if len(ok):
            best = ok.loc[ok[METRIC].idxmax()]
            metrics[f"best/{METRIC}"] = float(best[METRIC])
            self.tracker.client.set_tag(self.tracker.run_id, "best_run_id", str(best["run_id"]))
            self.tracker.client.set_tag(self.tracker.run_id, "best_job", str(best["job"]))
            best_overrides = {c: getattr(best[c], "item", lambda v=best[c]: v)() for c in override_columns(table)}
            self.tracker.client.set_tag(self.tracker.run_id, "best_overrides", json.dumps(best_overrides, default=str))
        if optuna.is_file():
            result = OmegaConf.to_container(OmegaConf.load(optuna))
            if "best_params" in result:
                for key, value in result["best_params"].items():
                    self.tracker.client.log_param(self.tracker.run_id, f"optuna.best.{key}", value)
                metrics["optuna/best_value"] = float(result["best_value"])
        self.tracker.log_metrics(metrics, 0)
        for path in files:
            self.tracker.log_artifact(path)
        self._close("FINISHED" if len(ok) else "FAILED")
        return len(failed)

    def _compare(self, finished: int) -> list[Path]:
        """The finished jobs side by side (`facenet compare`) in `<sweep dir>/comparison`; a job set that cannot be
        compared (one job, different pair sets, reports of an older version) is said in one line, not raised."""
        from facenet.comparison import compare, resolve
        from facenet.comparison.report import ARTIFACTS
        from facenet.errors import UserError

        if finished < 2:
            return []
        try:
            table, out = compare(resolve([str(self.sweep_dir)]), self.sweep_dir / "comparison")
        except UserError as err:
            log.warning("sweep %s: no comparison of its runs: %s", self.sweep_id, err)
            return []
        except Exception:  # noqa: BLE001 - the sweep's summary must not be lost to a figure
            log.exception("sweep %s: the comparison of its runs failed", self.sweep_id)
            return []
        log.info("sweep %s comparison (%s):\n%s", self.sweep_id, out, table.to_string(index=False))
        return [out / name for name in ARTIFACTS]

    def _plots(self, table: pd.DataFrame) -> list[Path]:
        from facenet.sweep_plots import parallel_coordinates, sweep_plot

        swept = varying(table, override_columns(table))
        if not swept or table[METRIC].notna().sum() == 0:
            return []
        if len(swept) == 1:
            return [sweep_plot(table, swept[0], self.sweep_dir / f"sweep_{METRIC}.png")]
        return [parallel_coordinates(table, swept, self.sweep_dir / "sweep_parallel_coordinates.png")]

    def _close(self, status: str) -> None:
        if self.tracker is not None:
            self.tracker.end(status)
            self.tracker = None
