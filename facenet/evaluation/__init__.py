"""Verification evaluation: pair protocols, embedding extraction, reports."""
