"""Galleries that persist and scale: enrolled faces embedded once, stored with a faiss index and a manifest that
says which model and preprocessing made them (`facenet gallery build|add|remove|info`; searched by
`facenet identify --gallery` and `Embedder.identify`).

manifest.py: the manifest (fingerprint, preprocessing, checksums, refusals); index.py: the faiss index kinds (flat,
hnsw, ivf); search.py: identity ranking (an identity scores its best image); store.py: the folder (build, open, add,
remove); threshold.py: distance <-> cosine, and the threshold an open-set protocol report gives at an FPIR.
"""

from facenet.gallery.index import KINDS
from facenet.gallery.manifest import is_gallery
from facenet.gallery.store import Gallery, check_new, create
from facenet.gallery.threshold import cosine_to_distance, distance_to_cosine, from_report

__all__ = [
    "KINDS",
    "Gallery",
    "check_new",
    "cosine_to_distance",
    "create",
    "distance_to_cosine",
    "from_report",
    "is_gallery",
]
