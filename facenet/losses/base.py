"""The loss contract: embeddings and labels in, a scalar loss and a telemetry vector out."""

from __future__ import annotations

from mindspore import nn


class EmbeddingLoss(nn.Cell):
    """construct(embeddings (B, D), labels (B,)) -> (loss scalar, telemetry (len(TELEMETRY),)).

    Telemetry is computed inside the compiled step (no extra pass) and must carry no gradient
    (`ops.stop_gradient`). `TELEMETRY` names its entries in order: the training loop logs them as
    `train/<name>` and checks them for NaN like the loss itself.
    """

    TELEMETRY: tuple[str, ...] = ()

    def construct(self, embeddings, labels):
        raise NotImplementedError
