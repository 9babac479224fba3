"""Framework-independent metrics (numpy only)."""

from facenet.metrics.clustering import adjusted_rand_index, purity
from facenet.metrics.verification import VerificationReport, verification_report

__all__ = ["VerificationReport", "adjusted_rand_index", "purity", "verification_report"]
