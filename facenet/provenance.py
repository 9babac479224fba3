"""What a run needs to be reproduced from MLflow alone: code version, installed packages, how Hydra was called.

`run_tags()` is recorded on every run; `rerun_command()` turns those tags back into a `run.py` command line.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from facenet.errors import UserError

REPO = Path(__file__).resolve().parent.parent
# Packages whose versions become individual tags (`version.<name>`); every installed distribution goes into the
# `environment.json` artifact.
KEY_PACKAGES = (
    "facenet",
    "mindspore",
    "hydra-core",
    "omegaconf",
    "numpy",
    "pandas",
    "mlflow",
    "opencv-python-headless",
    "optuna",
    "hydra-optuna-sweeper",
    "hydra-joblib-launcher",
)
RERUN_ENV = "FACENET_RERUN_OF"


def git_state(repo: Path = REPO) -> dict[str, str]:
    """{'git_commit': sha, 'git_dirty': 'true'|'false'} for a git checkout, {} otherwise."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=repo)
        if commit.returncode != 0:
            return {}
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=repo,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git_commit": commit.stdout.strip(), "git_dirty": str(bool(status.stdout.strip())).lower()}


def package_versions(names: tuple[str, ...] | None = None) -> dict[str, str]:
    """Installed versions of `names` (default: every installed distribution), sorted by name."""
    if names is None:
        found = {d.metadata["Name"]: d.version for d in metadata.distributions() if d.metadata["Name"]}
        return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def environment() -> dict:
    """The environment.json artifact: interpreter, platform, every installed package."""
    return {
        "python": sys.version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "argv": sys.argv,
        "packages": package_versions(),
    }


def hydra_call() -> dict[str, str]:
    """How Hydra was invoked for this job: overrides (readable and as JSON), config name, extra config dir, mode."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    tags = {
        "hydra_overrides": " ".join(overrides) or "(none)",
        "hydra_overrides_json": json.dumps(overrides),
        "hydra_config_name": str(hc.job.config_name),
        "hydra_mode": str(hc.mode.name if hc.mode is not None else "RUN"),
        # which option of every config group (what `facenet compare` labels runs by)
        "hydra_choices": json.dumps(
            {str(k): str(v) for k, v in hc.runtime.choices.items() if not str(k).startswith("hydra")}
        ),
    }
    dirs = [s.path for s in hc.runtime.config_sources if s.provider == "command-line" and s.schema == "file"]
    if dirs:
        tags["hydra_config_dir"] = dirs[0]
    return tags


def run_tags(task: str) -> dict[str, str]:
    """Tags recorded on every run."""
    tags = {"task": task, **git_state(), **hydra_call()}
    tags["python"] = platform.python_version()
    tags.update({f"version.{k}": v for k, v in package_versions(KEY_PACKAGES).items()})
    if os.environ.get(RERUN_ENV):
        tags["rerun_of"] = os.environ[RERUN_ENV]
    return tags


def rerun_command(tags: dict[str, str], extra: list[str] = (), python: str = sys.executable) -> list[str]:
    """The `run.py` command that repeats a logged run: same config name and config dir, same overrides, single
    run (a job of a sweep is re-run alone), then `extra` overrides."""
    if "hydra_overrides_json" not in tags:
        raise UserError(
            "this run has no recorded Hydra overrides (tag hydra_overrides_json): it was not started by "
            "run.py, or by a version of facenet that did not record them"
        )
    cmd = [python, str(REPO / "run.py")]
    config_dir = tags.get("hydra_config_dir")
    if config_dir:
        cmd += ["--config-dir", config_dir]
    if tags.get("hydra_config_name", "config") != "config":
        cmd += ["--config-name", tags["hydra_config_name"]]
    overrides = json.loads(tags["hydra_overrides_json"])
    cmd += overrides
    threads = tags.get("cpu_threads", "default")
    if threads != "default" and not any(o.startswith("hardware.cpu_threads=") for o in overrides):
        cmd.append(f"hardware.cpu_threads={threads}")  # e.g. a parallel sweep job's share of the cores
    if config_dir or tags.get("hydra_mode") == "MULTIRUN":
        cmd.append("hydra.mode=RUN")  # sweep files set hydra.mode=MULTIRUN; one job is one run
    return cmd + list(extra)
