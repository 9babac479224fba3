"""The loss contract: embeddings and labels in, a scalar loss and a telemetry vector out."""

from __future__ import annotations

from mindspore import nn


class EmbeddingLoss(nn.Cell):
    """construct(embeddings (B, D), labels (B,), *step_inputs) -> (loss scalar, telemetry (len(TELEMETRY),)).

    Telemetry is computed inside the compiled step (no extra pass) and must carry no gradient
    (`ops.stop_gradient`). `TELEMETRY` names its entries in order: the training loop logs them as
    `train/<name>` and checks them for NaN like the loss itself.

    `USES_MINER`: built with the run's miner (triplet loss); otherwise built without one. `FEATURES`: fed the
    network's features before L2 normalisation (`EmbeddingNet.features`) rather than its embeddings.
    `step_inputs(step)`: extra host-made inputs of global step `step` (a class sample's random keys), passed after
    the labels; a function of the step alone, so a resumed run feeds the same ones.
    """

    TELEMETRY: tuple[str, ...] = ()
    USES_MINER = False
    FEATURES = False

    def step_inputs(self, step: int) -> tuple:
        return ()

    def construct(self, embeddings, labels):
        raise NotImplementedError
