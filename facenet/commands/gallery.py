"""`facenet gallery`: build a persistent gallery from identity folders (embeddings, faiss index, manifest), add
images or identities to it, remove identities, or show what it holds. `facenet identify --gallery` searches it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from facenet.commands._model import add_model_arguments, embedder

if TYPE_CHECKING:
    from facenet.gallery import Gallery
    from facenet.inference import Embedder

NAME = "gallery"
HELP = "persistent galleries: build | add | remove | info"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """build DIR -o GALLERY --model M [--index ...]; add GALLERY DIR --model M; remove GALLERY NAME...; info GALLERY."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="{build,add,remove,info}")
    build = actions.add_parser("build", help="embed identity folders DIR/<name>/<image> into a new gallery")
    build.add_argument("folder", help="identity folders: DIR/<name>/<image>")
    build.add_argument("-o", "--output", required=True, help="the gallery folder to create (absent or empty)")
    build.add_argument("--index", choices=("flat", "hnsw", "ivf"), default="flat", help="default flat (exact)")
    build.add_argument("--M", type=int, default=None, help="hnsw: links per node (default 32)")
    build.add_argument("--ef-construction", type=int, default=None, help="hnsw: build candidates (default 40)")
    build.add_argument("--ef-search", type=int, default=None, help="hnsw: search candidates (default 64)")
    build.add_argument("--nlist", type=int, default=None, help="ivf: lists (default about 2 sqrt(images))")
    build.add_argument(
        "--nprobe", type=int, default=None, help="ivf: lists scanned per query (default: an eighth of them)"
    )
    _model_arguments(build)
    add = actions.add_parser("add", help="embed images and identities not yet in the gallery (same model)")
    add.add_argument("gallery")
    add.add_argument("folder", help="identity folders: DIR/<name>/<image>")
    _model_arguments(add)
    remove = actions.add_parser("remove", help="remove identities (the index is rebuilt)")
    remove.add_argument("gallery")
    remove.add_argument("names", nargs="+", help="identity names")
    info = actions.add_parser("info", help="what the gallery holds; every file checked against its checksum")
    info.add_argument("gallery")
    info.add_argument("--identities", action="store_true", help="also list the identities and their image counts")


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--flip-tta", action="store_true", help="add each image's mirror image's embedding")


def run(args: argparse.Namespace) -> int:
    """One summary line per change; `info`: the manifest in words."""
    from facenet.gallery import Gallery

    if args.action == "build":
        settings = {
            "M": args.M,
            "ef_construction": args.ef_construction,
            "ef_search": args.ef_search,
            "nlist": args.nlist,
            "nprobe": args.nprobe,
        }
        given = {k: v for k, v in settings.items() if v is not None}
        gallery = model(args).build_gallery(args.folder, args.output, args.index, _for_kind(args.index, given))
        b = gallery.manifest["build"]
        print(
            f"built {gallery.folder}: {gallery.size} images of {len(gallery.names)} identities, {args.index} index "
            f"({_settings(gallery.settings)}); embedding {b['embedding_seconds']:.1f} s "
            f"({b['images_per_s']} images/s), index {b['index_seconds']:.2f} s"
        )
    elif args.action == "add":
        gallery, added, present = model(args).add_to_gallery(args.gallery, args.folder)
        print(
            f"added {added} images to {gallery.folder} ({present} already there): {gallery.size} images of "
            f"{len(gallery.names)} identities"
        )
    elif args.action == "remove":
        before = Gallery.open(args.gallery)
        gallery = before.remove(args.names)
        print(
            f"removed {len(set(args.names))} identities ({before.size - gallery.size} images) from {gallery.folder}: "
            f"{gallery.size} images of {len(gallery.names)} identities"
        )
    else:
        gallery = Gallery.open(args.gallery)
        gallery.verify()
        _print_info(gallery, args.identities)
    return 0


def model(args: argparse.Namespace) -> Embedder:
    """The Embedder of the model arguments, with flip TTA as asked."""
    m = embedder(args)
    m.flip_tta = bool(getattr(args, "flip_tta", False))
    return m


def _for_kind(kind: str, given: dict) -> dict:
    """The given index settings, refused if they belong to another kind (a setting must not be silently ignored)."""
    from facenet.errors import ConfigError
    from facenet.gallery.index import DEFAULTS

    other = sorted(set(given) - set(DEFAULTS[kind]))
    if other:
        flags = ", ".join("--" + name.replace("_", "-") for name in other)
        raise ConfigError(
            f"{flags} do not apply to --index {kind} (its settings: {_settings(DEFAULTS[kind]) or 'none'})"
        )
    return given


def _settings(settings: dict) -> str:
    return ", ".join(f"{k} {'auto' if v is None else v}" for k, v in settings.items())


def _print_info(gallery: Gallery, identities: bool) -> None:
    import numpy as np

    m = gallery.manifest
    model, pre, b = m["model"], m["preprocess"], m["build"]
    align = pre.get("align")
    print(f"gallery {gallery.folder}: {gallery.size} images of {len(gallery.names)} identities")
    print(f"  model: {model['file']} ({model['format']}, sha256 {model['sha256'][:16]}), {m['embedding_size']}-d")
    print(
        f"  preprocessing: {pre['image_size']} px, {pre['normalize']} standardisation, centre crop "
        f"{pre.get('center_crop') or 'none'}, alignment {align['style'] if align else 'none'}, "
        f"flip TTA {'yes' if pre.get('flip_tta') else 'no'}"
    )
    print(f"  index: {gallery.kind} ({_settings(gallery.settings)}), {m['metric']} = {m['similarity']} similarity")
    print(
        f"  built {b['built_at']} from {b['source'] or '?'}: embedding {b['embedding_seconds']} s "
        f"({b['images_per_s']} images/s), index {b['index_seconds']} s; faiss {m['index']['faiss']}"
    )
    for record in m["history"]:
        print(f"  {record['op']} {record['at']}: {record['images']} images")
    print(f"  files: {len(m['files'])} checked against their sha256")
    if identities:
        counts = np.bincount(gallery.labels, minlength=len(gallery.names))
        for name, count in zip(gallery.names, counts, strict=True):
            print(f"  {name}\t{count}")
