"""What the commands that use a model share: the `--model` argument group, the model it loads, the images named."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --batch-size, --workers, --center-crop, --align: the model and how images are fed to it."""
    parser.add_argument(
        "--model",
        required=True,
        help="a .ckpt (with its sidecar), .mindir or .onnx (with model card), "
        "or a published model by name (facenet pretrained list)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (dynamic-batch models)")
    parser.add_argument("--workers", type=int, default=2, help="image decoding workers")
    parser.add_argument("--center-crop", type=int, default=None, help="crop the central box first (unaligned photos)")
    parser.add_argument("--align", action="store_true", help="detect and align each face first (raw photos, MTCNN)")


def embedder(args: argparse.Namespace):
    """The Embedder the model arguments describe."""
    from facenet.inference import Embedder

    return Embedder.from_pretrained(args.model, args.batch_size, args.workers, args.center_crop, args.align)


def images(items: list[str]) -> list[str]:
    """Image files, with each folder among `items` replaced by the images under it (recursively)."""
    from facenet.inference import list_images

    out: list[str] = []
    for item in items:
        out += list_images(item) if Path(item).is_dir() else [item]
    return out
