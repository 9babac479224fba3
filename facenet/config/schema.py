"""Structured-config schemas: every YAML option extends one of these, so a misspelt key or a wrong type fails
before any work starts. `register()` puts them in Hydra's ConfigStore."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


# ---------------------------------------------------------------- backbone / head
@dataclass
class ResNetConf:
    _target_: str = "facenet.models.resnet.ResNet"
    block: str = "basic"
    layers: list[int] = field(default_factory=lambda: [2, 2, 2, 2])
    base_width: int = 64
    stem_kernel: int = 7
    stem_stride: int = 2
    stem_pool: bool = True


@dataclass
class MobileFaceNetConf:
    _target_: str = "facenet.models.mobilefacenet.MobileFaceNet"
    width: int = 64
    out_channels: int = 512


@dataclass
class InceptionResNetV1Conf:
    _target_: str = "facenet.models.inception_resnet_v1.InceptionResNetV1"
    repeats: list[int] = field(default_factory=lambda: [5, 10, 5])


@dataclass
class EmbeddingHeadConf:
    _target_: str = "facenet.models.head.EmbeddingHead"
    _partial_: bool = True
    embedding_size: int = "${embedding_size}"  # type: ignore[assignment]
    scale: float = 1.0
    pool: str = "avg"
    dropout: float = 0.0
    batch_norm: bool = False


# ---------------------------------------------------------------- data
@dataclass
class SyntheticDatasetConf:
    _target_: str = "facenet.data.datasets.SyntheticDataset"
    identities: int = 300
    images_per_identity: int = 24
    image_size: int = 64
    seed: int = 0
    data_dir: str = "${data_dir}"


@dataclass
class FolderDatasetConf:
    _target_: str = "facenet.data.datasets.FolderDataset"
    root: str = MISSING
    index_csv: str | None = None  # the reference recipe's `id,name,class` CSV instead of scanning `root`
    cache_dir: str | None = "${data_dir}/index"  # scanned indexes are cached here (null: always rescan)


@dataclass
class SyntheticEvalConf:
    _target_: str = "facenet.evaluation.protocols.SyntheticPairs"
    identities_per_fold: int = 20
    images_per_identity: int = 6
    pairs_per_fold: int = 100
    image_size: int = 64
    seed: int = 0
    data_dir: str = "${data_dir}"
    batch_size: int = 128
    far_targets: list[float] = field(default_factory=lambda: [1e-3])
    flip_tta: bool = False
    center_crop: int | None = None
    max_pairs: int | None = None
    override_image_size: int | None = None


@dataclass
class LfwEvalConf:
    _target_: str = "facenet.evaluation.protocols.LfwPairs"
    root: str = MISSING
    pairs: str = MISSING
    batch_size: int = 128
    far_targets: list[float] = field(default_factory=lambda: [1e-3])
    flip_tta: bool = False
    center_crop: int | None = None
    max_pairs: int | None = None
    override_image_size: int | None = None


@dataclass
class PreprocessConf:
    # network input size: the dataset's native size where it has one (generated sets), else 112
    image_size: int = "${oc.select:dataset.image_size,112}"  # type: ignore[assignment]


@dataclass
class AugmentConf:
    hflip: bool = True
    max_shift: float = 0.0625
    random_interpolation: bool = False


# ---------------------------------------------------------------- mining / loss
@dataclass
class MinerConf:
    _target_: str = MISSING


@dataclass
class TripletLossConf:
    _target_: str = "facenet.losses.TripletLoss"
    margin: float = "${margin}"  # type: ignore[assignment]
    squared: bool = False
    reduction: str = "active_mean"


# ---------------------------------------------------------------- optimisation
@dataclass
class OptimizerConf:
    _target_: str = MISSING
    _partial_: bool = True
    weight_decay: float = 0.0


@dataclass
class AdamConf(OptimizerConf):
    _target_: str = "mindspore.nn.Adam"
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8


@dataclass
class AdamWConf(OptimizerConf):
    _target_: str = "mindspore.nn.AdamWeightDecay"
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01


@dataclass
class SGDConf(OptimizerConf):
    _target_: str = "mindspore.nn.SGD"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4


@dataclass
class AdagradConf(OptimizerConf):
    _target_: str = "mindspore.nn.Adagrad"
    accum: float = 0.1


@dataclass
class RMSPropConf(OptimizerConf):
    _target_: str = "mindspore.nn.RMSProp"
    decay: float = 0.9
    momentum: float = 0.0
    epsilon: float = 1e-10
    centered: bool = False


@dataclass
class ScheduleConf:
    _target_: str = MISSING
    _partial_: bool = True
    base_lr: float = "${lr}"  # type: ignore[assignment]
    warmup_epochs: float = 0.0


@dataclass
class ConstantScheduleConf(ScheduleConf):
    _target_: str = "facenet.training.schedules.constant"


@dataclass
class StepScheduleConf(ScheduleConf):
    _target_: str = "facenet.training.schedules.step"
    step_epochs: int = 30
    gamma: float = 0.1


@dataclass
class MultiStepScheduleConf(ScheduleConf):
    _target_: str = "facenet.training.schedules.multistep"
    milestones: list[int] = field(default_factory=lambda: [30, 60, 90])
    gamma: float = 0.1


@dataclass
class CosineScheduleConf(ScheduleConf):
    _target_: str = "facenet.training.schedules.cosine"
    min_lr: float = 0.0


# ---------------------------------------------------------------- hardware / tracking
@dataclass
class HardwareConf:
    device: str = "CPU"
    device_id: int = 0
    mode: str = "GRAPH"
    data_workers: int = 1
    amp_level: str = "O0"
    cpu_threads: int | None = None
    distributed: bool = False  # data parallel over the ranks msrun starts (hardware=cpu_dp / gpu_dp / ascend_dp)
    mine_global_batch: bool = False  # data parallel: mine over every rank's embeddings (all-gather), not each rank's


@dataclass
class MlflowTrackingConf:
    _target_: str = "facenet.tracking.MlflowTracker"
    tracking_uri: str | None = None
    experiment: str = "facenet"
    run_name: str | None = None
    output_dir: str = "${output_dir}"
    log_every_steps: int = 10


@dataclass
class MlflowServerTrackingConf(MlflowTrackingConf):
    tracking_uri: str | None = "http://127.0.0.1:5000"
    fallback_local: bool = False
    connect_timeout: float = 5.0


@dataclass
class NoTrackingConf:
    _target_: str = "facenet.tracking.NullTracker"


@dataclass
class PKBatchConf:
    _target_: str = "facenet.data.sampler.PKSampler"
    _partial_: bool = True
    identities: int = 16
    images_per_identity: int = 4


@dataclass
class TripletBatchConf:
    _target_: str = "facenet.data.triplets.TripletSampler"
    _partial_: bool = True
    triplets: int = 64
    triplets_per_epoch: int = 10000
    csv: str | None = None


# ---------------------------------------------------------------- top level


@dataclass
class TrainConf:
    steps_per_epoch: int | None = None  # None: the batch option's default (pk: images // (P*K))
    eval_every: int = 1
    ckpt_every: int = 1
    keep_checkpoint_max: int = 3
    max_minutes: float | None = None  # stop (then evaluate and checkpoint) after this much time in training steps
    max_bad_images: int = 10  # unreadable training images skipped (replaced, counted, reported); more: an error


@dataclass
class ExportConf:
    format: str = "MINDIR"  # MINDIR | ONNX | AIR (Ascend only)
    batch_size: int | None = None  # null: dynamic batch (MINDIR, AIR); ONNX has static shapes: 32 unless set
    dir: str | None = None  # null: <run dir>/export


@dataclass
class Config:
    task: str = "train"
    ckpt: str | None = None
    resume: str | None = None  # auto | RUN_DIR | CHECKPOINT: continue an interrupted training run
    lr: float = 0.001
    margin: float = 0.2
    epochs: int = 10
    seed: int = 0
    embedding_size: int = 128
    init_std: float | None = None  # null: MindSpore's default initialisers; a float: conv/dense weights ~ N(0, std)
    output_dir: str = "outputs"
    data_dir: str = "data"
    batch: Any = MISSING
    train: TrainConf = field(default_factory=TrainConf)
    preprocess: PreprocessConf = field(default_factory=PreprocessConf)
    augment: AugmentConf = field(default_factory=AugmentConf)
    export: ExportConf = field(default_factory=ExportConf)
    backbone: Any = MISSING
    head: Any = MISSING
    dataset: Any = MISSING
    eval: Any = MISSING
    miner: Any = MISSING
    loss: Any = MISSING
    optimizer: Any = MISSING
    lr_schedule: Any = MISSING
    hardware: HardwareConf = MISSING
    tracking: Any = MISSING


SCHEMAS = {
    "backbone": {
        "resnet_schema": ResNetConf,
        "mobilefacenet_schema": MobileFaceNetConf,
        "inception_resnet_v1_schema": InceptionResNetV1Conf,
    },
    "head": {"embedding_head_schema": EmbeddingHeadConf},
    "batch": {"pk_schema": PKBatchConf, "triplets_schema": TripletBatchConf},
    "dataset": {"synthetic_schema": SyntheticDatasetConf, "folder_schema": FolderDatasetConf},
    "eval": {"synthetic_eval_schema": SyntheticEvalConf, "lfw_schema": LfwEvalConf},
    "miner": {"miner_schema": MinerConf},
    "loss": {"triplet_schema": TripletLossConf},
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
