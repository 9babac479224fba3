"""`facenet verify`: are two faces the same person? Their distance against the model's threshold."""

from __future__ import annotations

import argparse

from facenet.commands._model import add_model_arguments, embedder

NAME = "verify"
HELP = "same person? distance against the model's threshold"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """IMAGE1 IMAGE2, --threshold and the model arguments."""
    parser.add_argument("image1")
    parser.add_argument("image2")
    parser.add_argument("--threshold", type=float, help="default: the threshold recorded with the model")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print the distance, the threshold and the verdict."""
    v = embedder(args).verify(args.image1, args.image2, args.threshold)
    print(f"distance {v.distance:.4f}, threshold {v.threshold:.4f}: {'same person' if v.same else 'different people'}")
    return 0
