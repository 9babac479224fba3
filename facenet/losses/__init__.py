"""Losses on embeddings: each maps (embeddings, labels) to (loss, telemetry) and names its telemetry.

Triplet loss (the default) compares images with images through a miner; the classification losses (softmax,
ArcFace, CosFace, combined margin) compare them with class centres of their own (`facenet.losses.classifier`)."""

from facenet.losses.arcface import ArcFaceLoss
from facenet.losses.base import EmbeddingLoss
from facenet.losses.classifier import ClassifierLoss
from facenet.losses.combined import CombinedMarginLoss
from facenet.losses.cosface import CosFaceLoss
from facenet.losses.softmax import SoftmaxLoss
from facenet.losses.triplet import TripletLoss

__all__ = [
    "EmbeddingLoss",
    "ClassifierLoss",
    "TripletLoss",
    "SoftmaxLoss",
    "ArcFaceLoss",
    "CosFaceLoss",
    "CombinedMarginLoss",
]
