"""The `facenet` command line, for everything that is not a Hydra run: one subcommand per module of
`facenet/commands/` (align photos, pack and unpack the field's data formats, draw triplets, score pair files,
compare and re-run runs, use a trained or published model, check the machine)."""

from __future__ import annotations

import argparse
import sys

from facenet.commands import COMMANDS
from facenet.errors import UserError
from facenet.interrupts import signal_name, signals_raise


def build_parser() -> argparse.ArgumentParser:
    """The top parser (`--max-image-pixels`) with one subparser per registered command."""
    parser = argparse.ArgumentParser(prog="facenet", description="FaceNet on MindSpore: tools")
    parser.add_argument(
        "--max-image-pixels",
        type=float,
        default=None,
        metavar="N",
        help="refuse images whose header announces more pixels, before decoding (default 2e8, or "
        "$FACENET_MAX_IMAGE_PIXELS)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command_parser = sub.add_parser(command.NAME, help=command.HELP)
        command.add_arguments(command_parser)
        command_parser.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a UserError or an interrupt is one line on stderr and exit code 1, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        with signals_raise():  # Ctrl-C / SIGTERM: one line, and no half-written output (facenet/interrupts.py)
            if args.max_image_pixels is not None:
                from facenet.data.images import set_max_pixels

                set_max_pixels(args.max_image_pixels)
            return args.run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        message = f"interrupted by {signal_name(err)}: facenet {args.command} stopped, nothing half-written kept"
        print(message, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
