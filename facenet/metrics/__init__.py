"""Framework-independent metrics (numpy only)."""

from facenet.metrics.verification import VerificationReport, verification_report

__all__ = ["VerificationReport", "verification_report"]
