"""A model on disk: a checkpoint (`x.ckpt`) and its sidecar (`x.json`), which says how to rebuild the network and
feed it (backbone and head config, input size, normalisation). Everything that reads or writes a model file goes
through here: training's checkpoints, warm start and resume, `task=eval`, export, inference and the conversion of
published weights (`pretrained`); `load` turns what a user names into a network."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import mindspore as ms
from mindspore import nn
from omegaconf import DictConfig, OmegaConf

from facenet.data.images import normalization
from facenet.errors import ConfigError, first_line
from facenet.interrupts import partial_file
from facenet.models.build import build_network
from facenet.models.embedding import EmbeddingNet

# The classes a sidecar's `backbone` / `head` may name: the project's own, no other. A sidecar is data (it may come
# from anywhere) and what it names is instantiated, so the list is written here, not read from conf/ (an installed
# package has no conf/). A new backbone adds its class here; tests/test_models.py checks every option is listed.
MODEL_CLASSES = {
    "backbone": (
        "facenet.models.resnet.ResNet",
        "facenet.models.mobilefacenet.MobileFaceNet",
        "facenet.models.inception_resnet_v1.InceptionResNetV1",
    ),
    "head": ("facenet.models.head.EmbeddingHead",),
}


def model_classes(group: str) -> dict[str, type]:
    """`_target_` -> schema (derived from its signature, as for a config option) of the classes of `group` a
    sidecar may name."""
    from facenet.config import derive
    from facenet.config.schema import SUPPLIED, TIES

    return {target: derive.schema(target, SUPPLIED.get(group, ()), TIES) for target in MODEL_CLASSES[group]}


def sidecar(path: str | Path) -> Path:
    """`x.ckpt` -> `x.json`: what is needed to rebuild and feed the network (model config, preprocessing)."""
    return Path(path).with_suffix(".json")


def save_model(cell: nn.Cell, path: Path, spec: Mapping) -> None:
    """A checkpoint and its sidecar, each written under a temporary name and renamed, the sidecar last (a
    checkpoint counts once its sidecar is there): a crash, an interrupt or a full disk never leaves a half-written
    file under a real name, nor a temporary one. OSError goes on to the caller, which names what failed."""
    with partial_file(sidecar(path)) as tmp_spec, partial_file(path) as tmp:
        ms.save_checkpoint(cell, str(tmp))
        tmp_spec.write_text(json.dumps(spec, indent=2))


def model_spec(cfg: DictConfig) -> dict:
    """What a checkpoint of the run `cfg` describes needs to be rebuilt and fed exactly as in training."""
    return {
        "model": {
            "backbone": OmegaConf.to_container(cfg.backbone, resolve=True),
            "head": OmegaConf.to_container(cfg.head, resolve=True),
        },
        "preprocess": {
            "image_size": int(cfg.preprocess.image_size),
            "channel_order": "RGB",
            "normalize": normalization(cfg.preprocess.normalize),
            "layout": "NCHW",
            "align": OmegaConf.to_container(cfg.preprocess.align, resolve=True),
        },
        "embedding_size": int(cfg.embedding_size),
    }


def read_spec(ckpt: str | Path) -> dict:
    """The sidecar of `ckpt`, checked: model config with allowed targets and the preprocessing spec."""
    path = sidecar(ckpt)
    try:
        spec = json.loads(path.read_text())
        model, size = spec["model"], int(spec["preprocess"]["image_size"])
        model["backbone"], model["head"] = (_checked(model[group], group, path) for group in ("backbone", "head"))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: a checkpoint needs its sidecar (model and preprocessing spec)") from None
    except ConfigError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError(f"{path} is not a valid checkpoint sidecar ({type(err).__name__}: {err})") from None
    if size < 1:
        raise ConfigError(f"{path}: bad image size {size}")
    spec["preprocess"]["normalize"] = normalization(spec["preprocess"].get("normalize", "unit"))
    return spec


def _checked(section: Mapping, group: str, path: Path) -> dict:
    """A sidecar's backbone or head section, validated by the schema of the class it names (which must be one of
    the project's): unknown keys, wrong types and nested `_target_`s are refused, so nothing else is built."""
    from omegaconf.errors import OmegaConfBaseException

    classes = model_classes(group)
    target = section.get("_target_")
    if target not in classes:
        raise ConfigError(
            f"{path} names {group} class {target!r}, which is not one of this project's "
            f"({', '.join(sorted(classes))}); a sidecar builds nothing else"
        )
    try:
        node = OmegaConf.merge(OmegaConf.structured(classes[target]), dict(section))
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as err:
        first = first_line(err)
        raise ConfigError(f"{path}: its {group} section does not fit {classes[target].__name__} ({first})") from None


class CheckpointUnreadable(ConfigError):
    """A checkpoint file that cannot be read (truncated or corrupt)."""


def read_checkpoint(path: str | Path) -> dict:
    """All parameters of a checkpoint file; CheckpointUnreadable (naming it) if it cannot be read."""
    try:
        return ms.load_checkpoint(str(path))
    except (ValueError, RuntimeError, OSError) as err:
        first = first_line(err)
        raise CheckpointUnreadable(f"cannot read checkpoint {path}: {first}") from None


def load_network_weights(net: nn.Cell, path: str | Path) -> None:
    """Load the network's parameters from a checkpoint (a training checkpoint also holds optimizer state, which
    is left out); every parameter of `net` must be there with its shape."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {str(path)!r} does not exist")
    params = read_checkpoint(path)
    wanted = {p.name: p for p in net.get_parameters()}
    picked = {k: v for k, v in params.items() if k in wanted}
    missing = sorted(set(wanted) - set(picked))
    shapes = [k for k, v in picked.items() if tuple(v.shape) != tuple(wanted[k].shape)]
    if missing or shapes:
        raise ConfigError(
            f"checkpoint {path} does not fit this network: {len(missing)} parameters missing"
            + (f" (e.g. {', '.join(missing[:3])})" if missing else "")
            + (f", {len(shapes)} with other shapes (e.g. {', '.join(shapes[:3])})" if shapes else "")
        )
    ms.load_param_into_net(net, picked, strict_load=True)


def network_from_spec(spec: Mapping) -> EmbeddingNet:
    """A fresh network with the architecture and input size a (checked) sidecar describes."""
    model = spec["model"]
    return build_network(model["backbone"], model["head"], int(spec["preprocess"]["image_size"]))
