"""`facenet rerun`: run a logged MLflow run again from its recorded config and overrides."""

from __future__ import annotations

import argparse
import sys

from facenet.errors import UserError, first_line

NAME = "rerun"
HELP = "run a logged MLflow run again from its recorded config and overrides"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """RUN_ID [OVERRIDES...], the MLflow store, --dry-run."""
    parser.add_argument("run_id", help="MLflow run id (a job of a sweep is re-run alone)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, applied last")
    parser.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, else outputs/mlflow.db)")
    parser.add_argument("--dry-run", action="store_true", help="print the command, do not run it")


def run(args: argparse.Namespace) -> int:
    """Print the run's command line (warning when the code or its tree differ), then run it; its exit code."""
    import os
    import subprocess

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from facenet.provenance import RERUN_ENV, git_state, rerun_command
    from facenet.tracking import existing_store

    uri = existing_store(args.tracking_uri)
    try:
        run = MlflowClient(uri).get_run(args.run_id)
    except MlflowException as err:
        raise UserError(f"cannot read run {args.run_id} from {uri}: {first_line(err)}") from None
    tags = run.data.tags
    cmd = rerun_command(tags, args.overrides)
    now = git_state()
    if tags.get("git_commit") and now.get("git_commit") != tags["git_commit"]:
        print(
            f"warning: run {args.run_id} was logged at commit {tags['git_commit'][:12]}, the code here is at "
            f"{now.get('git_commit', 'an unknown commit')[:12]}: results may differ",
            file=sys.stderr,
        )
    if tags.get("git_dirty") == "true":
        print("warning: that run's working tree had uncommitted changes (git_dirty=true)", file=sys.stderr)
    print(" ".join(cmd))
    if args.dry_run:
        return 0
    return subprocess.run(cmd, env={**os.environ, RERUN_ENV: args.run_id}).returncode
