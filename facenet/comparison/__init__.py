"""`facenet compare`: several runs' evaluations on one pair set, side by side (runs.py finds them, labels.py names
them by what differs, significance.py tests the differences, report.py writes and logs the table and figures)."""

from facenet.comparison.report import compare, log_comparison, tracking_uri
from facenet.comparison.runs import ComparisonError, resolve

__all__ = ["ComparisonError", "compare", "log_comparison", "resolve", "tracking_uri"]
