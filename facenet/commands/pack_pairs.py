"""`facenet pack-pairs`: a pairs.txt over identity folders -> an InsightFace .bin verification set."""

from __future__ import annotations

import argparse

NAME = "pack-pairs"
HELP = "a pairs.txt over identity folders -> an InsightFace .bin set"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """ROOT PAIRS -o OUTPUT."""
    parser.add_argument("root", help="identity folders: ROOT/<name>/<name>_0001.jpg")
    parser.add_argument("pairs", help="pairs.txt (LFW format, with its `10 N` fold header)")
    parser.add_argument("-o", "--output", required=True, help="the .bin file to write")


def run(args: argparse.Namespace) -> int:
    """Pack, then say how many pairs were written."""
    from facenet.data.binsets import pack_pairs

    pairs, reencoded = pack_pairs(args.root, args.pairs, args.output)
    print(
        f"wrote {pairs} pairs ({2 * pairs} images) to {args.output}"
        + (f"; {reencoded} images stored as lossless PNG" if reencoded else "")
    )
    return 0
