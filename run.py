"""Hydra entry point: `python run.py [group=option ...] [key=value ...]`; returns the run's headline metric
(its protocol's: LFW-style accuracy, rank-1, ...).

Sweeps: `python run.py -m margin=0.2,0.5,1.0` or `python run.py --config-dir multirun_sweeps --config-name margin`.
A job of a sweep that fails is logged and recorded FAILED (MLflow, sweep summary) and the sweep goes on; the
command then exits non-zero (`facenet.sweeps.SweepCallback.on_multirun_end`).
"""

import logging
import sys

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from facenet import sweeps
from facenet.config.schema import register
from facenet.errors import RunInterrupted, TrainingInterrupted, UserError

try:
    register()  # the schemas of the primary config and of every group option (facenet/config/schema.py)
except UserError as err:  # an option whose class cannot give a schema: one line, not a traceback
    print(f"error: {err}", file=sys.stderr)
    sys.exit(1)
log = logging.getLogger("facenet")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from facenet.app import run
    from facenet.evaluation.base import objective

    try:
        metrics = run(cfg)
    except (TrainingInterrupted, RunInterrupted) as err:  # SIGTERM / Ctrl-C: stop, the whole sweep too (its parent
        # run is closed KILLED); but a sweep job in a process of its own (submitit, pre-empted by SLURM) ends KILLED
        # alone and the sweep goes on
        log.error("%s", err)
        if sweeps.job_in_own_process():
            return None
        sys.exit(1)
    except (UserError, InstantiationException) as err:
        log.error("%s", err)
        if sweeps.in_multirun():
            return None  # not a float: Optuna records the trial FAILED, other sweepers go on
        sys.exit(1)
    except Exception:
        if not sweeps.in_multirun():
            raise
        log.exception("job failed")
        return None
    return objective(metrics)


if __name__ == "__main__":
    from facenet.interrupts import signal_name, signals_raise

    try:
        with signals_raise():  # SIGTERM as well as Ctrl-C: an exception, so cleanup runs (facenet/interrupts.py)
            main()
    except KeyboardInterrupt as err:  # before or between runs (composing the config, starting up)
        print(f"interrupted by {signal_name(err)}", file=sys.stderr)
        sys.exit(1)
