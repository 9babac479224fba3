"""Hydra's submitit launchers (`hydra/launcher=submitit_slurm | submitit_local`), with three changes:

- the job's resources come from the run's `hardware` group where the launcher leaves them 0 / null: nodes =
  `hardware.nodes`, tasks per node = `hardware.ranks_per_node` (each task is one data-parallel rank:
  `facenet.jobs.environment`), GPUs per node = the ranks per node on GPU hardware;
- a sweep that varies the hardware is refused (one sbatch array has one resource request);
- a job whose process dies (killed, out of memory, a lost node) returns nothing, as a failed job does, and is listed
  CRASHED in the summary, instead of an exception that ends the sweep and loses the other jobs' summary.

Jobs are submitted as one array (`map_array`; `array_parallelism` caps how many run at once). Each task of a job runs
the Hydra job; the sweep's parent run is found by every job in `<sweep dir>/sweep.json`, on the shared file system
the sweep directory must be on anyway (submitit keeps its pickles there).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import DictConfig, OmegaConf

from facenet.config.schema import quiet_schema_matching
from facenet.errors import ConfigError, first_line

log = logging.getLogger(__name__)
quiet_schema_matching()  # also in the job's process, which loads the sweep config again

RESOURCE_KEYS = ("hardware", "hardware.nodes", "hardware.ranks_per_node", "hardware.device")
INIT_KEYS = ("submitit_folder", "max_num_timeout")  # executor constructor arguments, not job parameters
GPU_REQUESTS = ("gres", "gpus_per_task", "cpus_per_gpu", "mem_per_gpu")  # any of these: GPUs asked by the user


def override_key(item: str) -> str:
    """The key an override sets (`+hardware.nodes=2` -> `hardware.nodes`)."""
    return item.partition("=")[0].lstrip("+~")


def resources(hardware: DictConfig) -> dict[str, Any]:
    """What a job of this hardware asks the scheduler for: nodes, tasks per node, GPUs per node."""
    ranks = int(hardware.ranks_per_node)
    out: dict[str, Any] = {"nodes": int(hardware.nodes), "tasks_per_node": ranks}
    if str(hardware.device).upper() == "GPU":
        out["gpus_per_node"] = ranks
    return out


def _swept_resources(job_overrides: Sequence[Sequence[str]]) -> list[str]:
    keys = set()
    for overrides in job_overrides:
        for item in overrides:
            key = override_key(item)
            if key in RESOURCE_KEYS:
                keys.add(key)
    varying = []
    for key in sorted(keys):
        values = {next((o for o in job if override_key(o) == key), None) for job in job_overrides}
        if len(values) > 1:
            varying.append(key)
    return varying


def varying_hardware(keys: Sequence[str]) -> ConfigError:
    return ConfigError(
        f"this sweep varies {', '.join(keys)}: the jobs of one submitit sweep share one resource request (nodes, "
        "tasks, GPUs); run one sweep per hardware"
    )


class FacenetSubmitit(BaseSubmititLauncher):
    """The launcher; its SLURM and local classes are in hydra_plugins.facenet_plugins.submitit.py (Hydra's rule)."""

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        derived = resources(config.hardware) if "hardware" in config else {}
        keys = ["nodes", "tasks_per_node"]
        if not any(self.params.get(k) for k in GPU_REQUESTS):  # GPUs asked otherwise (gres=gpu:..): not twice
            keys.append("gpus_per_node")
        for key in keys:  # 0 / null in the launcher's config: derived
            if not self.params.get(key):
                self.params[key] = derived.get(key, None if key == "gpus_per_node" else 1)

    def _executor(self):
        import submitit

        init = {"folder": self.params["submitit_folder"]}
        if self._EXECUTOR == "slurm":
            init["slurm_max_num_timeout"] = self.params.get("max_num_timeout", 0)
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                key if key in base else f"{self._EXECUTOR}_{key}": value
                for key, value in self.params.items()
                if key not in INIT_KEYS and (value is not None or key in base)
            }
        )
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        varying = _swept_resources(job_overrides)
        if varying:  # the sweep callback refuses this before anything starts; here for sweepers that add keys
            log.error("%s", varying_hardware(varying))
            raise SystemExit(1)
        executor = self._executor()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        numbers = [initial_job_idx + i for i in range(len(job_overrides))]
        state = Singleton.get_state()
        jobs = executor.map_array(
            self,
            [list(o) for o in job_overrides],
            ["hydra.sweep.dir"] * len(numbers),
            numbers,
            [f"job_id_for_{n}" for n in numbers],
            [state] * len(numbers),
        )
        log.info(
            "submitit %s: %d job(s) submitted (%s), %s node(s) x %s task(s) each; sweep dir %s",
            self._EXECUTOR,
            len(jobs),
            jobs[0].job_id.split("_")[0] if jobs else "-",
            self.params["nodes"],
            self.params["tasks_per_node"],
            sweep_dir,
        )
        for number, overrides, job in zip(numbers, job_overrides, jobs, strict=True):
            log.info("\t#%d (%s): %s", number, job.job_id, " ".join(filter_overrides(overrides)))
        return [self._result(job, n, o) for job, n, o in zip(jobs, numbers, job_overrides, strict=True)]

    def _result(self, job, number: int, overrides: Sequence[str]) -> JobReturn:
        """Task 0's result. A job whose process died returns nothing, as a job that failed does (run.py returns None
        then): the basic sweeper goes on, Optuna records the trial FAILED, and the summary lists the job CRASHED."""
        try:
            return job.results()[0]
        except Exception as err:  # noqa: BLE001 - submitit's UncompletedJobError / FailedJobError, a lost node
            first = first_line(err)
            log.error("job #%d (%s) ended without a result: %s (log: %s)", number, job.job_id, first, job.paths.stdout)
            died = JobReturn()
            died.overrides = list(overrides)
            died.status = JobStatus.COMPLETED
            died.return_value = None
            died.working_dir = str(Path(str(self.config.hydra.sweep.dir)) / str(number))
            return died
