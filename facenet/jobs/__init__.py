"""Running on a cluster: a job's tasks as MindSpore's data-parallel ranks (`environment`, `scheduler`), Hydra's
submitit launchers with resources taken from the `hardware` group (`launcher`), and the sbatch script they would
submit (`sbatch`). docs/cluster.md."""
