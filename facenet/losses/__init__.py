"""Losses on embeddings: each maps (embeddings, labels) to (loss, telemetry) and names its telemetry."""

from facenet.losses.base import EmbeddingLoss
from facenet.losses.triplet import TripletLoss

__all__ = ["EmbeddingLoss", "TripletLoss"]
