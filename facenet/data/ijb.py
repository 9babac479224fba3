"""IJB-B / IJB-C folders in the layout InsightFace's IJB evaluation reads (`recognition/arcface_torch/eval_ijbc.py`,
`recognition/_evaluation_/ijb/ijb_1n.py`, `ijb_evals.py`), and a generator of small folders in the same layout.

A folder `<root>` of set `<s>` (`ijbb` or `ijbc`) holds:

- `meta/<s>_face_tid_mid.txt`: one face per line, `<image> <template id> <media id>` (space separated);
- `meta/<s>_name_5pts_score.txt`: the same faces in the same order, `<image> x1 y1 ... x5 y5 <detector score>` (left
  eye, right eye, nose, left and right mouth corners, in the image's pixels);
- `meta/<s>_template_pair_label.txt`: the 1:1 pairs, `<template id> <template id> <label>` (1 same subject, 0 not);
- `loose_crop/<image>`: each face's loosely cropped image (or, with `aligned`, its aligned crop);
- for 1:N: `meta/<s>_1N_gallery_G1.csv`, `..._G2.csv` (IJB-B: `..._S1.csv`, `..._S2.csv`) and
  `meta/<s>_1N_probe_mixed.csv`, comma separated with a header naming `TEMPLATE_ID` and `SUBJECT_ID` (more columns,
  e.g. `FILENAME`, are ignored), one row per face. A template's faces are the ones `face_tid_mid` gives it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pandas as pd

from facenet.data.images import read_image
from facenet.data.index import IMAGE_EXTENSIONS
from facenet.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SETS = ("ijbb", "ijbc")
GALLERIES = ("G1", "G2")  # the two galleries, searched separately; IJB-B's files call them S1 and S2
GALLERY_FILES = {"ijbb": ("S1", "S2"), "ijbc": ("G1", "G2")}
TITLES = {"ijbb": "IJB-B", "ijbc": "IJB-C"}
# ArcFace's 112x112 five-point template (facenet.align.TEMPLATE_112, which data may not import: a test keeps the
# two equal); the generator places it in its loose crops
TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]], np.float32
)
Warp = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (image, its 5 landmarks) -> aligned crop


def meta_files(name: str, identification: bool = True) -> dict[str, str]:
    """role -> path under the root of every meta file set `name` reads."""
    files = {
        "faces": f"meta/{name}_face_tid_mid.txt",
        "landmarks": f"meta/{name}_name_5pts_score.txt",
        "pairs": f"meta/{name}_template_pair_label.txt",
    }
    if identification:
        for gallery, suffix in zip(GALLERIES, GALLERY_FILES[name], strict=True):
            files[gallery] = f"meta/{name}_1N_gallery_{suffix}.csv"
        files["probes"] = f"meta/{name}_1N_probe_mixed.csv"
    return files


class IjbFaces:
    """The faces' images, read from `loose_crop/` and aligned by `warp` with their landmarks (or as they are)."""

    def __init__(self, paths: Sequence[str], landmarks: np.ndarray, warp: Warp | None = None):
        self.paths, self.landmarks, self.warp = list(paths), landmarks, warp

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int) -> np.ndarray:
        img = read_image(self.paths[i])
        if self.warp is None:
            return img
        try:
            return self.warp(img, self.landmarks[i])
        except DataError as err:
            raise DataError(f"{self.paths[i]}: {err}") from None

    def name(self, i: int) -> str:
        return self.paths[i]

    def subset(self, indices: Sequence[int]) -> IjbFaces:
        return IjbFaces([self.paths[i] for i in indices], self.landmarks[list(indices)], self.warp)


