"""Open-set identification trials over an identity-folder tree: who is enrolled, which images form the gallery,
which are genuine probes (enrolled people's other images) and which are impostor probes (every image of the people
never enrolled); made from a seed, written as plain files, read back from them.

A protocol folder (`facenet openset-protocol DIR -o PROTOCOL`) holds `trial_01.csv` .. `trial_NN.csv`, each with
the columns `role` (gallery, genuine or impostor), `identity` and `image` (the path under the tree's root,
`<identity>/<file>`), and `protocol.json` (how it was made, the counts and the fingerprint: the sha1 of every
trial's rows in order, equal exactly when two protocols hold the same trials).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from facenet.data.index import STRINGS, index_folder
from facenet.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ROLES = ("gallery", "genuine", "impostor")
PROTOCOL_FILE = "protocol.json"


@dataclass
class Trial:
    """One split: `gallery`, `genuine`, `impostor` are indices into the trials' image list; `gallery_ids` and
    `genuine_ids` the enrolled identity (index into `enrolled`) of each gallery image and genuine probe."""

    enrolled: list[str]
    gallery: np.ndarray
    gallery_ids: np.ndarray
    genuine: np.ndarray
    genuine_ids: np.ndarray
    impostor: np.ndarray

    def rows(self, images: list[str], names: list[str]) -> pd.DataFrame:
        """The trial as its file holds it: role, identity, image (in gallery, genuine, impostor order)."""
        parts = []
        for role, idx in zip(ROLES, (self.gallery, self.genuine, self.impostor), strict=True):
            parts.append(
                pd.DataFrame({"role": role, "identity": [names[i] for i in idx], "image": [images[i] for i in idx]})
            )
        return pd.concat(parts, ignore_index=True)


@dataclass
class OpenSetTrials:
    """Every trial, over one list of images (relative `<identity>/<file>` names, resolved under `root`)."""

    root: Path
    images: list[str]
    names: list[str]  # each image's identity
    trials: list[Trial]
    settings: dict = field(default_factory=dict)  # how they were made (or that they were read from files)
    skipped: dict = field(default_factory=dict)  # eval.missing=skip: what was left out, by role

    @property
    def paths(self) -> list[str]:
        return [str(self.root / name) for name in self.images]

    def fingerprint(self) -> str:
        """sha1 of every trial's rows (role, identity, image) in order: equal exactly for the same trials."""
        h = hashlib.sha1()
        for number, trial in enumerate(self.trials, 1):
            for role, identity, image in trial.rows(self.images, self.names).itertuples(index=False):
                h.update(f"{number}\t{role}\t{identity}\t{image}\n".encode())
        return h.hexdigest()

    def counts(self) -> dict[str, float]:
        """Mean per trial: enrolled people, gallery images, genuine and impostor probes; the smallest impostor
        count (what bounds the lowest measurable FPIR)."""
        per = np.array([[len(t.enrolled), len(t.gallery), len(t.genuine), len(t.impostor)] for t in self.trials])
        mean = per.mean(axis=0)
        return {
            "trials": len(self.trials),
            "enrolled": float(mean[0]),
            "gallery": float(mean[1]),
            "genuine": float(mean[2]),
            "impostor": float(mean[3]),
            "min_impostor": int(per[:, 3].min()),
        }


def _people(root: str | os.PathLike) -> pd.DataFrame:
    table = index_folder(root)
    rel = [f"{n}/{Path(p).name}" for n, p in zip(table["name"], table["path"], strict=True)]
    return pd.DataFrame({"name": table["name"], "image": rel})


