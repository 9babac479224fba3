"""A gallery's `manifest.json`: what made the embeddings (model fingerprint, preprocessing, embedding size), how
they are searched (metric, index kind and settings), counts, the build's figures, and the size and sha256 of every
data file, so that a file that does not match is refused in one line before numpy or faiss parse it.

The model's fingerprint is the sha256 of its weights file (the `.ckpt`, `.mindir` or `.onnx`): it changes whenever
the weights do, and not when `facenet calibrate` records a threshold (that goes into the sidecar or model card).
"""

from __future__ import annotations

import json
from pathlib import Path

from facenet.errors import ConfigError, DataError
from facenet.files import sha256
from facenet.interrupts import partial_file

NAME = "manifest.json"
FORMAT = "facenet-gallery"
VERSION = 1
METRIC = "inner_product"  # over unit vectors: the cosine similarity, higher is closer
DATA_FILES = ("embeddings", "labels", "names", "paths", "index")


def is_gallery(folder: str | Path) -> bool:
    """Whether `folder` holds a built gallery (rather than identity folders of images, which may hold a
    `manifest.json` of their own: a generated evaluation set does)."""
    path = Path(folder) / NAME
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("format") == FORMAT
    except (ValueError, UnicodeDecodeError, AttributeError):  # a damaged manifest beside gallery data is the gallery's
        return any(Path(folder).glob("index-*.faiss"))


def describe_file(path: Path) -> dict:
    """The manifest's entry for a data file: its name, size and checksum."""
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256(path)}


def read(folder: Path) -> dict:
    """The manifest of the gallery `folder`, checked to be one this code can read."""
    path = folder / NAME
    if not path.is_file():
        raise DataError(f"{folder} is not a gallery: no {NAME} (build one: facenet gallery build DIR -o {folder})")
    try:
        manifest = json.loads(path.read_text())
        fmt, version, files = manifest["format"], int(manifest["version"]), manifest["files"]
        missing = [name for name in DATA_FILES if name not in files]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not a gallery manifest ({type(err).__name__}: {err})") from None
    if fmt != FORMAT:
        raise DataError(f"{path} is not a gallery manifest (format {fmt!r}, expected {FORMAT!r})")
    if version > VERSION:
        raise DataError(f"{path} has version {version}; this facenet reads gallery manifests up to {VERSION}")
    if missing:
        raise DataError(f"{path} lists no {', '.join(missing)} file")
    return manifest


def write(folder: Path, manifest: dict) -> None:
    """Replace the manifest in one rename: the commit point of a build, an addition or a removal."""
    with partial_file(folder / NAME) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))


def check_size(folder: Path, entry: dict) -> Path:
    """The data file `entry` names, refused unless it exists with the recorded size (cheap: no reading)."""
    path = folder / Path(entry["file"]).name
    if not path.is_file():
        raise DataError(f"gallery {folder}: {path.name} is missing; rebuild the gallery (facenet gallery build)")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise DataError(
            f"gallery {folder}: {path.name} is {size} bytes but the manifest records {entry['bytes']} (truncated "
            "or replaced); rebuild the gallery (facenet gallery build)"
        )
    return path


def verified(folder: Path, entry: dict) -> Path:
    """The data file `entry` names, refused unless its size and sha256 are the recorded ones."""
    path = check_size(folder, entry)
    if sha256(path) != entry["sha256"]:
        raise DataError(
            f"gallery {folder}: {path.name} does not match its checksum in the manifest (corrupt or changed); "
            "rebuild the gallery (facenet gallery build)"
        )
    return path


def check_model(manifest: dict, model: dict, folder: Path) -> None:
    """Refuse, in one line naming both sides, a model whose embeddings are not comparable with the gallery's:
    another embedding size, other weights, or other preprocessing. `model` is `Embedder.describe()`."""
    diffs = []
    ours, theirs = manifest.get("embedding_size"), model.get("embedding_size")
    if ours is not None and theirs is not None and int(ours) != int(theirs):
        diffs.append(f"embedding size {ours} (gallery) vs {theirs} (model)")
    g, m = manifest["model"], model["model"]
    if g["sha256"] != m["sha256"]:
        diffs.append(f"model {g['file']} sha256 {g['sha256'][:12]} (gallery) vs {m['file']} sha256 {m['sha256'][:12]}")
    g_pre, m_pre = manifest["preprocess"], model["preprocess"]
    for key in sorted(set(g_pre) | set(m_pre)):
        if g_pre.get(key) != m_pre.get(key):
            diffs.append(f"{key} {_show(g_pre.get(key))} (gallery) vs {_show(m_pre.get(key))} (model)")
    if diffs:
        raise ConfigError(
            f"gallery {folder} was built otherwise: {'; '.join(diffs)}. Embeddings are comparable only from the "
            "same model fed the same way: use the gallery's model and options, or build a gallery with this one"
        )


def _show(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in value.items()) + "}"
    return str(value)