@dataclass
class IjbSet:
    """An IJB set as read: its faces (image, template, media, landmarks, detector score), the 1:1 pairs, and for
    1:N the galleries and probes (one row per template: its id and subject). `skipped` counts what
    `missing="skip"` left out."""

    root: Path
    name: str
    images: list[str]
    templates: np.ndarray
    medias: np.ndarray
    landmarks: np.ndarray  # (faces, 5, 2)
    scores: np.ndarray  # detector scores
    pairs: np.ndarray  # (pairs, 3): template, template, label
    galleries: dict[str, tuple[np.ndarray, np.ndarray]]  # G1, G2 -> (template ids, subject ids)
    probes: tuple[np.ndarray, np.ndarray] | None
    files: dict[str, str]  # meta file (under root) -> sha1 of its bytes
    skipped: dict[str, int] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """sha1 over the meta files' names and sha1s: equal exactly when the meta files are."""
        return hashlib.sha1("\n".join(f"{k}\t{v}" for k, v in sorted(self.files.items())).encode()).hexdigest()

    def faces(self, warp: Warp | None = None) -> IjbFaces:
        """The faces' images, in face order; `warp` aligns each with its landmarks (None: read as they are)."""
        crops = self.root / "loose_crop"
        return IjbFaces([str(crops / name) for name in self.images], self.landmarks, warp)

    def counts(self) -> dict[str, int]:
        same = self.pairs[:, 2] == 1
        out = {
            "faces": len(self.images),
            "templates": int(len(np.unique(self.templates))),
            "media": int(len(np.unique(np.stack([self.templates, self.medias]), axis=1).T)),
            "genuine_pairs": int(same.sum()),
            "impostor_pairs": int((~same).sum()),
        }
        for gallery, (templates, _) in self.galleries.items():
            out[f"{gallery}_templates"] = len(templates)
        if self.probes is not None:
            out["probe_templates"] = len(self.probes[0])
        return out


