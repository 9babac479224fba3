"""The runs a comparison reads: run directories, sweep directories (their finished jobs), MLflow run ids (a sweep's
parent meaning all its children). Each gives its evaluation report, per-pair scores, config, group choices and cost.

A run known to MLflow whose directory is still on this machine (tag `run_dir`) is read from there; otherwise its
artifacts are downloaded from the tracking store.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from facenet.errors import UserError, first_line
from facenet.runs import RUN_FILE, SWEEP_FILE, job_dirs
from facenet.tracking import existing_store, flatten

EVAL_DIR = "eval"


class ComparisonError(UserError):
    """Runs that cannot be compared, or that cannot be found."""


@dataclass
class RunResult:
    """One run's evaluation, as a comparison needs it."""

    name: str  # how the run is shown when nothing in its config tells it apart
    source: str  # its directory, or `<tracking uri>#<run id>`
    report: dict  # the evaluation's report.json
    scores: pd.DataFrame  # fold, same, distance, left, right: every pair in fold order
    config: dict[str, str] = field(default_factory=dict)  # flattened resolved config
    choices: dict[str, str] = field(default_factory=dict)  # config group -> option
    overrides: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)  # metrics.json (train_minutes, images_per_sec, parameters, ...)
    run_id: str | None = None
    tracking_uri: str | None = None


@dataclass
class Inputs:
    """What `resolve` found: the runs, and where the comparison belongs (a sweep's parent run, if one was given)."""

    runs: list[RunResult]
    tracking_uri: str | None = None
    parent_run_id: str | None = None
    sweep_dir: Path | None = None


def _eval_dir(root: Path, benchmark: str | None, where: str) -> Path:
    """The folder of the report to compare: `eval/`, or for a benchmark suite `eval/<benchmark>` (default: the
    suite's primary set, from `benchmarks.md`)."""
    base = root / EVAL_DIR
    if benchmark:
        if not (base / benchmark / "report.json").is_file():
            sets = sorted(p.parent.name for p in base.glob("*/report.json"))
            raise ComparisonError(
                f"{where} has no evaluation of benchmark {benchmark!r}"
                + (f" (it has: {', '.join(sets)})" if sets else "")
            )
        return base / benchmark
    if (base / "report.json").is_file():
        return base
    table = base / "benchmarks.md"
    if table.is_file():
        lines = table.read_text().splitlines()
        primary = [line.split(":", 1)[1].strip() for line in lines if line.startswith("primary:")]
        sets = sorted(p.parent.name for p in base.glob("*/report.json"))
        name = primary[0] if primary and primary[0] in sets else (sets[0] if sets else None)
        if name:
            return base / name
    raise ComparisonError(f"{where} has no evaluation report ({EVAL_DIR}/report.json): it did not finish an evaluation")


def _read_eval(folder: Path, where: str) -> tuple[dict, pd.DataFrame]:
    try:
        report = json.loads((folder / "report.json").read_text())
    except (OSError, ValueError) as err:
        raise ComparisonError(f"{where}: cannot read {folder / 'report.json'} ({err})") from None
    if report.get("kind") == "openset":  # trials, not pairs: every probe's outcome (facenet.comparison.openset)
        if not (folder / "probes.csv").is_file():
            raise ComparisonError(f"{where}: {folder / 'probes.csv'} is missing beside its open-set report.json")
        return report, pd.read_csv(folder / "probes.csv", keep_default_na=False)
    scores_file = folder / "scores.csv"
    if not scores_file.is_file():
        raise ComparisonError(
            f"{where} has no per-pair scores ({scores_file.name}): it was evaluated by a version of facenet that "
            "did not write them; evaluate its checkpoint with task=eval"
        )
    scores = pd.read_csv(scores_file, dtype={"left": str, "right": str}, keep_default_na=False)
    if list(scores.columns[:3]) != ["fold", "same", "distance"] or len(scores) != report.get("n_pairs"):
        raise ComparisonError(
            f"{where}: {scores_file} does not match its report.json ({len(scores)} rows, {report.get('n_pairs')} pairs)"
        )
    scores["same"] = scores["same"].astype(bool)
    return report, scores


def _hydra_files(root: Path) -> tuple[dict[str, str], list[str]]:
    hydra = root / ".hydra"
    choices, overrides = {}, []
    if (hydra / "hydra.yaml").is_file():
        runtime = OmegaConf.select(OmegaConf.load(hydra / "hydra.yaml"), "hydra.runtime.choices") or {}
        choices = {str(k): str(v) for k, v in runtime.items() if not str(k).startswith("hydra")}
    if (hydra / "overrides.yaml").is_file():
        overrides = [str(o) for o in OmegaConf.load(hydra / "overrides.yaml")]
    return choices, overrides


