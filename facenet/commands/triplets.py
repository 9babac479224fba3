"""`facenet triplets`: random triplets drawn by the reference recipe's rules, written as its CSV."""

from __future__ import annotations

import argparse

from facenet.errors import UserError

NAME = "triplets"
HELP = "draw random triplets (reference rules) into a reference CSV"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--root (or --index-csv), how many, seed, -o OUTPUT."""
    parser.add_argument("--root", required=True, help="identity-folder tree")
    parser.add_argument("--index-csv", help="the reference id,name,class CSV instead of scanning --root")
    parser.add_argument("-n", "--triplets", type=int, default=3_000_000, help="how many (default 3000000)")
    parser.add_argument("--seed", type=int, default=0, help="the draw's seed (default 0)")
    parser.add_argument("-o", "--output", required=True, help="the CSV to write")


def run(args: argparse.Namespace) -> int:
    """Index the images, draw the triplets, write anc_id,pos_id,neg_id,pos_class,neg_class,pos_name,neg_name."""
    import numpy as np

    from facenet.data.index import index_folder, read_index_csv
    from facenet.data.triplets import ClassIndex, draw_triplets, triplets_frame
    from facenet.interrupts import partial_file

    if args.triplets < 1:
        raise UserError(f"-n must be >= 1, got {args.triplets}")
    table = read_index_csv(args.index_csv, args.root) if args.index_csv else index_folder(args.root)
    triplets = draw_triplets(ClassIndex(table["class"].to_numpy()), args.triplets, np.random.default_rng(args.seed))
    try:
        with partial_file(args.output) as tmp:
            triplets_frame(table, triplets).to_csv(tmp, index=False)
    except OSError as err:
        raise UserError(f"cannot write {args.output}: {err.strerror}") from None
    print(f"{len(triplets):,} triplets over {len(table):,} images written to {args.output}")
    return 0
