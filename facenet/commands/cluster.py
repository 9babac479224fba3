"""`facenet cluster`: group a folder of unlabelled faces by identity."""

from __future__ import annotations

import argparse

from facenet.commands._model import add_model_arguments, embedder, images

NAME = "cluster"
HELP = "group a folder of unlabelled faces by identity"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """FOLDER -o CSV, the link threshold, the method, and the model arguments."""
    parser.add_argument("folder")
    parser.add_argument("-o", "--output", default="clusters.csv", help="CSV of path,cluster (default clusters.csv)")
    parser.add_argument("--threshold", type=float, help="link distance (default: the model's threshold)")
    parser.add_argument("--method", choices=("chinese_whispers", "components"), default="chinese_whispers")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Write path,cluster and summarise the cluster sizes."""
    import pandas as pd

    from facenet.interrupts import partial_file

    paths = images([args.folder])
    labels = embedder(args).cluster(paths, args.threshold, args.method)
    with partial_file(args.output) as tmp:
        pd.DataFrame({"path": paths, "cluster": labels}).to_csv(tmp, index=False)
    sizes = pd.Series(labels).value_counts()
    print(
        f"{len(paths)} images -> {len(sizes)} clusters ({int((sizes > 1).sum())} with 2+ images, "
        f"largest {int(sizes.max())}); written to {args.output}"
    )
    return 0
