"""`facenet gpu-env`: the environment MindSpore's GPU plugin needs, as shell exports: eval "$(facenet gpu-env)"."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "gpu-env"
HELP = 'environment for MindSpore\'s GPU plugin: eval "$(facenet gpu-env)"'
SHIM_DIR = str(Path.home() / ".cache" / "facenet" / "cuda-shim")  # also where `facenet doctor` looks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--shim-dir."""
    parser.add_argument("--shim-dir", default=SHIM_DIR, help="where to write the nvcc shim (when no CUDA toolkit)")


def run(args: argparse.Namespace) -> int:
    """One `export KEY=VALUE` line per variable."""
    from facenet.doctor import gpu_env

    for key, value in gpu_env(Path(args.shim_dir)).items():
        print(f"export {key}={value}")
    return 0
