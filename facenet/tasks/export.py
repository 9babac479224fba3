"""`task=export ckpt=PATH`: the checkpoint's embedding network as `export.format`, with its model card, logged."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from facenet.config.overrides import Reads
from facenet.errors import ConfigError
from facenet.tasks.base import RunContext, Task


class Export(Task):
    name = "export"
    reads = Reads(keys=frozenset({"ckpt", "export", "hardware", "tracking", "output_dir"}), from_checkpoint=True)

    def run(self, cfg: DictConfig, context: RunContext) -> dict[str, float]:
        from facenet.export import export_model

        if not cfg.ckpt:
            raise ConfigError("task=export needs a checkpoint: add ckpt=PATH/TO/file.ckpt")
        out = Path(cfg.export.dir) if cfg.export.dir else context.run_dir / "export"
        model, card = export_model(cfg.ckpt, cfg.export.format, out, cfg.export.batch_size, cfg.hardware.device)
        for path in (model, card):
            context.tracker.log_artifact(path, "export")
        return {"model_bytes": float(model.stat().st_size)}
