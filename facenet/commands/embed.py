"""`facenet embed`: embeddings of images (files and/or folders, recursively) into .npz, .csv or .parquet."""

from __future__ import annotations

import argparse
from pathlib import Path

from facenet.commands._model import add_model_arguments, embedder, images
from facenet.errors import UserError

NAME = "embed"
HELP = "embed images (files and/or folders, recursively)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """IMAGES... -o OUTPUT and the model arguments."""
    parser.add_argument("images", nargs="+")
    parser.add_argument("-o", "--output", required=True, help="out.npz (paths, embeddings), .csv or .parquet")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Embed every image and write paths with embeddings, in the format the output's suffix names."""
    import numpy as np
    import pandas as pd

    from facenet.interrupts import partial_file

    paths = images(args.images)
    emb = embedder(args).embed(paths)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix not in (".npz", ".csv", ".parquet"):
        raise UserError(f"-o {out}: expected a .npz, .csv or .parquet file")
    with partial_file(out) as tmp:
        if out.suffix == ".npz":
            np.savez(tmp, paths=np.asarray(paths), embeddings=emb)
        else:
            table = pd.DataFrame(emb, columns=[f"e{i}" for i in range(emb.shape[1])])
            table.insert(0, "path", paths)
            table.to_csv(tmp, index=False) if out.suffix == ".csv" else table.to_parquet(tmp, index=False)
    print(f"embedded {len(paths)} images ({emb.shape[1]}-d) into {out}")
    return 0
