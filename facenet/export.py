"""A model written out for use elsewhere, by `task=export` and `facenet pretrained export` alike (`export_model`): a
checkpoint copied with its sidecar, or the embedding network alone (images in, L2-normalised embeddings out) as
MindIR, ONNX or AIR with a model card beside it (`<file>.json`) that says how to feed it and where its threshold comes
from."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import mindspore as ms

from facenet.errors import ConfigError
from facenet.interrupts import partial_file

log = logging.getLogger(__name__)

FORMATS = {"MINDIR": ".mindir", "ONNX": ".onnx", "AIR": ".air"}  # graph formats; CKPT is a copy
ONNX_DEFAULT_BATCH = 32  # MindSpore exports ONNX with static shapes only


def model_card(spec: dict, fmt: str, batch_size: int | None, source: Path, file: Path) -> dict:
    """What a user of the exported file needs: preprocessing, output, threshold (and the FAR it corresponds to on
    the evaluation that chose it), where it came from."""
    metrics = spec.get("metrics", {})
    threshold = None
    if "threshold" in metrics:
        threshold = {
            "distance": metrics["threshold"],
            "metric": "L2 distance between embeddings; same identity if distance <= threshold",
            "chosen_by": "best accuracy on the training folds of the evaluation (mean over 10 folds)",
            "evaluation_accuracy": metrics.get("accuracy"),
            "far": metrics.get("far_at_threshold"),
            "tar": metrics.get("tar_at_threshold"),
            "evaluation_pairs": metrics.get("pairs"),
        }
    return {
        "format": fmt,
        "file": file.name,
        "input": {
            "name": "x",
            "layout": "NCHW",
            "dtype": "float32",
            "batch_size": batch_size or "dynamic",
            "shape": [batch_size or -1, 3, spec["preprocess"]["image_size"], spec["preprocess"]["image_size"]],
        },
        "output": {
            "embedding_size": spec.get("embedding_size"),
            "l2_normalised": True,
            "norm": spec.get("model", {}).get("head", {}).get("scale", 1.0),
        },
        "preprocess": spec["preprocess"],
        "threshold": threshold,
        "model": spec.get("model"),
        "pretrained": spec.get("pretrained"),
        "trained_with": spec.get("loss"),
        "calibration": spec.get("calibration"),
        "training_run_id": spec.get("run_id"),
        "source_checkpoint": str(source),
        "epoch": spec.get("epoch"),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _published_name(ref: str | Path) -> str | None:
    """`pretrained:<name>` -> name: an exported published model is named for it, not for its cache file."""
    return str(ref).removeprefix("pretrained:") if str(ref).startswith("pretrained:") else None


def export_checkpoint(
    ckpt: str | Path, fmt: str, out_dir: str | Path, batch_size: int | None = None, device: str = "CPU"
) -> tuple[Path, Path]:
    """Export `ckpt` (rebuilt from its sidecar; or `pretrained:<name>`) to `out_dir`; returns (model file, model
    card)."""
    from facenet.models.load import load_model, resolve_checkpoint
    from facenet.runtime import ensure_runtime

    fmt = fmt.upper()
    if fmt not in FORMATS:
        raise ConfigError(f"export.format must be one of {sorted(FORMATS)}, got {fmt!r}")
    if fmt == "AIR" and device.upper() != "ASCEND":
        raise ConfigError(
            "export.format=AIR needs an Ascend device (MindSpore writes AIR only there, with "
            "hardware.device=Ascend); on CPU or GPU export MINDIR or ONNX"
        )
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"export.batch_size must be >= 1 or null (dynamic), got {batch_size}")
    ensure_runtime(device)
    if fmt == "ONNX" and batch_size is None:
        batch_size = ONNX_DEFAULT_BATCH
        log.info("ONNX: MindSpore exports static shapes only; batch size %d (export.batch_size to change)", batch_size)
    name = _published_name(ckpt)
    ckpt = resolve_checkpoint(ckpt)
    net, spec = load_model(ckpt)
    size = int(spec["preprocess"]["image_size"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / (name or ckpt.stem)
    example = (
        ms.Tensor(shape=[batch_size, 3, size, size], dtype=ms.float32)
        if batch_size is None
        else ms.Tensor(ms.numpy.zeros((batch_size, 3, size, size), ms.float32))
    )
    file = stem.with_suffix(FORMATS[fmt])
    card = file.with_name(file.name + ".json")
    with partial_file(file) as tmp, partial_file(card) as tmp_card:  # both in place, or neither
        ms.export(net, example, file_name=str(tmp.with_suffix("")), file_format=fmt)
        if not tmp.is_file():
            raise RuntimeError(f"MindSpore did not write {tmp}")
        tmp_card.write_text(json.dumps(model_card(spec, fmt, batch_size, ckpt, file), indent=2))
    log.info("exported %s (%s, batch %s) with model card %s", file, fmt, batch_size or "dynamic", card.name)
    return file, card


def export_model(
    ckpt: str | Path, fmt: str, out_dir: str | Path, batch_size: int | None = None, device: str = "CPU"
) -> tuple[Path, Path]:
    """Write `ckpt` (a path, or `pretrained:<name>`) to `out_dir` as `fmt`, named for the model (the published
    name, else the checkpoint's stem); returns (model file, sidecar or model card). CKPT copies the checkpoint and
    its sidecar; MINDIR, ONNX and AIR export the embedding network (`export_checkpoint`)."""
    if fmt.upper() != "CKPT":
        if fmt.upper() not in FORMATS:
            raise ConfigError(f"export.format must be one of {['CKPT', *sorted(FORMATS)]}, got {fmt!r}")
        return export_checkpoint(ckpt, fmt, out_dir, batch_size, device)
    from facenet.models.io import read_spec, sidecar
    from facenet.models.load import resolve_checkpoint

    if batch_size is not None:
        raise ConfigError(f"batch size {batch_size}: a checkpoint copy has none (MINDIR, ONNX and AIR take one)")
    name = _published_name(ckpt)
    ckpt = resolve_checkpoint(ckpt)
    if not ckpt.is_file():
        raise ConfigError(f"checkpoint {str(ckpt)!r} does not exist")
    read_spec(ckpt)  # a copy is only useful with a valid sidecar
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    file = out_dir / f"{name or ckpt.stem}.ckpt"
    card = sidecar(file)
    with partial_file(file) as tmp, partial_file(card) as tmp_card:  # both in place, or neither
        shutil.copyfile(ckpt, tmp)
        shutil.copyfile(sidecar(ckpt), tmp_card)
    log.info("copied %s with its sidecar %s", file, card.name)
    return file, card
