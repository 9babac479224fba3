"""Losses on embeddings."""

from facenet.losses.triplet import TripletLoss

__all__ = ["TripletLoss"]
