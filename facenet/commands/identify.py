"""`facenet identify`: the top-k identities of a gallery for each query face: identity folders, or a gallery built
by `facenet gallery build` (searched through its faiss index)."""

from __future__ import annotations

import argparse

from facenet.commands._model import add_model_arguments, embedder, images

NAME = "identify"
HELP = "top-k identities of a gallery (identity folders or a built gallery)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """QUERY... --gallery, k, method, the threshold (a distance, or an FPIR of an open-set protocol report), the
    gallery cache, flip TTA, and the model arguments."""
    parser.add_argument("query", nargs="+", help="image files and/or folders")
    parser.add_argument(
        "--gallery", required=True, help="identity folders GALLERY/<name>/<image>, or a built gallery (facenet gallery)"
    )
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument(
        "--method",
        choices=("mean", "nearest"),
        default=None,
        help="identity folders: mean (default) or nearest image; a built gallery: nearest only",
    )
    parser.add_argument(
        "--threshold", type=float, help="L2 distance beyond which a query is 'unknown' (default: the model's)"
    )
    parser.add_argument(
        "--fpir",
        type=float,
        help="instead: the cosine threshold an open-set protocol chose for this false positive identification rate",
    )
    parser.add_argument(
        "--protocol-report", help="with --fpir: the report.json of task=eval eval=openset for this model"
    )
    parser.add_argument(
        "--cache-dir", default=None, help="identity folders' embedding cache (default ~/.cache/facenet)"
    )
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--flip-tta", action="store_true", help="add each image's mirror image's embedding")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """One line per query: its ranked identities with their distances (and cosine similarities for a built gallery)."""
    from facenet.errors import ConfigError
    from facenet.gallery import from_report, is_gallery
    from facenet.inference import CACHE_DIR

    if (args.fpir is None) != (args.protocol_report is None):
        raise ConfigError("--fpir and --protocol-report go together: the report holds the threshold of each FPIR")
    if args.fpir is not None and args.threshold is not None:
        raise ConfigError("give --threshold (a distance) or --fpir with --protocol-report, not both")
    cache_dir = None if args.no_cache else (CACHE_DIR if args.cache_dir is None else args.cache_dir)
    model = embedder(args)
    model.flip_tta = args.flip_tta
    min_similarity = None
    if args.fpir is not None:
        min_similarity = from_report(args.protocol_report, args.fpir, model.describe()["preprocess"]).cosine
    queries = images(args.query)
    results = model.identify(queries, args.gallery, args.k, args.method, args.threshold, cache_dir, min_similarity)
    built = is_gallery(args.gallery)
    for query, matches in zip(queries, results, strict=True):
        if built:
            ranked = ", ".join(f"{m.identity} {m.distance:.3f} (cos {m.similarity:.3f})" for m in matches)
        else:
            ranked = ", ".join(f"{m.identity} {m.distance:.3f}" for m in matches)
        print(f"{query}: {ranked}")
    return 0
