"""`task=export ckpt=PATH`: the checkpoint's embedding network as `export.format`, with its model card, logged;
with `export.quantize=int8`, an INT8 ONNX model that passed the fidelity gate (`facenet.quantization`)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from facenet.config.overrides import Reads
from facenet.errors import ConfigError
from facenet.tasks.base import RunContext, Task


class Export(Task):
    name = "export"
    reads = Reads(keys=frozenset({"ckpt", "export", "hardware", "tracking", "output_dir"}), from_checkpoint=True)

    def reads_for(self, cfg: DictConfig) -> Reads:
        if cfg.export.quantize:  # the fidelity gate scores the run's verification protocol
            return Reads(self.reads.keys | {"eval", "max_image_pixels", "data_dir"}, from_checkpoint=True)
        return self.reads

    def run(self, cfg: DictConfig, context: RunContext) -> dict[str, float]:
        from facenet.export import export_model

        if not cfg.ckpt:
            raise ConfigError("task=export needs a checkpoint: add ckpt=PATH/TO/file.ckpt")
        out = Path(cfg.export.dir) if cfg.export.dir else context.run_dir / "export"
        if cfg.export.quantize:
            return self._int8(cfg, context, out)
        if cfg.export.calibration.root or cfg.export.keep_float:
            raise ConfigError("export.calibration and export.keep_float are for export.quantize=int8")
        model, card = export_model(cfg.ckpt, cfg.export.format, out, cfg.export.batch_size, cfg.hardware.device)
        for path in (model, card):
            context.tracker.log_artifact(path, "export")
        return {"model_bytes": float(model.stat().st_size)}

    def _int8(self, cfg: DictConfig, context: RunContext, out: Path) -> dict[str, float]:
        import os

        from hydra.utils import instantiate

        from facenet.evaluation.protocols import VerificationProtocol
        from facenet.export import export_model
        from facenet.quantization import GateFailed, Settings, export_int8

        if cfg.export.quantize != "int8":
            raise ConfigError(f"export.quantize must be null or int8, got {cfg.export.quantize!r}")
        if str(cfg.export.format).upper() != "ONNX":
            raise ConfigError(
                f"export.quantize=int8 quantises ONNX models (onnxruntime); export.format={cfg.export.format} "
                "has no INT8 path here: set export.format=ONNX"
            )
        settings = Settings.from_config(cfg.export)
        protocol = instantiate(cfg.eval)
        if not isinstance(protocol, VerificationProtocol):
            raise ConfigError(
                "the INT8 fidelity gate scores a verification protocol (pairs): choose eval=lfw, eval=bin or a "
                "generated set, not an identification protocol"
            )
        sets = protocol.prepare(os.cpu_count() or 1)
        if len(sets) != 1:
            raise ConfigError(f"the INT8 fidelity gate scores one pair set; eval holds {len(sets)}: {', '.join(sets)}")
        (pairs,) = sets.values()
        work = context.run_dir / "quantize"
        parent, _ = export_model(cfg.ckpt, "ONNX", work, cfg.export.batch_size, cfg.hardware.device)
        try:
            model, card, fid = export_int8(
                parent,
                out,
                work,
                settings,
                pairs,
                protocol.far_targets,
                protocol.batch_size,
                cfg.hardware.data_workers,
            )
        except GateFailed:
            context.tracker.set_tag("export.gate", "failed")
            if (work / "gate.json").is_file():
                context.tracker.log_artifact(work / "gate.json", "quantize")
            raise
        context.tracker.set_tag("export.gate", "passed")
        for path in (model, card, work / "gate.json"):
            context.tracker.log_artifact(path, "export" if path.parent == out else "quantize")
        return {
            "model_bytes": float(model.stat().st_size),
            "float_model_bytes": float(parent.stat().st_size),
            "gate_cosine_mean": fid.cosine_mean,
            "gate_cosine_min": fid.cosine_min,
            "gate_accuracy_float": fid.accuracy_float,
            "gate_accuracy_int8": fid.accuracy_int8,
            "gate_threshold_int8": fid.threshold_int8,
        }
