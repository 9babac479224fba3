"""No key accepted and ignored: a command-line override a task does not read is refused before anything runs, and so
is a mandatory value (`???`) left empty in a part of the config the task reads.

Each task states the settings it reads (`Reads`, in its module under `facenet/tasks/`): `task=eval` and
`task=export` build the network and its preprocessing from the checkpoint's sidecar and neither trains, so
`backbone=resnet18`, `embedding_size=256` or `lr=0.1` there would change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationToMissingValueError

from facenet.errors import ConfigError, first_line

ALWAYS = frozenset({"task", "hydra", "experiment"})  # experiment: a preset; its keys are the run's defaults
CONTEXT = frozenset({"hardware", "tracking", "output_dir"})  # read by the run context for every task
FROM_SIDECAR = frozenset({"backbone", "head", "embedding_size", "init_std", "preprocess"})  # a checkpoint decides these


@dataclass(frozen=True)
class Reads:
    """The settings a task reads: dotted keys or groups (a key covers its sub-keys), or the whole config but the
    sections in `everything_but` (each with the sentence that says who reads it instead). `from_checkpoint`: the
    network's settings come from a checkpoint's sidecar (FROM_SIDECAR), so overriding them changes nothing."""

    keys: frozenset[str] = frozenset()
    everything_but: Mapping[str, str] | None = None
    from_checkpoint: bool = False
    unlisted: frozenset[str] = frozenset()  # read, but left out of the error message's list

    def covers(self, key: str) -> bool:
        top = key.split(".")[0]
        if top in ALWAYS or top in CONTEXT:
            return True
        if self.everything_but is not None:
            return top not in self.everything_but
        return any(key == k or key.startswith(k + ".") for k in self.keys)

    def with_network(self) -> Reads:
        """These settings plus the network's: a checkpoint without a sidecar is rebuilt from the config."""
        return Reads(self.keys | FROM_SIDECAR, self.everything_but, False, self.unlisted)


def override_keys(overrides: Iterable[str]) -> list[tuple[str, str]]:
    """(dotted key or group, the override as typed) of Hydra command-line overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [(o.key_or_group, o.input_line or o.key_or_group) for o in parsed]


def check_overrides(task: str, reads: Reads, overrides: Iterable[str]) -> None:
    """ConfigError naming every override `task` (which reads `reads`) would ignore, and why."""
    ignored = [(key, line) for key, line in override_keys(overrides) if not reads.covers(key)]
    if not ignored:
        return
    lines = " ".join(line for _, line in ignored)
    if reads.everything_but is not None:
        why = "; ".join(dict.fromkeys(reads.everything_but[key.split(".")[0]] for key, _ in ignored))
        raise ConfigError(f"{lines}: {why}")
    network = [line for key, line in ignored if reads.from_checkpoint and key.split(".")[0] in FROM_SIDECAR]
    if network:
        why = (
            f"task={task} builds the network and its preprocessing from the checkpoint's sidecar, so "
            f"{' '.join(network)} would change nothing"
        )
    else:
        why = f"task={task} does not read {lines}"
    listed = ", ".join(sorted((reads.keys | CONTEXT) - reads.unlisted))
    raise ConfigError(f"{why}; drop {'it' if len(ignored) == 1 else 'them'} ({lines}). task={task} reads: {listed}")


def check_mandatory(cfg: DictConfig, task: str, reads: Reads) -> None:
    """ConfigError naming the first mandatory value (`???`) still empty in what `task` reads, and how to give it
    (or, for an extra protocol of `also_eval`, how to drop it)."""
    try:
        missing = sorted(k for k in OmegaConf.missing_keys(cfg) if reads.covers(k))
    except InterpolationToMissingValueError as err:  # `b: ${a}` with `a: ???`: the value b points at
        pointed = first_line(err).rsplit(": ", 1)[-1]
        raise ConfigError(
            f"{err.full_key} points at {pointed}, which is mandatory and has no value: give it on the command "
            f"line: {pointed}=..."
        ) from None
    if not missing:
        return
    key = missing[0]
    more = f" (and {', '.join(missing[1:])})" if len(missing) > 1 else ""
    parts = key.split(".")
    if parts[0] == "also_eval" and len(parts) > 2:
        how = f"give it ({key}=...) or drop that protocol with '~also_eval.{parts[1]}'"
    else:
        how = f"give it on the command line: {key}=..."
    raise ConfigError(f"{key} is mandatory and has no value{more}: {how}")
