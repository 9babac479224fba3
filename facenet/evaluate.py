"""Score any model's pair scores with this project's verification protocol.

    python -m facenet.evaluate scores=FILE [higher_is_closer=false] [n_folds=10] [far=0.001,0.0001] [out=DIR]

FILE is a CSV with a score column (`distance`, `score` or `similarity`) and a label column (`issame`, `same` or
`label`: 1/0, true/false), or an NPZ with arrays `distances` (or `scores`) and `issame`. Rows are pairs in protocol
order (LFW `pairs.txt` order gives the official folds). Prints the report and writes `report.json` and `roc.png`
into `out` (default: beside FILE, as FILE.report.json / FILE.roc.png).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from facenet.errors import DataError, UserError
from facenet.metrics import VerificationReport, verification_report

SCORE_COLUMNS = ("distance", "score", "similarity", "distances", "scores")
LABEL_COLUMNS = ("issame", "same", "label", "is_same")
TRUE = {"1", "true", "yes", "same", "1.0"}
FALSE = {"0", "false", "no", "different", "diff", "0.0"}


def _labels(values) -> np.ndarray:
    text = pd.Series(values).astype(str).str.strip().str.lower()
    bad = ~text.isin(TRUE | FALSE)
    if bad.any():
        raise DataError(f"labels must be 1/0 or true/false; {int(bad.sum())} rows are not, e.g. {text[bad].iloc[0]!r}")
    return text.isin(TRUE).to_numpy()


def load_scores(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(scores, issame) from a CSV or NPZ file (see the module docstring)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"scores file {str(path)!r} does not exist")
    if path.suffix.lower() == ".npz":
        data = np.load(path)
        key = next((k for k in ("distances", "scores", "distance", "score") if k in data), None)
        if key is None or "issame" not in data:
            raise DataError(f"{path} needs arrays 'distances' (or 'scores') and 'issame'; it has {sorted(data)}")
        return np.asarray(data[key], dtype=np.float64), _labels(data["issame"])
    try:
        frame = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path} as CSV: {err}") from None
    columns = {c.lower().strip(): c for c in frame.columns}
    score = next((columns[c] for c in SCORE_COLUMNS if c in columns), None)
    label = next((columns[c] for c in LABEL_COLUMNS if c in columns), None)
    if score is None or label is None:
        raise DataError(f"{path} needs a score column ({', '.join(SCORE_COLUMNS)}) and a label column "
                        f"({', '.join(LABEL_COLUMNS)}); it has {list(frame.columns)}")  # fmt: skip
    scores = pd.to_numeric(frame[score], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(scores).any():
        raise DataError(f"{path}: {int(np.isnan(scores).sum())} rows have no numeric {score}")
    return scores, _labels(frame[label])


def _parse(argv: list[str]) -> dict[str, str]:
    args = {}
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in ("scores", "higher_is_closer", "n_folds", "far", "out"):
            raise UserError(f"unexpected argument {item!r}; usage: {__doc__.strip().splitlines()[2].strip()}")
        args[key] = value
    if "scores" not in args:
        raise UserError("scores=FILE is required")
    return args


def main(argv: list[str] | None = None) -> VerificationReport:
    """Entry point; returns the report (printing it and writing report.json / roc.png)."""
    try:
        args = _parse(sys.argv[1:] if argv is None else argv)
        scores, issame = load_scores(args["scores"])
        higher = args.get("higher_is_closer", "false").lower() in ("1", "true", "yes")
        far = tuple(float(f) for f in args.get("far", "0.001").split(","))
        try:
            report = verification_report(scores, issame, int(args.get("n_folds", 10)), far, higher_is_closer=higher)
        except ValueError as err:
            raise DataError(str(err)) from None
    except UserError as err:
        raise SystemExit(f"error: {err}") from None
    from facenet.plots import roc_plot

    src = Path(args["scores"])
    out = Path(args["out"]) if "out" in args else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    json_path = out / "report.json" if out else src.with_name(src.name + ".report.json")
    roc_path = out / "roc.png" if out else src.with_name(src.name + ".roc.png")
    json_path.write_text(json.dumps(report.to_dict(), indent=1))
    roc_plot(report, roc_path, title=f"ROC: {src.name}")
    print(report.table())
    print(f"report: {json_path}\nROC: {roc_path}")
    return report


if __name__ == "__main__":
    main()
