"""Fine-tuning a trained model: backbone stages kept fixed (by name), batch norm statistics frozen."""

from __future__ import annotations

import logging

from mindspore import nn

from facenet.errors import ConfigError
from facenet.models.embedding import EmbeddingNet

log = logging.getLogger(__name__)

BN_MODES = ("train", "frozen")


def _freeze_batch_norm(cell: nn.Cell) -> int:
    """Every batch norm under `cell` normalises with its running statistics and leaves them as they are, in
    training too (its scale and shift still train unless frozen)."""
    count = 0
    for _, sub in cell.cells_and_names():
        if isinstance(sub, nn.BatchNorm1d | nn.BatchNorm2d):
            sub.use_batch_statistics = False
            count += 1
    return count


def stage_names(net: EmbeddingNet) -> list[str]:
    """The backbone's top-level stages, as `finetune.freeze` names them."""
    return list(net.backbone.name_cells())


def apply_finetune(net: EmbeddingNet, freeze: list[str], bn: str) -> None:
    """Keep the named backbone stages fixed (no gradient, batch norm statistics frozen) and, with bn="frozen",
    freeze every batch norm's statistics. A name may be a stage (`block35`) or a path below one (`block17.0`)."""
    if bn not in BN_MODES:
        raise ConfigError(f"finetune.bn must be one of {BN_MODES}, got {bn!r}")
    cells = dict(net.backbone.cells_and_names())
    unknown = [name for name in freeze if name not in cells or not name]
    if unknown:
        raise ConfigError(
            f"finetune.freeze names {unknown}, which this backbone does not have; its stages are {stage_names(net)}"
        )
    frozen = 0
    for name in freeze:
        for param in cells[name].get_parameters():
            if param.requires_grad:
                param.requires_grad = False
                frozen += param.size
        _freeze_batch_norm(cells[name])
    if bn == "frozen":
        _freeze_batch_norm(net)
    if freeze or bn == "frozen":
        statistics = "frozen" if bn == "frozen" else "trained outside the fixed stages"
        log.info(
            "fine-tuning: %s kept fixed (%.2fM parameters); batch norm statistics %s",
            ", ".join(freeze) or "nothing",
            frozen / 1e6,
            statistics,
        )
