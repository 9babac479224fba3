"""`facenet calibrate`: choose a model's threshold at a FAR on labelled faces of your domain, recorded with it."""

from __future__ import annotations

import argparse

from facenet.commands._model import add_model_arguments, embedder

NAME = "calibrate"
HELP = "choose a model's threshold on labelled faces of your domain"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """FOLDER, --far and the model arguments."""
    parser.add_argument("folder", help="identity folders of aligned faces: FOLDER/<name>/<image>")
    parser.add_argument("--far", type=float, default=1e-3, help="false accept rate to hold (default 0.001)")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Calibrate, record the threshold beside the model, and say what it holds."""
    from facenet.calibration import calibrate_embeddings, record
    from facenet.inference import gallery_listing

    model = embedder(args)
    paths, labels, _ = gallery_listing(args.folder)
    emb = model.embed(paths, "calibration")
    result = calibrate_embeddings(emb, labels, args.far, str(args.folder))
    target = record(model.model_file, result)
    print(
        f"threshold {result.threshold:.4f} at FAR {result.far:.2e} (target {result.far_target:g}), TAR "
        f"{result.tar:.4f}: {result.genuine_pairs} genuine and {result.impostor_pairs} impostor pairs of "
        f"{result.images} images, {result.identities} identities"
    )
    print(f"recorded in {target}: verify, identify and cluster use it with this model")
    return 0