def read_ijb(
    root: str | os.PathLike, name: str | None = None, identification: bool = True, missing: str = "fail"
) -> IjbSet:
    """The IJB set at `root` (`name` ijbb / ijbc, or None: the one whose meta files `root/meta` holds), checked:
    a missing meta file, a malformed line, a template the pairs or 1:N lists name without faces is one DataError
    line. An image absent from `loose_crop/` is refused (`missing="fail"`) or its face left out (`"skip"`; a
    template left without faces is dropped with its pairs, gallery or probe entries; all counted in `skipped`)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"eval.root={str(root)!r} does not exist or is not a folder")
    name = set_name(root, name)
    files = meta_files(name, identification)
    for role, rel in files.items():
        if not (root / rel).is_file():
            hint = " (or eval.identification=false for 1:1 verification only)" if role in (*GALLERIES, "probes") else ""
            raise DataError(
                f"{root / rel} is missing: an {TITLES[name]} folder holds {', '.join(files.values())}{hint}"
            )
    if not (root / "loose_crop").is_dir():
        raise DataError(f"{root / 'loose_crop'} is missing: the face images of {root} are read from it")
    faces = _table(root / files["faces"], "<image> <template id> <media id>", "sii")
    _safe_names(root / files["faces"], faces[0].tolist())
    marks = _table(root / files["landmarks"], "<image> <10 landmark coordinates> <detector score>", "s" + "f" * 11)
    _same_faces(root / files["faces"], faces, root / files["landmarks"], marks)
    pairs = _table(root / files["pairs"], "<template id> <template id> <label>", "iii").to_numpy(np.int64)
    bad = np.flatnonzero(~np.isin(pairs[:, 2], (0, 1)))
    if bad.size:
        lineno, text = _line(root / files["pairs"], int(bad[0]))
        raise DataError(f"{root / files['pairs']}: line {lineno}: {text!r}: the label is 1 (same subject) or 0")
    templates = faces[1].to_numpy(np.int64)
    known = np.unique(templates)
    _known(root / files["pairs"], pairs[:, :2].ravel(), known, root / files["faces"])
    galleries, probes = {}, None
    if identification:
        for gallery in GALLERIES:
            galleries[gallery] = _subjects(root / files[gallery])
            _known(root / files[gallery], galleries[gallery][0], known, root / files["faces"])
        probes = _subjects(root / files["probes"])
        _known(root / files["probes"], probes[0], known, root / files["faces"])
    data = IjbSet(
        root=root,
        name=name,
        images=faces[0].tolist(),
        templates=templates,
        medias=faces[2].to_numpy(np.int64),
        landmarks=marks.iloc[:, 1:11].to_numpy(np.float32).reshape(-1, 5, 2),
        scores=marks[11].to_numpy(np.float32),
        pairs=pairs,
        galleries=galleries,
        probes=probes,
        files={rel: _sha1(root / rel) for rel in files.values()},
    )
    return _absent_left_out(data, missing, files["landmarks"])


def set_name(root: Path, name: str | None) -> str:
    """`name` checked, or the set whose `<set>_face_tid_mid.txt` `root/meta` holds."""
    if name is not None:
        if name not in SETS:
            raise ConfigError(f"eval.name must be one of {', '.join(SETS)} or null (inferred), got {name!r}")
        return name
    found = [s for s in SETS if (root / meta_files(s)["faces"]).is_file()]
    if len(found) > 1:
        raise ConfigError(f"{root / 'meta'} holds the meta files of both IJB-B and IJB-C: set eval.name=ijbb or ijbc")
    if not found:
        inside = [d.name for d in sorted(root.iterdir()) if d.is_dir() and (d / "meta").is_dir()]
        hint = f" (it holds {', '.join(inside)}: set eval.root to one of them)" if inside else ""
        raise DataError(
            f"{root} is no IJB-B / IJB-C folder: neither meta/ijbb_face_tid_mid.txt nor meta/ijbc_face_tid_mid.txt "
            f"is there{hint}"
        )
    return found[0]


def _line(path: Path, row: int, header: int = 0) -> tuple[int, str]:
    """(line number, text) of data row `row` of `path` (blank lines are not rows; `header` lines come first)."""
    seen = -1
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, text in enumerate(f, start=1):
            if lineno > header and text.strip():
                seen += 1
                if seen == row:
                    return lineno, text.rstrip("\n")
    return lineno, ""


def _table(path: Path, layout: str, kinds: str) -> pd.DataFrame:
    """The rows of a whitespace-separated file whose lines are `layout`; `kinds` has one letter per column: s text,
    i integer, f number. DataError naming the file and the first line that is not so."""
    try:
        table = pd.read_csv(path, sep=r"\s+", header=None, dtype={0: str}, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: expected lines {layout}") from None
    except pd.errors.ParserError as err:  # a line with more fields than the first: the first, if it is short
        found = re.search(r"line (\d+), saw", str(err))
        first, text = _line(path, 0)
        lineno = int(found.group(1)) if found and len(text.split()) == len(kinds) else first
        if lineno != first:
            text = Path(path).read_text(errors="replace").splitlines()[lineno - 1]
        raise DataError(f"{path}: line {lineno}: {text!r}: expected {layout}") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not text ({err.reason} at byte {err.start})") from None
    if table.shape[1] != len(kinds):
        lineno, text = _line(path, 0)
        raise DataError(f"{path}: line {lineno}: {text!r}: expected {layout}")
    for col, kind in enumerate(kinds):
        if kind == "s":
            continue
        values = pd.to_numeric(table[col], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(values) | ((values != np.round(values)) if kind == "i" else False)
        if bad.any():
            lineno, text = _line(path, int(np.argmax(bad)))
            raise DataError(f"{path}: line {lineno}: {text!r}: expected {layout}")
        table[col] = values.astype(np.int64) if kind == "i" else values
    return table


def _same_faces(faces_path: Path, faces: pd.DataFrame, marks_path: Path, marks: pd.DataFrame) -> None:
    """The two face lists name the same images in the same order (InsightFace pairs them by line)."""
    a, b = faces[0].to_numpy(), marks[0].to_numpy()
    if len(a) != len(b):
        raise DataError(f"{marks_path} lists {len(b)} faces, {faces_path} {len(a)}: both list every face, in order")
    differ = np.flatnonzero(a != b)
    if differ.size:
        lineno, _ = _line(faces_path, int(differ[0]))
        raise DataError(
            f"{marks_path} and {faces_path} differ at line {lineno} ({b[differ[0]]!r} vs {a[differ[0]]!r}): both "
            "list every face, in the same order"
        )


def _safe_names(path: Path, names: list[str]) -> None:
    """Image names stay inside loose_crop/: relative, without '..'."""
    for row, name in enumerate(names):
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if not parts or name.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", name):
            lineno, text = _line(path, row)
            raise DataError(f"{path}: line {lineno}: {text!r}: an image name is a path inside loose_crop/")


def _subjects(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(template ids, subject ids) of a 1:N CSV, one entry per template (its rows are faces)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        header = [h.strip().upper() for h in f.readline().split(",")]
    if "TEMPLATE_ID" not in header or "SUBJECT_ID" not in header:
        raise DataError(f"{path}: line 1 {','.join(header)!r}: expected a header naming TEMPLATE_ID and SUBJECT_ID")
    cols = [header.index("TEMPLATE_ID"), header.index("SUBJECT_ID")]
    try:
        table = pd.read_csv(path, header=None, skiprows=1, usecols=cols, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} lists no template") from None
    except pd.errors.ParserError as err:
        found = re.search(r"line (\d+)", str(err))
        raise DataError(f"{path}: line {found.group(1) if found else '?'}: malformed CSV row") from None
    if table.empty:
        raise DataError(f"{path} lists no template")
    ids = np.empty((len(table), 2), np.int64)
    for j, col in enumerate(cols):
        values = pd.to_numeric(table[col], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            lineno, text = _line(path, int(np.argmax(bad)), header=1)
            raise DataError(f"{path}: line {lineno}: {text!r}: TEMPLATE_ID and SUBJECT_ID are integers")
        ids[:, j] = values
    pairs = np.unique(ids, axis=0)
    templates, counts = np.unique(pairs[:, 0], return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{path}: template {templates[counts > 1][0]} is listed with more than one SUBJECT_ID")
    return pairs[:, 0], pairs[:, 1]


def _known(path: Path, named: np.ndarray, known: np.ndarray, faces_path: Path) -> None:
    unknown = np.setdiff1d(named, known)
    if unknown.size:
        shown = ", ".join(str(t) for t in unknown[:5]) + (" ..." if unknown.size > 5 else "")
        raise DataError(f"{path} names {unknown.size} templates without a face in {faces_path}: {shown}")


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _absent_left_out(data: IjbSet, missing: str, listing: str) -> IjbSet:
    """Images absent from loose_crop/: refused, or (missing="skip") their faces left out, and the templates left
    without faces dropped with their pairs and 1:N entries, every one counted."""
    crops = data.root / "loose_crop"
    present = np.array([(crops / name).is_file() for name in data.images], dtype=bool)
    if present.all():
        return data
    absent = [data.images[i] for i in np.flatnonzero(~present)]
    shown = ", ".join(absent[:5]) + (" ..." if len(absent) > 5 else "")
    if missing != "skip":
        raise DataError(
            f"{len(absent)} images listed in {data.root / listing} are missing from {crops} ({shown}); restore "
            "them, or leave out their faces with eval.missing=skip"
        )
    kept_templates = np.unique(data.templates[present])
    dropped = np.setdiff1d(np.unique(data.templates), kept_templates)
    keep_pairs = np.isin(data.pairs[:, :2], kept_templates).all(axis=1)
    skipped = {"faces": len(absent), "templates": int(dropped.size), "pairs": int((~keep_pairs).sum())}
    galleries = {}
    for gallery, (templates, subjects) in data.galleries.items():
        keep = np.isin(templates, kept_templates)
        galleries[gallery] = (templates[keep], subjects[keep])
        skipped[f"{gallery}_templates"] = int((~keep).sum())
    probes = data.probes
    if probes is not None:
        keep = np.isin(probes[0], kept_templates)
        probes = (probes[0][keep], probes[1][keep])
        skipped["probe_templates"] = int((~keep).sum())
    log.warning(
        "eval.missing=skip: %d images listed in %s are missing from %s (%s); left out: %s",
        len(absent),
        listing,
        crops,
        shown,
        ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in skipped.items()),
    )
    idx = np.flatnonzero(present)
    return IjbSet(
        root=data.root,
        name=data.name,
        images=[data.images[i] for i in idx],
        templates=data.templates[idx],
        medias=data.medias[idx],
        landmarks=data.landmarks[idx],
        scores=data.scores[idx],
        pairs=data.pairs[keep_pairs],
        galleries=galleries,
        probes=probes,
        files=data.files,
        skipped=skipped,
    )


# ---------------------------------------------------------------- a small folder in the same layout
def write_sample(
    out: str | os.PathLike,
    source: str | os.PathLike | None = None,
    name: str = "ijbc",
    subjects: int = 40,
    distractors: int = 4,
    probes_per_subject: int = 5,
    image_size: int = 64,
    aligned: bool = False,
    seed: int = 0,
) -> Path:
    """Write an IJB-format folder at `out` (which must not exist yet) from the faces of `source`: an identity-folder
    tree of aligned crops (`Name/Name_0001.jpg`, e.g. lfw112; the identities with the most images are used), or
    None: generated faces (`facenet.data.synthetic`, `image_size` pixels).

    `subjects` people are enrolled, alternately in gallery G1 and G2, each by one template of 2 media x 2 frames;
    `distractors` more are in no gallery. Everyone has `probes_per_subject` probe templates of 1-2 media x 1-3
    frames (all in the mixed probe list, so each probe is non-mated in one gallery or both). A media is one source
    image; its frames are that image placed in a loose crop by a random similarity (rotation, scale, shift) and
    brightness (`aligned`: the source image itself), with the ArcFace landmarks moved along. The 1:1 pairs are
    every pair of templates. Returns `out`; `out/sample.json` says how it was made."""
    if name not in SETS:
        raise ConfigError(f"name must be one of {', '.join(SETS)}, got {name!r}")
    if subjects < 10 or distractors < 0 or probes_per_subject < 1:
        raise ConfigError(
            f"an IJB sample needs >= 10 subjects (rank 5 in each of two galleries), >= 0 distractors and >= 1 probe "
            f"per subject; got {subjects}, {distractors}, {probes_per_subject}"
        )
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty: write the sample into a new folder")
    rng = np.random.default_rng([seed, 29])
    people = subjects + distractors
    # (subject, role, media count, frames per media) per template, gallery templates first
    plan = [(s, GALLERIES[s % 2], [2, 2]) for s in range(subjects)]
    for s in range(people):
        for _ in range(probes_per_subject):
            plan.append((s, "probe", [int(rng.integers(1, 4)) for _ in range(int(rng.integers(1, 3)))]))
    media_per_person = np.bincount([s for s, _, frames in plan for _ in frames], minlength=people)
    faces = _sample_faces(source, people, media_per_person, image_size, seed)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "meta").mkdir(parents=True)
    (tmp / "loose_crop").mkdir()
    try:
        _write_sample_files(tmp, name, plan, faces, aligned, rng)
        (tmp / "sample.json").write_text(
            json.dumps(
                {
                    "source": str(source) if source is not None else "synthetic",
                    "name": name,
                    "subjects": subjects,
                    "distractors": distractors,
                    "probes_per_subject": probes_per_subject,
                    "image_size": image_size,
                    "aligned": aligned,
                    "seed": seed,
                    "templates": len(plan),
                    "faces": sum(sum(frames) for _, _, frames in plan),
                },
                indent=1,
            )
        )
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _sample_faces(
    source: str | os.PathLike | None, people: int, wanted: np.ndarray, size: int, seed: int
) -> list[list[np.ndarray]]:
    """`wanted[p]` BGR images of each of `people` people (a person's images repeat if the tree has fewer)."""
    if source is None:
        from facenet.data.synthetic import identity_params, render

        out = []
        for p in range(people):
            rng = np.random.default_rng([seed, 30, p])
            params = identity_params(rng)
            out.append([render(params, rng, size) for _ in range(int(wanted[p]))])
        return out
    root = Path(source).expanduser()
    if not root.is_dir():
        raise DataError(f"{root} does not exist or is not a folder")
    trees = {
        d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        for d in root.iterdir()
        if d.is_dir()
    }
    chosen = sorted((n for n in trees if len(trees[n]) >= 2), key=lambda n: (-len(trees[n]), n))[:people]
    if len(chosen) < people:
        raise DataError(f"{root} has {len(chosen)} identities with >= 2 images; the sample needs {people}")
    return [
        [cv2.cvtColor(read_image(str(trees[n][i % len(trees[n])])), cv2.COLOR_RGB2BGR) for i in range(int(wanted[p]))]
        for p, n in enumerate(chosen)
    ]


def _loose(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`img` (an aligned crop) placed in a larger loose crop by a random similarity, and where its five template
    landmarks land."""
    h, w = img.shape[:2]
    side = int(round(1.6 * max(h, w)))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-25, 25)), float(rng.uniform(0.85, 1.2)))
    m[:, 2] += np.array([side / 2 - w / 2, side / 2 - h / 2]) + rng.uniform(-0.08, 0.08, 2) * side
    crop = cv2.warpAffine(img, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    crop = np.clip(crop.astype(np.float32) * rng.uniform(0.9, 1.1), 0, 255).astype(np.uint8)
    points = TEMPLATE_112 * np.array([w / 112.0, h / 112.0], np.float32)
    return crop, points @ m[:, :2].T + m[:, 2]


def _write_sample_files(
    folder: Path,
    name: str,
    plan: list[tuple[int, str, list[int]]],
    faces: list[list[np.ndarray]],
    aligned: bool,
    rng: np.random.Generator,
) -> None:
    rows, used = [], [0] * len(faces)  # rows: image, template, media, subject, role, landmarks, score
    media = 0
    for template, (person, role, frames) in enumerate(plan, start=1):
        for count in frames:
            media += 1
            img = faces[person][used[person]]
            used[person] += 1
            for _ in range(count):
                if aligned:
                    crop = img
                    points = TEMPLATE_112 * np.array([img.shape[1] / 112.0, img.shape[0] / 112.0], np.float32)
                else:
                    crop, points = _loose(img, rng)
                image = f"{len(rows) + 1}.jpg"
                cv2.imwrite(str(folder / "loose_crop" / image), crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
                rows.append((image, template, media, person + 1, role, points, float(rng.uniform(0.6, 1.0))))
    files = meta_files(name)
    (folder / files["faces"]).write_text("".join(f"{r[0]} {r[1]} {r[2]}\n" for r in rows))
    (folder / files["landmarks"]).write_text(
        "".join(f"{r[0]} {' '.join(f'{v:.3f}' for v in r[5].ravel())} {r[6]:.3f}\n" for r in rows)
    )
    subject = {r[1]: r[3] for r in rows}
    ids = sorted(subject)
    (folder / files["pairs"]).write_text(
        "".join(f"{a} {b} {int(subject[a] == subject[b])}\n" for i, a in enumerate(ids) for b in ids[i + 1 :])
    )
    header = "TEMPLATE_ID,SUBJECT_ID,FILENAME,SIGHTING_ID\n"
    for role, key in zip((*GALLERIES, "probe"), (*GALLERIES, "probes"), strict=True):
        body = "".join(f"{r[1]},{r[3]},loose_crop/{r[0]},{r[2]}\n" for r in rows if r[4] == role)
        (folder / files[key]).write_text(header + body)
