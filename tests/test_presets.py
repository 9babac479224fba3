"""Every experiment preset composes with every dataset and eval option, and validates without running; a mandatory
value left empty is asked for before any work starts, in one line naming the key and how to give or drop it."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from facenet.errors import ConfigError
from facenet.tasks import TASKS
from facenet.tasks.context import prepare
from tests.conftest import CONF

PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (CONF / "dataset").glob("*.yaml"))
EVALS = sorted(p.stem for p in (CONF / "eval").glob("*.yaml"))
# the values each option asks for (`???`); written out here, not read from the config, so a new one is noticed
ASKS = {
    "dataset=folder": {"dataset.root"},
    "dataset=recordio": {"dataset.path"},
    "eval=lfw": {"eval.root", "eval.pairs"},
    "eval=bin": {"eval.path"},
    "eval=benchmarks": {"eval.dir"},
    "eval=openset": {"eval.root"},
    "eval=ijb": {"eval.root"},
    "experiment=finetune": {"also_eval.lfw.root", "also_eval.lfw.pairs"},
}
PRESET_CHOICES = {"finetune": ("dataset=folder", "eval=lfw"), "seed_vggface2": ("dataset=folder", "eval=lfw")}


def _expected_missing(preset: str, option: str) -> set[str]:
    group = option.split("=")[0]
    chosen = [f"experiment={preset}", option, *(c for c in PRESET_CHOICES.get(preset, ()) if c.split("=")[0] != group)]
    if group == "dataset":
        chosen.append("eval=synthetic_tiny" if preset == "smoke" else "eval=synthetic")
    return set().union(*(ASKS.get(c, set()) for c in chosen))


def _validate(cfg) -> None:
    """Everything a run checks before its first step, without running it."""
    from facenet.tasks.two_stage import stage_configs
    from facenet.training.setup import validate

    task = TASKS[cfg.task]
    prepare(cfg, task, [])
    if task.name == "two_stage":
        for stage in stage_configs(cfg):
            stage.ckpt = None
            validate(stage)
    else:
        validate(cfg)


@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_composes_with_each_dataset_and_eval_option(compose_cfg, tmp_path, preset):
    for option in [f"dataset={d}" for d in DATASETS] + [f"eval={e}" for e in EVALS]:
        cfg = compose_cfg(f"experiment={preset}", option, "tracking=off")
        missing = _expected_missing(preset, option)
        assert set(OmegaConf.missing_keys(cfg)) == missing, option
        if missing:  # refused before any work, in one line naming a missing key and how to give it
            with pytest.raises(ConfigError) as err:
                prepare(cfg.copy(), TASKS[cfg.task], [])
            line = str(err.value)
            assert "\n" not in line and line.split(" ")[0] in missing and ("=..." in line), line
        for key in missing:
            OmegaConf.update(cfg, key, str(tmp_path / key))
        _validate(cfg)


def test_finetune_without_lfw_paths_names_the_key_and_how_to_drop_it(compose_cfg, tmp_path):
    cfg = compose_cfg(
        "experiment=finetune",
        f"dataset.root={tmp_path}",
        f"eval.root={tmp_path}",
        f"eval.pairs={tmp_path / 'pairs.txt'}",
    )
    with pytest.raises(
        ConfigError,
        match=r"^also_eval.lfw.pairs is mandatory and has no value \(and "
        r"also_eval.lfw.root\): give it \(also_eval.lfw.pairs=...\) or drop "
        r"that protocol with '~also_eval.lfw'$",
    ):
        prepare(cfg, TASKS["train"], [])
    cfg = compose_cfg(
        "experiment=finetune",
        f"dataset.root={tmp_path}",
        f"eval.root={tmp_path}",
        f"eval.pairs={tmp_path / 'pairs.txt'}",
        "~also_eval.lfw",
    )
    prepare(cfg, TASKS["train"], [])


def test_a_value_the_task_does_not_read_is_not_asked_for(compose_cfg, tmp_path):
    """task=eval reads the eval protocol, not the training set: dataset=folder without a root is fine there."""
    cfg = compose_cfg("task=eval", "ckpt=x.ckpt", "dataset=folder", "tracking=off")
    prepare(cfg, TASKS["eval"], [])
    with pytest.raises(
        ConfigError,
        match=r"^dataset.root is mandatory and has no value: give it on the command "
        r"line: dataset.root=...$",
    ):
        prepare(compose_cfg("dataset=folder", "tracking=off"), TASKS["train"], [])


def test_a_value_pointing_at_an_empty_one_names_both_in_one_line(compose_cfg, tmp_path):
    cfg = compose_cfg(
        "experiment=finetune",
        f"dataset.root={tmp_path}",
        f"eval.root={tmp_path}",
        f"also_eval.lfw.root={tmp_path}",
        "also_eval.lfw.pairs=${eval.pairs}",
    )
    with pytest.raises(
        ConfigError,
        match=r"^also_eval.lfw.pairs points at eval.pairs, which is mandatory and has no "
        r"value: give it on the command line: eval.pairs=...$",
    ):
        prepare(cfg, TASKS["train"], [])
