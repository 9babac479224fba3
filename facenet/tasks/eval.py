"""`task=eval ckpt=PATH`: a checkpoint, or an exported `.mindir` / `.onnx` with its model card, scored on the
configured protocol with the model's own architecture and preprocessing (from its sidecar or card); nothing is
trained."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from facenet.config.overrides import Reads
from facenet.tasks.base import RunContext, Task


def _without_sidecar(ckpt: str | None) -> bool:
    """A checkpoint file without its sidecar (the network is then built from the config)."""
    from facenet.models.exported import is_model_file

    if not ckpt or str(ckpt).startswith("pretrained:") or is_model_file(ckpt):
        return False  # a published model has its sidecar; an exported file its model card
    from facenet.models.io import sidecar

    path = Path(ckpt).expanduser()
    return path.is_file() and not sidecar(path).is_file()


class Eval(Task):
    name = "eval"
    reads = Reads(
        keys=frozenset(
            {
                "ckpt",
                "eval",
                "hardware",
                "tracking",
                "output_dir",
                "data_dir",
                "max_image_pixels",
                "preprocess.image_size",
            }
        ),
        from_checkpoint=True,
        unlisted=frozenset({"preprocess.image_size"}),  # read only to refuse a size other than the checkpoint's
    )

    def reads_for(self, cfg: DictConfig) -> Reads:
        return self.reads.with_network() if _without_sidecar(cfg.ckpt) else self.reads

    def run(self, cfg: DictConfig, context: RunContext) -> dict[str, float]:
        from facenet.evaluation.checkpoint import evaluate_checkpoint

        # set by the config itself (an override, an experiment), not inherited from the dataset's default
        preprocess_set = not OmegaConf.is_interpolation(context.unresolved.preprocess, "image_size")
        return evaluate_checkpoint(cfg, context.run_dir, context.tracker, preprocess_set)
