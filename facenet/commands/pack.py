"""`facenet pack`: identity folders -> InsightFace's RecordIO layout (train.rec, train.idx, property)."""

from __future__ import annotations

import argparse

NAME = "pack"
HELP = "identity folders -> train.rec + train.idx + property (InsightFace's layout)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """FOLDER -o OUTPUT."""
    parser.add_argument("folder", help="identity folders: FOLDER/<name>/<image>")
    parser.add_argument("-o", "--output", required=True, help="the folder to write train.rec, train.idx, property into")


def run(args: argparse.Namespace) -> int:
    """Pack, then say what was written."""
    from facenet.data.insightface import pack_folder

    r = pack_folder(args.folder, args.output)
    print(
        f"packed {r.images} images of {r.identities} identities into {args.output} (train.rec "
        f"{r.bytes / 1e6:.1f} MB, train.idx, property {r.identities},{r.size[0]},{r.size[1]})"
    )
    if r.reencoded:
        print(f"{r.reencoded} images in formats other than JPEG/PNG were stored as lossless PNG")
    return 0
