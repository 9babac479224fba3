#!/usr/bin/env bash
# Set up .venv (once, or again when pyproject.toml changes) and run: train [hydra overrides...] | test [pytest args...]
# (`test` alone runs the suite without the tests marked slow)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version}"'
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[dev]"
    touch "$stamp"
fi
what=${1:-}
shift || true
case "$what" in
    train) exec .venv/bin/python run.py "$@" ;;
    # no arguments: the default suite, one pytest-xdist worker per core up to 4, each test file in one worker (its
    # module fixtures built once; about 8 minutes on 2 cores); the `slow` tests run in CI (.ci/run) or with
    # `test -m slow` (serially: msrun and the sweeps take ports and cores of their own)
    test)
        if [ $# -eq 0 ]; then
            workers=$(.venv/bin/python -c 'import os; print(max(1, min(4, len(os.sched_getaffinity(0)))))')
            set -- -m "not slow" -n "$workers" --dist loadfile
        fi
        exec .venv/bin/python -m pytest "$@" ;;
    *) echo "usage: $0 train [overrides...] | test [pytest args...]" >&2; exit 2 ;;
esac
