"""`facenet openset-protocol DIR -o FOLDER`: seeded open-set identification trials of an identity-folder tree,
written as plain files (`eval=openset eval.protocol=FOLDER` reads them back; docs/identification.md)."""

from __future__ import annotations

import argparse

NAME = "openset-protocol"
HELP = "write seeded open-set identification trials of an identity-folder tree"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """DIR, -o FOLDER, and how the trials are made (the defaults of conf/eval/openset.yaml)."""
    parser.add_argument("root", help="identity-folder tree: DIR/<name>/<image>")
    parser.add_argument("-o", "--output", required=True, help="folder for trial_NN.csv and protocol.json")
    parser.add_argument("--trials", type=int, default=10, help="how many seeded trials (default 10)")
    parser.add_argument(
        "--enrolled",
        type=float,
        default=0.5,
        help="people enrolled per trial: a fraction of those with more than --gallery-per-person images, or a "
        "count (default 0.5)",
    )
    parser.add_argument("--gallery-per-person", type=int, default=1, help="gallery images per person (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="the trials' seed (default 0)")


def run(args: argparse.Namespace) -> int:
    """Make the trials, write them, print the counts and the fingerprint."""
    from facenet.data.openset import make_trials, write_protocol

    trials = make_trials(args.root, args.trials, args.enrolled, args.gallery_per_person, args.seed)
    out = write_protocol(trials, args.output)
    c = trials.counts()
    print(
        f"{c['trials']} trials written to {out}: {c['enrolled']:.0f} enrolled people, {c['gallery']:.0f} gallery "
        f"images, {c['genuine']:.0f} genuine and {c['impostor']:.0f} impostor probes per trial (fewest impostors: "
        f"{c['min_impostor']}); fingerprint {trials.fingerprint()}"
    )
    return 0
