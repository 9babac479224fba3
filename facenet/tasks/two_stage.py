"""`task=two_stage` (`experiment=two_stage`): the recipe the published models point to, as one command. Stage 1 trains
with the configured loss (a margin softmax); stage 2 fine-tunes its best checkpoint with triplet loss, with the
settings of `two_stage.finetune` (groups `loss`, `miner`, `batch` replaced whole; anything else merged over the run's
config: `lr`, `epochs`, `margin`, `finetune.*`, `train.*`, ...).

Each stage is a training run of its own (run directory `<run>/stage1`, `<run>/stage2`; MLflow runs nested under one
parent run, which gets `stage1/<metric>` and `stage2/<metric>` and a summary table, `two_stage.md`). Stage 2's
settings are checked before stage 1 starts. `resume=<run dir>` continues an interrupted two-stage run: the unfinished
stage resumes from its last checkpoint, a finished one is kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from facenet.config.overrides import Reads
from facenet.errors import ConfigError, RunInterrupted, first_line
from facenet.runs import read_state
from facenet.tasks.base import Continuation, RunContext, Task
from facenet.tracking import Tracker

log = logging.getLogger(__name__)

STAGES = ("stage1", "stage2")
REPLACED = ("loss", "miner", "batch")  # group nodes stage 2 swaps whole (merging arcface's keys into triplet's: no)
SUMMARY = (
    "accuracy",
    "accuracy_std",
    "val_at_far_0.001",
    "auc",
    "eer",
    "best_accuracy",
    "train_minutes",
    "images_per_sec",
)


class TwoStage(Task):
    name = "two_stage"
    reads = Reads(everything_but={"export": "the export section is read by task=export only"})
    resumes = True  # resume=<run dir>: the unfinished stage resumes itself, a finished one is kept

    def continuation(self, cfg: DictConfig) -> Continuation:
        run_dir = Path(str(cfg.resume)).expanduser()
        state = read_state(run_dir)
        if not (run_dir / "stage1").is_dir() or not state:
            raise ConfigError(f"resume={cfg.resume}: not the run directory of a two-stage run (no stage1/ in it)")
        return Continuation(run_dir, state.get("run_id"), 0)

    def stopped(self, err: BaseException, run_dir: Path) -> BaseException:
        """A stage's own advice (resume=auto) would not find it: the parent run is what continues."""
        first = first_line(super().stopped(err, run_dir))
        return RunInterrupted(
            f"two-stage run {run_dir} stopped ({first}); experiment=two_stage resume={run_dir} (with the same "
            "overrides) continues it"
        )

    def run(self, cfg: DictConfig, context: RunContext) -> dict[str, float]:
        # the stages resolve their own configs (stage 2's ${margin} is its own margin)
        return run_two_stage(context.unresolved, context.run_dir, context.tracker, context.run_stage)


def stage_configs(cfg: DictConfig) -> tuple[DictConfig, DictConfig]:
    """(stage 1, stage 2) training configs of a two-stage config; stage 2's `ckpt` is set when stage 1 is done."""
    if cfg.two_stage is None or "finetune" not in cfg.two_stage:
        raise ConfigError(
            "task=two_stage needs two_stage.finetune (the triplet stage's settings): use experiment=two_stage"
        )
    first = OmegaConf.create(OmegaConf.to_container(cfg))
    first.task, first.two_stage, first.resume = "train", None, None
    finetune = cfg.two_stage.finetune
    second = OmegaConf.create(OmegaConf.to_container(first))
    for group in REPLACED:
        if group in finetune:
            second[group] = finetune[group]
    rest = {k: v for k, v in OmegaConf.to_container(finetune).items() if k not in REPLACED}
    try:
        second = OmegaConf.merge(second, rest)
    except Exception as err:  # noqa: BLE001 - an OmegaConf error: one line naming the key
        raise ConfigError(f"two_stage.finetune: {first_line(err)}") from None
    unknown = sorted(set(rest) - set(first))
    if unknown:
        raise ConfigError(f"two_stage.finetune sets {unknown}, which the config does not have")
    for stage in (first, second):
        OmegaConf.set_struct(stage, True)
    return first, second


