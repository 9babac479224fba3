"""Hydra loads launchers from the `hydra_plugins` package only: facenet's submitit launchers, registered here,
live in `facenet/jobs/launcher.py` (conf/hydra/launcher/submitit_slurm.yaml and submitit_local.yaml)."""

from facenet.jobs.launcher import FacenetSubmitit


class SlurmLauncher(FacenetSubmitit):
    _EXECUTOR = "slurm"


class LocalLauncher(FacenetSubmitit):
    _EXECUTOR = "local"
