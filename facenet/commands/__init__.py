"""The `facenet` subcommands, one module each. A module states its contract (`Command`) and is registered below:
adding a command is one file in this folder and one line in `_MODULES`."""

from __future__ import annotations

import argparse
from importlib import import_module
from typing import Protocol


class Command(Protocol):
    """What a command module defines. Imports that take time (MindSpore, pandas) belong inside `run`, so that
    `facenet --help` and every other command stay quick."""

    NAME: str  # the subcommand, as typed: `facenet NAME ...`
    HELP: str  # its line in `facenet --help`

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...  # the exit code; raise UserError for a one-line error


_MODULES = (  # in the order `facenet --help` lists them
    "align",
    "score",
    "pack",
    "unpack",
    "pack_pairs",
    "triplets",
    "openset_protocol",
    "compare",
    "rerun",
    "embed",
    "verify",
    "identify",
    "gallery",
    "cluster",
    "calibrate",
    "pretrained",
    "runs",
    "doctor",
    "sbatch",
    "gpu_env",
)
COMMANDS: tuple[Command, ...] = tuple(import_module(f"{__name__}.{module}") for module in _MODULES)
