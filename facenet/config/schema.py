"""Structured-config schemas: every YAML option extends one of these, so a misspelt key or a wrong type fails
before any work starts. `register()` puts them in Hydra's ConfigStore.

The schemas give types, not values: every value a run uses is written once, in `conf/` (the primary config and
the group options). What a schema does set is wiring: the class to build (`_target_`, `_partial_`) and the
interpolations that tie a field to a top-level knob (`${lr}`, `${margin}`, `${embedding_size}`, `${data_dir}`).
`tests/test_config.py` fails on any other value here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


# ---------------------------------------------------------------- backbone / head
@dataclass
class ResNetConf:
    _target_: str = "facenet.models.resnet.ResNet"
    block: str = MISSING
    layers: list[int] = MISSING
    base_width: int = MISSING
    stem_kernel: int = MISSING
    stem_stride: int = MISSING
    stem_pool: bool = MISSING


@dataclass
class MobileFaceNetConf:
    _target_: str = "facenet.models.mobilefacenet.MobileFaceNet"
    width: int = MISSING
    out_channels: int = MISSING


@dataclass
class InceptionResNetV1Conf:
    _target_: str = "facenet.models.inception_resnet_v1.InceptionResNetV1"
    repeats: list[int] = MISSING


@dataclass
class EmbeddingHeadConf:
    _target_: str = "facenet.models.head.EmbeddingHead"
    _partial_: bool = True
    embedding_size: int = "${embedding_size}"  # type: ignore[assignment]
    scale: float = MISSING
    pool: str = MISSING
    dropout: float = MISSING
    batch_norm: bool = MISSING


# ---------------------------------------------------------------- data
@dataclass
class SyntheticDatasetConf:
    _target_: str = "facenet.data.datasets.SyntheticDataset"
    identities: int = MISSING
    images_per_identity: int = MISSING
    image_size: int = MISSING
    seed: int = MISSING
    data_dir: str = "${data_dir}"


@dataclass
class FolderDatasetConf:
    _target_: str = "facenet.data.datasets.FolderDataset"
    root: str = MISSING
    index_csv: str | None = MISSING
    cache_dir: str | None = MISSING


@dataclass
class RecordIODatasetConf:
    _target_: str = "facenet.data.datasets.RecordIODataset"
    path: str = MISSING
    cache_dir: str | None = MISSING


@dataclass
class EvalProtocolConf:
    """What every verification protocol has: how to embed and score its pairs."""

    _target_: str = MISSING
    batch_size: int = MISSING
    far_targets: list[float] = MISSING
    flip_tta: bool = MISSING
    center_crop: int | None = MISSING
    max_pairs: int | None = MISSING
    override_image_size: int | None = MISSING


@dataclass
class SyntheticEvalConf(EvalProtocolConf):
    _target_: str = "facenet.evaluation.protocols.SyntheticPairs"
    identities_per_fold: int = MISSING
    images_per_identity: int = MISSING
    pairs_per_fold: int = MISSING
    image_size: int = MISSING
    seed: int = MISSING
    data_dir: str = "${data_dir}"


@dataclass
class LfwEvalConf(EvalProtocolConf):
    _target_: str = "facenet.evaluation.protocols.LfwPairs"
    root: str = MISSING
    pairs: str = MISSING


@dataclass
class BinEvalConf(EvalProtocolConf):
    _target_: str = "facenet.evaluation.protocols.BinPairs"
    path: str = MISSING


@dataclass
class BenchmarksEvalConf(EvalProtocolConf):
    _target_: str = "facenet.evaluation.protocols.Benchmarks"
    dir: str = MISSING
    sets: list[str] | None = MISSING
    primary: str | None = MISSING


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


# ---------------------------------------------------------------- mining / loss
@dataclass
class MemoryConf:
    size: int = MISSING
    start_step: int = MISSING


@dataclass
class MinerConf:
    _target_: str = MISSING
    memory: MemoryConf = field(default_factory=MemoryConf)


@dataclass
class LossConf:
    """Partial: the run completes it with a miner (triplet) or the identity count and embedding size (a classifier
    loss, `facenet.training.setup.build_loss`)."""

    _target_: str = MISSING
    _partial_: bool = True


@dataclass
class TripletLossConf(LossConf):
    _target_: str = "facenet.losses.TripletLoss"
    margin: float = "${margin}"  # type: ignore[assignment]
    squared: bool = MISSING
    reduction: str = MISSING


@dataclass
class SoftmaxLossConf(LossConf):
    _target_: str = "facenet.losses.SoftmaxLoss"
    center_weight: float = MISSING
    center_alpha: float = MISSING
    prelogits_norm_weight: float = MISSING
    prelogits_norm_p: float = MISSING


@dataclass
class MarginLossConf(LossConf):
    s: float = MISSING
    sample_rate: float = MISSING


@dataclass
class ArcFaceLossConf(MarginLossConf):
    _target_: str = "facenet.losses.ArcFaceLoss"
    m: float = MISSING
    straight_through: bool = MISSING


@dataclass
class CosFaceLossConf(MarginLossConf):
    _target_: str = "facenet.losses.CosFaceLoss"
    m: float = MISSING


@dataclass
class CombinedLossConf(MarginLossConf):
    _target_: str = "facenet.losses.CombinedMarginLoss"
    m1: float = MISSING
    m2: float = MISSING
    m3: float = MISSING
    straight_through: bool = MISSING


# ---------------------------------------------------------------- optimisation
@dataclass
class OptimizerConf:
    _target_: str = MISSING
    _partial_: bool = True
    weight_decay: float = MISSING


@dataclass
class AdamConf(OptimizerConf):
    _target_: str = "mindspore.nn.Adam"
    beta1: float = MISSING
    beta2: float = MISSING
    eps: float = MISSING


@dataclass
class AdamWConf(OptimizerConf):
    _target_: str = "mindspore.nn.AdamWeightDecay"
    beta1: float = MISSING
    beta2: float = MISSING
    eps: float = MISSING


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


@dataclass
class ScheduleConf:
    _target_: str = MISSING
    _partial_: bool = True
    base_lr: float = "${lr}"  # type: ignore[assignment]
    warmup_epochs: float = MISSING


@dataclass
class ConstantScheduleConf(ScheduleConf):
    _target_: str = "facenet.training.schedules.constant"


@dataclass
class StepScheduleConf(ScheduleConf):
    _target_: str = "facenet.training.schedules.step"
    step_epochs: int = MISSING
    gamma: float = MISSING


@dataclass
class MultiStepScheduleConf(ScheduleConf):
    _target_: str = "facenet.training.schedules.multistep"
    milestones: list[int] = MISSING
    gamma: float = MISSING


@dataclass
class CosineScheduleConf(ScheduleConf):
    _target_: str = "facenet.training.schedules.cosine"
    min_lr: float = MISSING


# ---------------------------------------------------------------- hardware / tracking
@dataclass
class HardwareConf:
    device: str = MISSING
    device_id: int = MISSING
    mode: str = MISSING
    data_workers: int = MISSING
    amp_level: str = MISSING
    cpu_threads: int | None = MISSING
    distributed: bool = MISSING
    mine_global_batch: bool = MISSING


@dataclass
class MlflowTrackingConf:
    _target_: str = "facenet.tracking.MlflowTracker"
    tracking_uri: str | None = MISSING
    experiment: str = MISSING
    run_name: str | None = MISSING
    output_dir: str = "${output_dir}"
    log_every_steps: int = MISSING


@dataclass
class MlflowServerTrackingConf(MlflowTrackingConf):
    fallback_local: bool = MISSING
    connect_timeout: float = MISSING


@dataclass
class NoTrackingConf:
    _target_: str = "facenet.tracking.NullTracker"


@dataclass
class PKBatchConf:
    _target_: str = "facenet.data.sampler.PKSampler"
    _partial_: bool = True
    identities: int = MISSING
    images_per_identity: int = MISSING
    singletons: int = MISSING


@dataclass
class ShuffleBatchConf:
    _target_: str = "facenet.data.sampler.ShuffleSampler"
    _partial_: bool = True
    size: int = MISSING


@dataclass
class TripletBatchConf:
    _target_: str = "facenet.data.triplets.TripletSampler"
    _partial_: bool = True
    triplets: int = MISSING
    triplets_per_epoch: int = MISSING
    csv: str | None = MISSING


# ---------------------------------------------------------------- top level


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
class ExportConf:
    format: str = MISSING
    batch_size: int | None = MISSING
    dir: str | None = MISSING


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


SCHEMAS = {
    "backbone": {
        "resnet_schema": ResNetConf,
        "mobilefacenet_schema": MobileFaceNetConf,
        "inception_resnet_v1_schema": InceptionResNetV1Conf,
    },
    "head": {"embedding_head_schema": EmbeddingHeadConf},
    "batch": {"pk_schema": PKBatchConf, "shuffle_schema": ShuffleBatchConf, "triplets_schema": TripletBatchConf},
    "dataset": {
        "synthetic_schema": SyntheticDatasetConf,
        "folder_schema": FolderDatasetConf,
        "recordio_schema": RecordIODatasetConf,
    },
    "eval": {
        "synthetic_eval_schema": SyntheticEvalConf,
        "lfw_schema": LfwEvalConf,
        "bin_schema": BinEvalConf,
        "benchmarks_schema": BenchmarksEvalConf,
    },
    "miner": {"miner_schema": MinerConf},
    "loss": {
        "triplet_schema": TripletLossConf,
        "softmax_schema": SoftmaxLossConf,
        "arcface_schema": ArcFaceLossConf,
        "cosface_schema": CosFaceLossConf,
        "combined_schema": CombinedLossConf,
    },
    "optimizer": {
        "adam_schema": AdamConf,
        "adamw_schema": AdamWConf,
        "sgd_schema": SGDConf,
        "adagrad_schema": AdagradConf,
        "rmsprop_schema": RMSPropConf,
    },
    "lr_schedule": {
        "constant_schema": ConstantScheduleConf,
        "step_schema": StepScheduleConf,
        "multistep_schema": MultiStepScheduleConf,
        "cosine_schema": CosineScheduleConf,
    },
    "hardware": {"hardware_schema": HardwareConf},
    "tracking": {
        "mlflow_schema": MlflowTrackingConf,
        "mlflow_server_schema": MlflowServerTrackingConf,
        "off_schema": NoTrackingConf,
    },
}


def register() -> None:
    """Store the schemas: `base_config` for the primary config, `<group>/<name>_schema` for group options."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for group, nodes in SCHEMAS.items():
        for name, node in nodes.items():
            cs.store(group=group, name=name, node=node)
