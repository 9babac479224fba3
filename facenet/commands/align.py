"""`facenet align`: detect, align and crop the faces of an identity-folder tree (MTCNN)."""

from __future__ import annotations

import argparse

NAME = "align"
HELP = "detect, align and crop faces of an identity-folder tree (MTCNN)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """SRC DST and the crop's size, style, margin; which face; detector confidence; workers; what to do without a
    face."""
    parser.add_argument("src", help="identity folders of raw photos")
    parser.add_argument("dst", help="output identity folders of aligned crops")
    parser.add_argument("--size", type=int, default=112, help="crop size in pixels (default 112)")
    parser.add_argument(
        "--style",
        choices=("five_point", "box"),
        default="five_point",
        help="five_point: landmarks onto the ArcFace template; box: the detector box plus a margin, "
        "resized (davidsandberg's models: --style box --size 160 --margin 32)",
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=None,
        help="five_point: extra context as a fraction (default 0); box: pixels (default 32)",
    )
    parser.add_argument("--pick", choices=("largest", "central"), default="largest", help="face to keep per image")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes")
    parser.add_argument("--min-confidence", type=float, default=0.9, help="detector score to accept a face")
    parser.add_argument(
        "--on-miss",
        choices=("skip", "centre"),
        default="skip",
        help="an image with no face: skip (not written) or centre (InsightFace's LFW fallback: the centre crop, "
        "inset by 1/16 and grown by 44 px, resized); listed in DST/align_misses.csv either way (default skip)",
    )


def run(args: argparse.Namespace) -> int:
    """Align the tree, then say how many faces were found and where the misses are listed."""
    from facenet.align import MISSES_FILE, align_folder

    margin = args.margin if args.margin is not None else (32.0 if args.style == "box" else 0.0)
    report = align_folder(
        args.src, args.dst, args.size, margin, args.pick, args.workers, args.min_confidence, args.style, args.on_miss
    )
    done = "centre crops written" if args.on_miss == "centre" else "not written"
    print(f"aligned {report.aligned} of {report.total} images into {args.dst} ({report.written} written)")
    print(
        f"no face found in {len(report.no_face)} ({done}, --on-miss {args.on_miss}), unreadable "
        f"{len(report.unreadable)} (not written); listed in {args.dst}/{MISSES_FILE} and align_report.txt"
    )
    for path in report.no_face[:10]:
        print(f"  no face: {path}")
    return 0
