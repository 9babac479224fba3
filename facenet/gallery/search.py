"""Identity-level ranking over a gallery's images. An identity's score is the score of its best image (the
nearest-neighbour rule: the highest cosine similarity between the probe and any of the identity's images), so
identities rank in the order their first image appears in the image ranking.

The index is asked for the top n images and the first k distinct identities among them are kept; a probe whose
top n holds fewer than k identities is asked again with 4n, up to the whole gallery. With an exact (flat) index
the result is therefore exactly the brute-force ranking of identities by their best image.
"""

from __future__ import annotations

import faiss
import numpy as np

from facenet.gallery import index as indexes

FIRST_ASK = 4  # images asked for per identity wanted, the first time (an HNSW search keeps at least as many)


def top_identities(
    index: faiss.Index, labels: np.ndarray, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(identity labels, scores), each (Q, k), best first, for unit `queries` (Q, D) against the gallery rows
    labelled `labels` (N,); label -1 and score NaN where fewer than k identities were found."""
    q = len(queries)
    out_labels = np.full((q, k), -1, np.int64)
    out_scores = np.full((q, k), np.nan, np.float32)
    total = index.ntotal
    want = min(k, len(np.unique(labels)))
    pending = np.arange(q)
    n = min(total, FIRST_ASK * k)
    while pending.size and want:
        scores, ids = indexes.search(index, queries[pending], n)
        retry = []
        for row, probe in enumerate(pending):
            valid = ids[row] >= 0
            found_labels = labels[ids[row][valid]]
            _, first = np.unique(found_labels, return_index=True)
            first = np.sort(first)[:want]
            if len(first) < want and n < total:
                retry.append(probe)
                continue
            out_labels[probe, : len(first)] = found_labels[first]
            out_scores[probe, : len(first)] = scores[row][valid][first]
        pending = np.asarray(retry, np.int64)
        n = min(total, 4 * n)
    return out_labels, out_scores
