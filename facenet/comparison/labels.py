"""Label runs by what differs between them: `miner=batch_hard`, `margin=0.2`; nothing else."""

from __future__ import annotations

import functools

from facenet.comparison.runs import RunResult

# keys that differ between any two runs without changing what was trained or measured
IGNORED = ("output_dir", "resume", "tracking.", "hardware.cpu_threads")
MAX_PARTS = 4


def _ignored(key: str) -> bool:
    return any(key == p or key.startswith(p) for p in IGNORED)


def _overridden(runs: list[RunResult]) -> set[str]:
    keys = set()
    for r in runs:
        for o in r.overrides:
            key = o.split("=", 1)[0].lstrip("+~")
            keys.add(key)
    return keys


@functools.cache
def _options(group: str) -> dict[str, str]:
    """`_target_` -> option name of a config group's files in conf/ (what a run composed without Hydra's runtime,
    e.g. from the Python API, can be labelled by)."""
    from omegaconf import OmegaConf

    from facenet.provenance import REPO

    found: dict[str, list[str]] = {}
    for path in sorted((REPO / "conf" / group).glob("*.yaml")):
        target = OmegaConf.load(path).get("_target_")
        if target:
            found.setdefault(str(target), []).append(path.stem)
    return {t: names[0] for t, names in found.items() if len(names) == 1}


def _with_choices(runs: list[RunResult]) -> list[dict[str, str]]:
    """Each run's group choices; where a run has none recorded, the groups its config's `<group>._target_` identify."""
    out = []
    for r in runs:
        choices = dict(r.choices)
        for key, value in r.config.items():
            group = key[: -len("._target_")] if key.endswith("._target_") else None
            if group and "." not in group and group not in choices and value in _options(group):
                choices[group] = _options(group)[value]
        out.append(choices)
    return out


def differing(runs: list[RunResult]) -> list[str]:
    """Config groups and keys whose value is not the same in every run, groups first: a group's own keys are left
    out when its option differs (`miner=batch_hard` says it); of keys with the same values in every run (`margin`
    and `loss.margin`, one interpolating the other) the one given on a command line, else the shortest, is kept."""
    choices = _with_choices(runs)
    # a group is compared by its option only where every run's option is known; otherwise by its keys
    groups = sorted({g for c in choices for g in c} & set.intersection(*(set(c) for c in choices)))
    diff_groups = [g for g in groups if len({c.get(g) for c in choices}) > 1]
    keys = sorted({k for r in runs for k in r.config})
    diff_keys = [
        k
        for k in keys
        if not _ignored(k)
        and len({r.config.get(k) for r in runs}) > 1
        and not any(k.startswith(g.replace("/", ".") + ".") for g in diff_groups)
    ]
    given = _overridden(runs)
    by_values: dict[tuple, str] = {}
    for k in diff_keys:
        values = tuple(r.config.get(k) for r in runs)
        kept = by_values.get(values)
        if kept is None or (k in given, -len(k)) > (kept in given, -len(kept)):
            by_values[values] = k
    chosen = set(by_values.values())
    ordered = sorted(chosen, key=lambda k: (k not in given, k.count("."), k))
    return [f"group:{g}" for g in diff_groups] + ordered


def labels(runs: list[RunResult]) -> list[str]:
    """One unique label per run: its values of the differing groups and keys (`miner=batch_hard margin=0.2`), or
    its name when nothing differs; `#2`, `#3`... where two would read the same."""
    parts = differing(runs)
    out = []
    for r, choices in zip(runs, _with_choices(runs), strict=True):
        shown = []
        for p in parts[:MAX_PARTS]:
            if p.startswith("group:"):
                group = p[len("group:") :]
                shown.append(f"{group}={choices.get(group, '-')}")
            else:
                shown.append(f"{p}={r.config.get(p, '-')}")
        if len(parts) > MAX_PARTS:
            shown.append("...")
        out.append(" ".join(shown) or r.name)
    seen: dict[str, int] = {}
    counts = {label: out.count(label) for label in out}
    for i, label in enumerate(out):
        if counts[label] > 1:
            seen[label] = seen.get(label, 0) + 1
            out[i] = f"{label} #{seen[label]}"
    return out
