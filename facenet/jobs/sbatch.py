"""The sbatch script `python run.py -m hydra/launcher=submitit_slurm ...` submits, rendered without a cluster
(`facenet sbatch`): the launcher built from the same config, its parameters turned into submitit's script."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

CONF = Path(__file__).resolve().parents[2] / "conf"


@contextlib.contextmanager
def _srun_assumed() -> Iterator[None]:
    """submitit's SLURM executor refuses to exist where `srun` is not on PATH; rendering needs no srun."""
    from submitit.slurm.slurm import SlurmExecutor

    original = SlurmExecutor.__dict__["affinity"]
    SlurmExecutor.affinity = classmethod(lambda cls: 2)
    try:
        yield
    finally:
        SlurmExecutor.affinity = original


def launcher_for(overrides: list[str], option: str = "submitit_slurm"):
    """The launcher `run.py -m hydra/launcher=OPTION OVERRIDES` would build, set up on that config."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.core.utils import setup_globals

    from facenet.config.schema import register

    register()
    setup_globals()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="run"):
        cfg = compose("config", [f"hydra/launcher={option}", *overrides], return_hydra_config=True)
    launcher = Plugins.instance()._instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    return launcher


def render(launcher, jobs: int = 1, python: str | None = None) -> str:
    """The script `launcher` submits for a sweep of `jobs` jobs (one sbatch array when more than one). `python`: the
    interpreter the script runs (default: this one, as a real submission does)."""
    from submitit.slurm.slurm import _make_sbatch_string

    with _srun_assumed():
        executor = launcher._executor()._executor  # AutoExecutor -> its SlurmExecutor
    params = dict(executor.parameters)
    if jobs > 1:
        params["map_count"] = jobs
    if python is not None:
        executor.python = python
    return _make_sbatch_string(command=executor._submitit_command_str, folder=executor.folder, **params)
