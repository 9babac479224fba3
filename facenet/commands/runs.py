"""`facenet runs clean`: close FAILED the runs a kill -9, OOM or power cut left RUNNING."""

from __future__ import annotations

import argparse
from pathlib import Path

from facenet.errors import UserError

NAME = "runs"
HELP = "runs a kill -9 / OOM / power cut left RUNNING: close them FAILED"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """clean, --output-dir, --dry-run."""
    parser.add_argument("action", choices=("clean",))
    parser.add_argument("--output-dir", default="outputs", help="the runs' output_dir (default outputs)")
    parser.add_argument("--dry-run", action="store_true", help="list them, change nothing")


def run(args: argparse.Namespace) -> int:
    """Close (or, with --dry-run, list) the stale runs under --output-dir."""
    import logging

    from facenet.runs import close_stale

    if not Path(args.output_dir).is_dir():
        raise UserError(f"--output-dir {args.output_dir}: no such folder")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    stale = close_stale(args.output_dir, found_by="facenet runs clean", dry_run=args.dry_run)
    if args.dry_run:
        for run in stale:
            print(f"{run.run_dir}: RUNNING, but process {run.state.get('pid')} is gone")
    verb = "would close" if args.dry_run else "closed"
    print(
        f"{verb} {len(stale)} run(s) FAILED under {args.output_dir}"
        if stale
        else f"no run under {args.output_dir} is left RUNNING by a process that is gone"
    )
    return 0
