"""`facenet doctor`: what this machine lacks for a hardware option, and whether the shared stores it is given answer
(reachable, the right schema, writable); exit code 1 if anything required is missing."""

from __future__ import annotations

import argparse
from pathlib import Path

from facenet.commands.gpu_env import SHIM_DIR

NAME = "doctor"
HELP = "what this machine lacks for a hardware option; checks tracking / Optuna storage URLs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--hardware, --tracking-uri, --storage (and the hidden --shim-dir, for tests)."""
    parser.add_argument("--hardware", default="cpu", choices=("cpu", "gpu", "cpu_dp", "gpu_dp", "ascend", "ascend_dp"))
    parser.add_argument(
        "--tracking-uri",
        help="an MLflow tracking URI to check: a server (http://HOST:PORT) or a database (postgresql://..., sqlite:///...)",
    )
    parser.add_argument("--storage", help="an Optuna RDB storage URL to check (hydra.sweeper.storage)")
    parser.add_argument("--shim-dir", default=SHIM_DIR, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """One line per check (ok, -- optional and missing, NO), then the verdict."""
    from facenet.doctor import checks

    results = checks(args.hardware, Path(args.shim_dir))
    if args.tracking_uri or args.storage:
        from facenet.stores import check_storage, check_tracking

        results += check_tracking(args.tracking_uri) if args.tracking_uri else []
        results += check_storage(args.storage) if args.storage else []
    width = max(len(c.name) for c in results)
    for c in results:
        optional = "optional" in c.name
        print(f"{'ok ' if c.ok else ('-- ' if optional else 'NO ')} {c.name:<{width}}  {c.detail}")
    required_missing = [c for c in results if not c.ok and "optional" not in c.name]
    what = ", ".join(
        [
            f"hardware={args.hardware}",
            *(["tracking"] if args.tracking_uri else []),
            *(["storage"] if args.storage else []),
        ]
    )
    print(f"{what}: " + ("ready" if not required_missing else f"{len(required_missing)} missing"))
    return 0 if not required_missing else 1
