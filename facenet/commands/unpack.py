"""`facenet unpack`: a RecordIO training set (train.rec + train.idx) -> identity folders."""

from __future__ import annotations

import argparse

NAME = "unpack"
HELP = "a RecordIO training set (train.rec + train.idx) -> identity folders"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """PATH -o OUTPUT."""
    parser.add_argument("path", help="folder with train.rec and train.idx, or the .rec file")
    parser.add_argument("-o", "--output", required=True, help="a new or empty folder")


def run(args: argparse.Namespace) -> int:
    """Unpack, then say how many images were written."""
    from facenet.data.insightface import unpack

    n = unpack(args.path, args.output)
    print(f"unpacked {n} images into identity folders under {args.output}")
    return 0
