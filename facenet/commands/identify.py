"""`facenet identify`: the top-k identities of an identity-folder gallery for each query face."""

from __future__ import annotations

import argparse

from facenet.commands._model import add_model_arguments, embedder, images

NAME = "identify"
HELP = "top-k identities of an identity-folder gallery"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """QUERY... --gallery, k, method, threshold, the gallery cache, and the model arguments."""
    parser.add_argument("query", nargs="+", help="image files and/or folders")
    parser.add_argument("--gallery", required=True, help="identity folders: GALLERY/<name>/<image>")
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--method", choices=("mean", "nearest"), default="mean")
    parser.add_argument("--threshold", type=float, help="beyond it a query is 'unknown' (default: the model's)")
    parser.add_argument("--cache-dir", default=None, help="gallery embedding cache (default ~/.cache/facenet)")
    parser.add_argument("--no-cache", action="store_true")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """One line per query: its ranked identities with their distances."""
    from facenet.inference import CACHE_DIR

    cache_dir = None if args.no_cache else (CACHE_DIR if args.cache_dir is None else args.cache_dir)
    model = embedder(args)
    queries = images(args.query)
    results = model.identify(queries, args.gallery, args.k, args.method, args.threshold, cache_dir)
    for query, matches in zip(queries, results, strict=True):
        ranked = ", ".join(f"{m.identity} {m.distance:.3f}" for m in matches)
        print(f"{query}: {ranked}")
    return 0
