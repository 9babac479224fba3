"""`python -m facenet.evaluate` is `facenet score` (see `facenet score --help`).

The older `key=value` form still works: `scores=FILE [higher_is_closer=true] [n_folds=10] [far=0.001,0.0001]
[out=DIR]` is read as `facenet score FILE [--higher-is-closer] [--folds 10] [--far ...] [--out DIR]`.
"""

from __future__ import annotations

import sys

from facenet.cli import main

_FLAGS = {"n_folds": "--folds", "far": "--far", "out": "--out"}


def translate(argv: list[str]) -> list[str]:
    """The `facenet score` arguments for `argv`, whichever of the two forms it uses."""
    out: list[str] = []
    for item in argv:
        key, sep, value = item.partition("=")
        if sep and key == "scores":
            out.insert(0, value)
        elif sep and key == "higher_is_closer":
            out += ["--higher-is-closer"] if value.lower() in ("1", "true", "yes") else []
        elif sep and key in _FLAGS:
            out += [_FLAGS[key], value]
        else:
            out.append(item)
    return out


if __name__ == "__main__":
    sys.exit(main(["score", *translate(sys.argv[1:])]))
