"""What a user names as a model (a checkpoint path or `pretrained:<name>`) -> a checkpoint file -> a network.

Above both `io` (checkpoint files) and `pretrained` (published weights, converted into checkpoints through `io`).
"""

from __future__ import annotations

from pathlib import Path

from facenet.errors import ConfigError
from facenet.models import pretrained
from facenet.models.embedding import EmbeddingNet
from facenet.models.io import load_network_weights, network_from_spec, read_spec, sidecar


def resolve_checkpoint(ref: str | Path) -> Path:
    """A checkpoint path from what a user typed: `pretrained:<name>` (converted and cached on first use,
    `facenet.models.pretrained`) or a file path."""
    if str(ref).startswith(pretrained.PREFIX):
        return pretrained.resolve(str(ref))
    return Path(ref).expanduser()


def load_model(ckpt: str | Path) -> tuple[EmbeddingNet, dict]:
    """(network with the checkpoint's weights, in inference mode; its sidecar) of a checkpoint written by facenet,
    or of `pretrained:<name>`."""
    ckpt = resolve_checkpoint(ckpt)
    if not ckpt.is_file():
        raise ConfigError(f"checkpoint {str(ckpt)!r} does not exist")
    if not sidecar(ckpt).is_file():
        raise ConfigError(
            f"{ckpt} has no sidecar {sidecar(ckpt).name}: its architecture and preprocessing are unknown; use a "
            "checkpoint written by facenet"
        )
    spec = read_spec(ckpt)
    net = network_from_spec(spec)
    load_network_weights(net, ckpt)
    net.set_train(False)
    return net, spec
