"""Structured-config schemas: every YAML option extends one, so a misspelt key or a wrong type fails before any
work starts. `register()` puts them in Hydra's ConfigStore: `base_config` for the primary config and, for each
group option `conf/<group>/<option>.yaml`, `<group>/<option>_schema`, which that file's defaults list names first.

The schemas give types, not values: every value a run uses is written once, in `conf/`. An option that builds one
of the project's classes (its YAML's `_target_`) gets a schema derived from that class's annotated signature
(`derive.py`); written here are only the primary config with its sections and the schemas of outside classes
(MindSpore's optimisers). What a schema does set is wiring: the class to build (`_target_`, `_partial_`) and the
interpolations that tie a field to a top-level knob (`TIES`). `tests/test_config.py` fails on any other value.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from facenet.config import derive
from facenet.errors import ConfigError

CONF = Path(__file__).resolve().parents[2] / "conf"


# ---------------------------------------------------------------- sections of the primary config
@dataclass
class AlignConf:
    style: str | None = MISSING
    margin: float = MISSING


@dataclass
class PreprocessConf:
    image_size: int = MISSING
    normalize: str = MISSING
    align: AlignConf = field(default_factory=AlignConf)


@dataclass
class AugmentConf:
    hflip: bool = MISSING
    max_shift: float = MISSING
    random_interpolation: bool = MISSING


@dataclass
class MemoryConf:
    size: int = MISSING
    start_step: int = MISSING


@dataclass
class HardwareConf:
    device: str = MISSING
    device_id: int = MISSING
    mode: str = MISSING
    data_workers: int = MISSING
    amp_level: str = MISSING
    cpu_threads: int | None = MISSING
    distributed: bool = MISSING
    nodes: int = MISSING
    ranks_per_node: int = MISSING
    mine_global_batch: bool = MISSING


@dataclass
class TrainConf:
    steps_per_epoch: int | None = MISSING
    eval_at_start: bool = MISSING
    eval_every: int = MISSING
    ckpt_every: int = MISSING
    keep_checkpoint_max: int = MISSING
    max_minutes: float | None = MISSING
    max_bad_images: int = MISSING
    health: str = MISSING
    health_windows: int = MISSING


@dataclass
class FinetuneConf:
    freeze: list[str] = MISSING
    bn: str = MISSING
    backbone_lr_scale: float = MISSING


@dataclass
class CalibrationConf:
    root: str | None = MISSING
    images: int = MISSING
    seed: int = MISSING
    method: str = MISSING


@dataclass
class GateConf:
    min_cosine: float = MISSING
    max_accuracy_drop: float = MISSING


@dataclass
class ExportConf:
    format: str = MISSING
    batch_size: int | None = MISSING
    dir: str | None = MISSING
    quantize: str | None = MISSING
    calibration: CalibrationConf = field(default_factory=CalibrationConf)
    keep_float: list[str] = MISSING
    reduce_range: bool | None = MISSING
    gate: GateConf = field(default_factory=GateConf)


@dataclass
class Config:
    task: str = MISSING
    ckpt: str | None = MISSING
    resume: str | None = MISSING
    lr: float = MISSING
    margin: float = MISSING
    epochs: int = MISSING
    seed: int = MISSING
    embedding_size: int = MISSING
    init_std: float | None = MISSING
    output_dir: str = MISSING
    data_dir: str = MISSING
    max_image_pixels: int = MISSING
    batch: Any = MISSING
    train: TrainConf = field(default_factory=TrainConf)
    preprocess: PreprocessConf = field(default_factory=PreprocessConf)
    augment: AugmentConf = field(default_factory=AugmentConf)
    finetune: FinetuneConf = field(default_factory=FinetuneConf)
    export: ExportConf = field(default_factory=ExportConf)
    backbone: Any = MISSING
    head: Any = MISSING
    dataset: Any = MISSING
    eval: Any = MISSING
    also_eval: dict[str, Any] = MISSING
    miner: Any = MISSING
    loss: Any = MISSING
    optimizer: Any = MISSING
    lr_schedule: Any = MISSING
    hardware: HardwareConf = MISSING
    tracking: Any = MISSING
    two_stage: Any = MISSING  # task=two_stage: {finetune: stage 2's settings} (experiment=two_stage)


# ---------------------------------------------------------------- outside classes: MindSpore's optimisers
@dataclass
class OptimizerConf:
    _target_: str = MISSING
    _partial_: bool = True  # training.optim.build_optimizer supplies the parameters and learning rates
    weight_decay: float = MISSING


@dataclass
class AdamConf(OptimizerConf):
    _target_: str = "mindspore.nn.Adam"
    beta1: float = MISSING
    beta2: float = MISSING
    eps: float = MISSING


@dataclass
class AdamWConf(AdamConf):
    _target_: str = "mindspore.nn.AdamWeightDecay"


@dataclass
class SGDConf(OptimizerConf):
    _target_: str = "mindspore.nn.SGD"
    momentum: float = MISSING
    nesterov: bool = MISSING


@dataclass
class AdagradConf(OptimizerConf):
    _target_: str = "mindspore.nn.Adagrad"
    accum: float = MISSING


@dataclass
class RMSPropConf(OptimizerConf):
    _target_: str = "mindspore.nn.RMSProp"
    decay: float = MISSING
    momentum: float = MISSING
    epsilon: float = MISSING
    centered: bool = MISSING


# ---------------------------------------------------------------- group options
OUTSIDE = {c._target_: c for c in (AdamConf, AdamWConf, SGDConf, AdagradConf, RMSPropConf)}
# What the run passes when it builds any option of a group (the call beside each): these parameters are no config
# keys, and the group's options are built `_partial_`. Every other parameter of a `_target_` is a config key.
SUPPLIED = {
    "head": ("in_channels", "feature_size"),  # models.embedding.EmbeddingNet: the backbone's output
    "batch": ("labels", "table", "steps_per_epoch", "seed"),  # training.setup.build_data: the index table
    "loss": ("miner", "num_classes", "embedding_size", "seed", "shard", "positives_per_anchor"),  # setup.build_loss
    "lr_schedule": ("epochs", "steps_per_epoch"),  # training.setup.build_step
}
# A config parameter of one of these names, in any option, defaults to the top-level knob.
TIES = {
    "base_lr": "${lr}",
    "margin": "${margin}",
    "embedding_size": "${embedding_size}",
    "data_dir": "${data_dir}",
    "output_dir": "${output_dir}",
}
# Sections the run reads itself, with options of their own (conf/miner/memory/): their hand-written schema.
SECTIONS = {"miner": {"memory": MemoryConf}}


def option_schema(group: str, option: Path) -> type:
    """The schema of group option `option` (its YAML file): `HardwareConf` for a hardware option (a section of the
    primary config), else the hand-written schema of an outside `_target_` or the one derived from its signature."""
    if group == "hardware":
        return HardwareConf
    node = OmegaConf.load(option)
    target = node.get("_target_")
    if target is None:  # an option that starts from another of its group (`defaults: [synthetic]`) builds its class
        base = [d for d in node.get("defaults", []) if isinstance(d, str) and (option.parent / f"{d}.yaml").is_file()]
        if base:
            return option_schema(group, option.parent / f"{base[0]}.yaml")
    if not isinstance(target, str):
        raise ConfigError(
            f"{option}: a group option names the callable it builds in `_target_` (or starts from "
            "another option of its group in its defaults list)"
        )
    return OUTSIDE.get(target) or derive.schema(target, SUPPLIED.get(group, ()), TIES, SECTIONS.get(group))


@functools.cache
def schemas(conf: Path = CONF, groups: tuple[str, ...] | None = None) -> dict[str, dict[str, type]]:
    """{group: {"<option>_schema": its schema}} for every option `conf/<group>/<option>.yaml` of `groups` (default:
    all but the experiments, which override the primary config)."""
    out: dict[str, dict[str, type]] = {}
    for option in sorted(conf.glob("*/*.yaml")):
        group = option.parent.name
        if group != "experiment" and (groups is None or group in groups):
            out.setdefault(group, {})[f"{option.stem}_schema"] = option_schema(group, option)
    return out


def quiet_schema_matching() -> None:
    """conf/hydra/launcher/submitit_*.yaml replace the plugin's options of those names; Hydra checks them against the
    plugin's schema (what we want: a key the plugin lacks is an error) and warns, in every process, that it does."""
    import warnings

    warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema with the same name")


def register(conf: Path = CONF) -> None:
    """Store the schemas of the primary config and of every group option in `conf` in Hydra's ConfigStore."""
    quiet_schema_matching()
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for group, nodes in schemas(conf).items():
        for name, node in nodes.items():
            cs.store(group=group, name=name, node=node)
