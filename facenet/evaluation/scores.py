"""Any model's pair scores through this project's verification protocol (`facenet score FILE`).

FILE is a CSV with a score column (`distance`, `score` or `similarity`) and a label column (`issame`, `same` or
`label`: 1/0, true/false), or an NPZ with arrays `distances` (or `scores`) and `issame`. Rows are pairs in protocol
order (LFW `pairs.txt` order gives the official folds).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facenet.errors import DataError
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
        raise DataError(
            f"{path} needs a score column ({', '.join(SCORE_COLUMNS)}) and a label column "
            f"({', '.join(LABEL_COLUMNS)}); it has {list(frame.columns)}"
        )
    scores = pd.to_numeric(frame[score], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(scores).any():
        raise DataError(f"{path}: {int(np.isnan(scores).sum())} rows have no numeric {score}")
    return scores, _labels(frame[label])


def score_file(
    path: str | Path,
    higher_is_closer: bool = False,
    n_folds: int = 10,
    far_targets: Sequence[float] = (1e-3,),
    out: str | Path | None = None,
) -> tuple[VerificationReport, Path, Path]:
    """The verification report of a scores file, written as `report.json` and `roc.png` into `out` (default:
    beside the file, as FILE.report.json / FILE.roc.png); returns (report, JSON path, ROC path)."""
    from facenet.evaluation.figures import roc_plot

    scores, issame = load_scores(path)
    try:
        report = verification_report(scores, issame, n_folds, tuple(far_targets), higher_is_closer=higher_is_closer)
    except ValueError as err:
        raise DataError(str(err)) from None
    src = Path(path)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
    json_path = Path(out) / "report.json" if out else src.with_name(src.name + ".report.json")
    roc_path = Path(out) / "roc.png" if out else src.with_name(src.name + ".roc.png")
    json_path.write_text(json.dumps(report.to_dict(), indent=1))
    roc_plot(report, roc_path, title=f"ROC: {src.name}")
    return report, json_path, roc_path