def make_trials(
    root: str | os.PathLike, trials: int, enrolled: float, gallery_per_person: int, seed: int
) -> OpenSetTrials:
    """`trials` seeded splits of the tree at `root`. People with more than `gallery_per_person` images can be
    enrolled (each needs a genuine probe left over); `enrolled` of them are, in each trial (a fraction in (0, 1) or
    a count >= 1); their `gallery_per_person` images drawn at random form the gallery, their other images are the
    genuine probes; every image of everyone else (the others who could have been, and the people with fewer
    images) is an impostor probe. Trial t draws from `numpy.random.default_rng([seed, t])`."""
    if trials < 1:
        raise ConfigError(f"eval.trials must be >= 1, got {trials}")
    if gallery_per_person < 1:
        raise ConfigError(f"eval.gallery_per_person must be >= 1, got {gallery_per_person}")
    root = Path(root).expanduser().resolve()
    table = _people(root)
    images, names = table["image"].tolist(), table["name"].tolist()
    by_person = table.groupby("name", sort=True).indices  # name -> image indices (sorted by file name)
    eligible = sorted(n for n, idx in by_person.items() if len(idx) > gallery_per_person)
    if enrolled <= 0 or (enrolled >= 1 and enrolled != int(enrolled)):
        raise ConfigError(f"eval.enrolled is a fraction in (0, 1) or a whole count >= 1, got {enrolled}")
    n_enrolled = int(round(enrolled * len(eligible))) if enrolled < 1 else int(enrolled)
    if n_enrolled < 2 or n_enrolled > len(eligible) or n_enrolled >= len(by_person):
        raise DataError(
            f"{root}: {len(eligible)} of its {len(by_person)} people have more than {gallery_per_person} images "
            f"(gallery_per_person={gallery_per_person}); enrolling {n_enrolled} of them (eval.enrolled={enrolled}) "
            "needs 2 to that many, and at least one person left never enrolled"
        )
    out = []
    for t in range(1, trials + 1):
        rng = np.random.default_rng([seed, t])
        chosen = sorted(rng.choice(len(eligible), n_enrolled, replace=False).tolist())
        people = [eligible[i] for i in chosen]
        gallery, gallery_ids, genuine, genuine_ids = [], [], [], []
        for k, person in enumerate(people):
            idx = by_person[person]
            pick = np.zeros(len(idx), bool)
            pick[rng.choice(len(idx), gallery_per_person, replace=False)] = True
            gallery += idx[pick].tolist()
            genuine += idx[~pick].tolist()
            gallery_ids += [k] * int(pick.sum())
            genuine_ids += [k] * int((~pick).sum())
        others = set(by_person) - set(people)
        impostor = sorted(i for n in others for i in by_person[n])
        out.append(
            Trial(people, *(np.asarray(a, np.int64) for a in (gallery, gallery_ids, genuine, genuine_ids, impostor)))
        )
    settings = {
        "made_from": str(root),
        "trials": trials,
        "enrolled": enrolled,
        "gallery_per_person": gallery_per_person,
        "seed": seed,
    }
    return OpenSetTrials(root, images, names, out, settings)


def write_protocol(trials: OpenSetTrials, out: str | os.PathLike) -> Path:
    """`trial_NN.csv` for each trial and `protocol.json` into `out` (created; existing trial files are refused:
    a protocol is not overwritten by accident)."""
    out = Path(out).expanduser()
    if out.exists() and (any(out.glob("trial_*.csv")) or (out / PROTOCOL_FILE).exists()):
        raise DataError(f"{out} already holds a protocol ({PROTOCOL_FILE}, trial_*.csv): choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    width = max(2, len(str(len(trials.trials))))
    for number, trial in enumerate(trials.trials, 1):
        trial.rows(trials.images, trials.names).to_csv(out / f"trial_{number:0{width}d}.csv", index=False)
    body = {
        "kind": "openset",
        **trials.settings,
        "counts": trials.counts(),
        "fingerprint": trials.fingerprint(),
    }
    (out / PROTOCOL_FILE).write_text(json.dumps(body, indent=1) + "\n")
    return out


def _read_trial(path: Path) -> pd.DataFrame:
    try:
        rows = pd.read_csv(path, dtype=str, **STRINGS)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path} as CSV: {err}") from None
    if list(rows.columns) != ["role", "identity", "image"]:
        raise DataError(f"{path}: expected the columns role,identity,image; it has {','.join(rows.columns)}")
    bad = ~rows["role"].isin(ROLES)
    if bad.any():
        raise DataError(
            f"{path}: role must be one of {', '.join(ROLES)}; row {int(np.flatnonzero(bad)[0]) + 2} says "
            f"{rows['role'][bad].iloc[0]!r}"
        )
    return rows


