"""`facenet sbatch`: the sbatch script a SLURM sweep would submit, without a cluster."""

from __future__ import annotations

import argparse

NAME = "sbatch"
HELP = "print the sbatch script `run.py -m hydra/launcher=submitit_slurm OVERRIDES` submits"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Hydra overrides, --jobs, --python."""
    parser.add_argument("overrides", nargs="*", help="run.py overrides, e.g. hardware=gpu_dp hardware.nodes=2")
    parser.add_argument("--jobs", type=int, default=1, help="the sweep's job count (2+: an sbatch array)")
    parser.add_argument("--python", help="the interpreter the script runs (default: this one)")


def run(args: argparse.Namespace) -> int:
    """Print the script."""
    from hydra.errors import HydraException

    from facenet.errors import ConfigError, first_line
    from facenet.jobs.sbatch import launcher_for, render

    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    try:
        launcher = launcher_for(list(args.overrides))
    except HydraException as err:
        raise ConfigError(first_line(err)) from None
    script = render(launcher, args.jobs, args.python)
    print(script, end="" if script.endswith("\n") else "\n")
    return 0
