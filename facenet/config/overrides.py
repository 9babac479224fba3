"""No key accepted and ignored: a command-line override a task does not read is refused before anything runs.

`task=eval` and `task=export` build the network and its preprocessing from the checkpoint's sidecar, and neither
trains, so `backbone=resnet18`, `embedding_size=256` or `lr=0.1` there would change nothing. Which keys each task
reads is written below (`facenet/evaluation/checkpoint.py` and `facenet/app.py`'s `_export` are what read them).
"""

from __future__ import annotations

from collections.abc import Iterable

from facenet.errors import ConfigError

ALWAYS = {"task", "hydra", "experiment"}  # experiment: a preset; its keys are the run's defaults, not overrides
# top-level keys (and groups) each task reads; train reads everything but the export section
READS = {
    "eval": {
        "ckpt",
        "eval",
        "hardware",
        "tracking",
        "output_dir",
        "data_dir",
        "max_image_pixels",
        "preprocess.image_size",
    },
    "export": {"ckpt", "export", "hardware", "tracking", "output_dir"},
}
FROM_SIDECAR = {"backbone", "head", "embedding_size", "init_std", "preprocess"}  # the checkpoint decides these
NOT_IN_TRAIN = {"export"}


def override_keys(overrides: Iterable[str]) -> list[tuple[str, str]]:
    """(dotted key or group, the override as typed) of Hydra command-line overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [(o.key_or_group, o.input_line or o.key_or_group) for o in parsed]


def _reads(task: str, key: str) -> bool:
    top = key.split(".")[0]
    if top in ALWAYS:
        return True
    if task == "train":
        return top not in NOT_IN_TRAIN
    return any(key == k or key.startswith(k + ".") for k in READS[task])


def check_overrides(task: str, overrides: Iterable[str], network_from_config: bool = False) -> None:
    """ConfigError naming every override `task` would ignore, and why. `network_from_config`: task=eval of a
    checkpoint without a sidecar builds the network from the config, so the network's keys are read."""
    if task not in READS and task != "train":
        return  # an unknown task is refused elsewhere, with the list of tasks
    ignored = [
        (key, line)
        for key, line in override_keys(overrides)
        if not _reads(task, key) and not (network_from_config and key.split(".")[0] in FROM_SIDECAR)
    ]
    if not ignored:
        return
    lines = " ".join(line for _, line in ignored)
    if task == "train":
        raise ConfigError(f"{lines}: the export section is read by task=export only (train, then run task=export "
                          "ckpt=.../best.ckpt with it)")  # fmt: skip
    network = [line for key, line in ignored if key.split(".")[0] in FROM_SIDECAR]
    why = (
        f"task={task} builds the network and its preprocessing from the checkpoint's sidecar, so {' '.join(network)} "
        "would change nothing"
        if network
        else f"task={task} does not read {lines}"
    )
    reads = ", ".join(sorted(READS[task] - {"preprocess.image_size"}))
    raise ConfigError(f"{why}; drop {'it' if len(ignored) == 1 else 'them'} ({lines}). task={task} reads: {reads}")