def run_two_stage(cfg: DictConfig, run_dir: Path, tracker: Tracker, run_stage: Callable[..., dict]) -> dict[str, float]:
    """Both stages under the parent MLflow run `tracker` (already started); `run_stage(cfg, run_dir, parent)` runs
    one training run. Returns stage 2's metrics with `stage1/...` beside them."""
    from facenet.training.setup import validate

    first, second = stage_configs(cfg)
    with open_dict(second):
        second.ckpt = None
    validate(second)  # stage 2's settings, before an hour of stage 1
    parent = {"parent_run_id": tracker.run_id, "tracking_uri": tracker.uri}
    with open_dict(second):
        second.ckpt = str(run_dir / "stage1" / "checkpoints" / "best.ckpt")
    labels = [stage_label(first), stage_label(second)]
    results = {}
    for name, stage, label in zip(STAGES, (first, second), labels, strict=True):
        folder = run_dir / name
        done = read_state(folder).get("status") == "FINISHED" and (folder / "metrics.json").is_file()
        if done:
            log.info("two-stage: %s finished earlier (%s): kept", name, folder)
            results[name] = json.loads((folder / "metrics.json").read_text())
        else:
            resume = str(folder) if cfg.resume and list(folder.glob("checkpoints/facenet-*.ckpt")) else None
            with open_dict(stage):
                stage.resume = resume
                stage.ckpt = None if resume else stage.ckpt  # a resumed stage has its own weights
            log.info("two-stage: %s (%s)%s", name, label, f", resuming {folder}" if resume else "")
            results[name] = run_stage(stage, folder, parent)
        tracker.log_metrics({f"{name}/{k}": float(v) for k, v in results[name].items() if k in SUMMARY}, 0)
    path = write_summary(run_dir, results, labels)
    tracker.log_artifact(path)
    return {**results["stage2"], **{f"stage1/{k}": v for k, v in results["stage1"].items() if k in SUMMARY}}


def stage_label(stage: DictConfig) -> str:
    loss = stage.loss._target_.rsplit(".", 1)[-1]
    start = f", from {Path(stage.ckpt).parent.parent.name}'s best.ckpt" if stage.ckpt else ""
    return f"{loss}, epochs {stage.epochs}, lr {stage.lr:g}{start}"


def write_summary(run_dir: Path, results: dict[str, dict], labels: list[str]) -> Path:
    """`two_stage.md`: accuracy and the other headline metrics after each stage."""
    rows = [
        "| stage | training | accuracy | VAL@FAR=1e-3 | AUC | EER | best accuracy | train minutes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, label in zip(STAGES, labels, strict=True):
        m = {k: results[name].get(k, float("nan")) for k in SUMMARY}
        rows.append(
            f"| {name} | {label} | {m['accuracy']:.4f} +- {m['accuracy_std']:.4f} | "
            f"{m['val_at_far_0.001']:.4f} | {m['auc']:.4f} | {m['eer']:.4f} | {m['best_accuracy']:.4f} | "
            f"{m['train_minutes']:.1f} |"
        )
    lines = ["# Two-stage run", "", *rows, ""]
    best = run_dir / "stage2" / "checkpoints" / "best.json"
    if best.is_file():
        info = json.loads(best.read_text())
        origin = (
            "stage 1's weights: the fine-tune did not beat them"
            if info.get("epoch") == 0
            else f"epoch {info.get('epoch')} of the fine-tune"
        )
        lines += [
            f"The model to use: `stage2/checkpoints/best.ckpt` ({origin}; accuracy {info['metrics']['accuracy']:.4f}).",
            "",
        ]
    path = run_dir / "two_stage.md"
    path.write_text("\n".join(lines))
    return path
