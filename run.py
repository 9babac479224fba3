"""Hydra entry point: `python run.py [group=option ...] [key=value ...]`; returns the final LFW-style accuracy."""

import logging
import sys

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from facenet.config.schema import register
from facenet.errors import UserError

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from facenet.app import run

    try:
        metrics = run(cfg)
    except (UserError, InstantiationException) as err:
        logging.getLogger("facenet").error("%s", err)
        sys.exit(1)
    return float(metrics.get("accuracy", float("nan")))


if __name__ == "__main__":
    main()