def _check_trial(path: Path, rows: pd.DataFrame) -> None:
    """The definition's disjointness: no gallery image is a probe, no impostor's person is enrolled, every
    genuine probe's person is."""
    role = {r: rows[rows["role"] == r] for r in ROLES}
    enrolled = set(role["gallery"]["identity"])
    if not role["genuine"]["identity"].isin(enrolled).all():
        who = sorted(set(role["genuine"]["identity"]) - enrolled)[0]
        raise DataError(f"{path}: genuine probes of {who!r}, who has no gallery image")
    if role["impostor"]["identity"].isin(enrolled).any():
        who = role["impostor"]["identity"][role["impostor"]["identity"].isin(enrolled)].iloc[0]
        raise DataError(f"{path}: impostor probes of {who!r}, who is enrolled (has gallery images)")
    if role["gallery"]["image"].isin(pd.concat([role["genuine"]["image"], role["impostor"]["image"]])).any():
        raise DataError(f"{path}: an image is both in the gallery and a probe")
    if len(enrolled) < 2 or role["genuine"].empty or role["impostor"].empty:
        raise DataError(
            f"{path}: a trial needs at least 2 enrolled people, a genuine and an impostor probe; it has "
            f"{len(enrolled)}, {len(role['genuine'])} and {len(role['impostor'])}"
        )


def read_protocol(folder: str | os.PathLike, root: str | os.PathLike, missing: str = "fail") -> OpenSetTrials:
    """The trials of a protocol folder, their images resolved under `root`. An image that is not there is refused
    (`missing="fail"`, naming how many, the first ones and the setting) or left out (`"skip"`: a probe, or a
    gallery image; a person left with no gallery image is no longer enrolled and their genuine probes go too),
    counted by role in `skipped`."""
    folder, root = Path(folder).expanduser(), Path(root).expanduser().resolve()
    if not folder.is_dir():
        raise DataError(f"eval.protocol={str(folder)!r} does not exist or is not a folder")
    files = sorted(folder.glob("trial_*.csv"))
    if not files:
        raise DataError(f"eval.protocol={str(folder)!r} holds no trial_*.csv (facenet openset-protocol writes them)")
    tables = []
    for path in files:
        rows = _read_trial(path)
        _check_trial(path, rows)
        tables.append(rows)
    names = pd.concat(tables, ignore_index=True).drop_duplicates("image")
    present = np.array([(root / image).is_file() for image in names["image"]])
    absent = set(names["image"][~present])
    if absent and missing != "skip":
        shown = ", ".join(sorted(absent)[:3]) + (" ..." if len(absent) > 3 else "")
        raise DataError(
            f"{len(absent)} images named in {folder} are missing under {root} ({shown}); fix the tree or the root, "
            "or leave out the probes and gallery images that need them with eval.missing=skip"
        )
    images = names["image"][present].tolist()
    identity = names["identity"][present].tolist()
    position = {image: i for i, image in enumerate(images)}
    trials, skipped = [], dict.fromkeys(ROLES, 0)
    for rows in tables:
        gone = rows["image"].isin(absent)
        for role in ROLES:
            skipped[role] += int((gone & (rows["role"] == role)).sum())
        rows = rows[~gone]
        gallery = rows[rows["role"] == "gallery"]
        people = sorted(set(gallery["identity"]))
        genuine = rows[rows["role"] == "genuine"]
        orphans = ~genuine["identity"].isin(people)  # their gallery images were all missing
        skipped["genuine"] += int(orphans.sum())
        genuine = genuine[~orphans]
        impostor = rows[rows["role"] == "impostor"]
        k = {p: i for i, p in enumerate(people)}
        trials.append(
            Trial(
                people,
                np.array([position[i] for i in gallery["image"]], np.int64),
                np.array([k[p] for p in gallery["identity"]], np.int64),
                np.array([position[i] for i in genuine["image"]], np.int64),
                np.array([k[p] for p in genuine["identity"]], np.int64),
                np.array([position[i] for i in impostor["image"]], np.int64),
            )
        )
    if absent:
        log.warning(
            "eval.missing=skip: %d images named in %s are missing under %s; left out over %d trials: %d gallery "
            "images, %d genuine and %d impostor probes",
            len(absent),
            folder,
            root,
            len(trials),
            skipped["gallery"],
            skipped["genuine"],
            skipped["impostor"],
        )
    settings = {"read_from": str(folder)}
    meta = folder / PROTOCOL_FILE
    if meta.is_file():
        settings["made_with"] = {k: v for k, v in json.loads(meta.read_text()).items() if k not in ("counts",)}
    out = OpenSetTrials(root, images, identity, trials, settings, skipped if absent else {})
    for number, trial in enumerate(out.trials, 1):
        if len(trial.enrolled) < 2 or not len(trial.genuine) or not len(trial.impostor):
            raise DataError(
                f"trial {number} of {folder} keeps {len(trial.enrolled)} enrolled people, {len(trial.genuine)} "
                f"genuine and {len(trial.impostor)} impostor probes once missing images are left out: too few"
            )
    return out