def _config(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    return flatten(OmegaConf.to_container(OmegaConf.load(path), resolve=False))


def read_run_dir(root: str | os.PathLike, benchmark: str | None = None, name: str | None = None) -> RunResult:
    """A run directory (`<output_dir>/runs/<date>/<time>`, or a sweep's job folder)."""
    root = Path(root)
    state = json.loads((root / RUN_FILE).read_text()) if (root / RUN_FILE).is_file() else {}
    if state.get("status", "FINISHED") != "FINISHED":
        raise ComparisonError(
            f"run {root} is {state['status']} ({state.get('error') or 'no error recorded'}): its "
            "evaluation is from before it ended; compare finished runs"
        )
    report, scores = _read_eval(_eval_dir(root, benchmark, f"run {root}"), f"run {root}")
    choices, overrides = _hydra_files(root)
    metrics_file = root / "metrics.json"
    return RunResult(
        name=name or "/".join(root.parts[-2:]),
        source=str(root),
        report=report,
        scores=scores,
        config=_config(root / "config.yaml"),
        choices=choices,
        overrides=overrides,
        metrics=json.loads(metrics_file.read_text()) if metrics_file.is_file() else {},
        run_id=state.get("run_id"),
        tracking_uri=state.get("tracking_uri"),
    )


def sweep_jobs(sweep_dir: Path) -> list[Path]:
    """A sweep's finished job folders, in job order."""
    done = []
    for job in job_dirs(sweep_dir):
        state = json.loads((job / RUN_FILE).read_text()) if (job / RUN_FILE).is_file() else {}
        if state.get("status") == "FINISHED":
            done.append(job)
    return done


def _from_mlflow(client, run, benchmark: str | None, scratch: Path) -> RunResult:
    """A run from the tracking store: from its directory when that is still here, else from its artifacts."""
    from mlflow.exceptions import MlflowException

    tags = run.data.tags
    run_id = run.info.run_id
    name = run.info.run_name or run_id[:8]
    local = Path(tags.get("run_dir", ""))
    if tags.get("run_dir") and (local / RUN_FILE).is_file():
        try:
            same_run = json.loads((local / RUN_FILE).read_text()).get("run_id") == run_id
        except ValueError:
            same_run = False
        if same_run:
            result = read_run_dir(local, benchmark, name)
            result.choices = result.choices or json.loads(tags.get("hydra_choices", "{}"))
            return result
    where = f"MLflow run {run_id}"
    if run.info.status != "FINISHED":
        raise ComparisonError(
            f"{where} is {run.info.status}: its evaluation is from before it ended; compare finished runs"
        )
    into = scratch / run_id
    into.mkdir(parents=True, exist_ok=True)
    try:
        top = {a.path for a in client.list_artifacts(run_id)}
        for item in ("config.yaml", "metrics.json", EVAL_DIR):
            if item in top:
                client.download_artifacts(run_id, item, str(into))
    except (MlflowException, OSError) as err:
        raise ComparisonError(
            f"{where}: cannot read its artifacts from {client.tracking_uri} ({first_line(err, 200)})"
        ) from None
    report, scores = _read_eval(_eval_dir(into, benchmark, where), where)
    metrics_file = into / "metrics.json"
    return RunResult(
        name=name,
        source=f"{client.tracking_uri}#{run_id}",
        report=report,
        scores=scores,
        config=_config(into / "config.yaml"),
        choices=json.loads(tags.get("hydra_choices", "{}")),
        overrides=json.loads(tags.get("hydra_overrides_json", "[]")),
        metrics=json.loads(metrics_file.read_text()) if metrics_file.is_file() else {},
        run_id=run_id,
        tracking_uri=client.tracking_uri,
    )


def resolve(items: list[str], tracking_uri: str | None = None, benchmark: str | None = None) -> Inputs:
    """Every run named by `items` (directories or MLflow run ids), in the order given, each once."""
    if not items:
        raise ComparisonError("nothing to compare: give run directories, sweep directories or MLflow run ids")
    with tempfile.TemporaryDirectory(prefix="facenet-compare-") as scratch:  # downloads: read into memory
        out = _resolve(items, tracking_uri, benchmark, Path(scratch))
    seen, unique = set(), []
    for r in out.runs:
        key = r.run_id or r.source
        if key not in seen:
            seen.add(key)
            unique.append(r)
    if len(unique) < 2:
        raise ComparisonError(f"a comparison needs at least two runs; {' '.join(items)} gives {len(unique)}")
    out.runs = unique
    return out


def _resolve(items: list[str], tracking_uri: str | None, benchmark: str | None, scratch: Path) -> Inputs:
    found, out = [], Inputs([])
    client = None
    for item in items:
        path = Path(item)
        if path.is_dir() and (path / SWEEP_FILE).is_file():
            jobs = sweep_jobs(path)
            if not jobs:
                raise ComparisonError(f"sweep {path} has no finished job to compare")
            found += [read_run_dir(j, benchmark, f"job {j.name}") for j in jobs]
            sweep = json.loads((path / SWEEP_FILE).read_text())
            if len(items) == 1:
                out.sweep_dir, out.parent_run_id = path, sweep.get("parent_run_id")
                out.tracking_uri = sweep.get("tracking_uri")
        elif path.is_dir():
            if not ((path / RUN_FILE).is_file() or (path / EVAL_DIR).is_dir()):
                raise ComparisonError(
                    f"{path} is neither a run directory (run.json, eval/) nor a sweep directory (sweep.json)"
                )
            found.append(read_run_dir(path, benchmark))
        elif os.sep in item or item.startswith("."):
            raise ComparisonError(f"{item}: no such directory")
        else:
            from mlflow.exceptions import MlflowException
            from mlflow.tracking import MlflowClient

            if client is None:
                uri = existing_store(tracking_uri)
                out.tracking_uri = out.tracking_uri or uri
                client = MlflowClient(uri)
            try:
                run = client.get_run(item)
            except MlflowException as err:
                raise ComparisonError(
                    f"{item} is not a directory, and not a run in {client.tracking_uri}: {first_line(err, 200)}"
                ) from None
            children = client.search_runs(
                [run.info.experiment_id],
                f"tags.mlflow.parentRunId = '{item}' and attributes.status = 'FINISHED'",
                order_by=["attributes.start_time ASC"],
                max_results=10000,
            )
            if children:
                found += [_from_mlflow(client, c, benchmark, scratch) for c in children]
                if len(items) == 1:
                    out.parent_run_id = item
            elif "sweep_id" in run.data.tags and run.data.tags.get("task") == "sweep":
                raise ComparisonError(f"sweep parent run {item} has no finished child run")
            else:
                found.append(_from_mlflow(client, run, benchmark, scratch))
    out.runs = found
    return out
