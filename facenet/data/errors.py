"""Re-export: data errors are user errors."""

from facenet.errors import DataError

__all__ = ["DataError"]
