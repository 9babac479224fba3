"""The `facenet` command line: `facenet align SRC DST [...]`."""

from __future__ import annotations

import argparse
import sys

from facenet.errors import UserError


def _align(args: argparse.Namespace) -> int:
    from facenet.align import align_folder

    report = align_folder(args.src, args.dst, args.size, args.margin, args.pick, args.workers, args.min_confidence)
    print(f"aligned {report.aligned} of {report.total} images into {args.dst}")
    print(f"no face found in {len(report.no_face)}, unreadable {len(report.unreadable)} "
          f"(listed in {args.dst}/align_report.txt)")  # fmt: skip
    for path in report.no_face[:10]:
        print(f"  no face: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facenet", description="FaceNet on MindSpore: tools")
    sub = parser.add_subparsers(dest="command", required=True)
    align = sub.add_parser("align", help="detect, align and crop faces of an identity-folder tree (MTCNN)")
    align.add_argument("src", help="identity folders of raw photos")
    align.add_argument("dst", help="output identity folders of aligned crops")
    align.add_argument("--size", type=int, default=112, help="crop size in pixels (default 112)")
    align.add_argument("--margin", type=float, default=0.0, help="extra context around the face, e.g. 0.2")
    align.add_argument("--pick", choices=("largest", "central"), default="largest", help="face to keep per image")
    align.add_argument("--workers", type=int, default=2, help="parallel processes")
    align.add_argument("--min-confidence", type=float, default=0.9, help="detector score to accept a face")
    align.set_defaults(run=_align)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
