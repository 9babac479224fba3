"""FaceNet's semi-hard negatives (Schroff et al. 2015), with TensorFlow Addons' fallback."""

from mindspore import ops

from facenet.mining.base import BIG, OneNegativeMiner


class SemiHardMiner(OneNegativeMiner):
    """For every positive pair (a, p): the closest negative that is farther than p, i.e. d(a,p) < d(a,n); with a
    margin m it lies inside the semi-hard band d(a,p) < d(a,n) < d(a,p) + m whenever the band holds any negative
    (else the triplet is already satisfied and contributes no loss). When every negative is closer than p, the
    farthest negative is taken (the least hard of the hard ones), as `tfa.losses.triplet_semihard_loss` does.
    First index on ties. Positives are the batch's; with a memory the negatives are sought among the stored
    embeddings too. One (B, R) search per listed positive, not an (a, p, n) array."""

    def negatives(self, negative_dist, d_ap, listed):
        easiest = ops.argmax(ops.select(negative_dist < BIG, negative_dist, ops.full_like(negative_dist, -1.0)), dim=1)
        chosen = []
        for j in range(d_ap.shape[1]):
            farther = ops.select(negative_dist > d_ap[:, j : j + 1], negative_dist, ops.full_like(negative_dist, BIG))
            semi = ops.argmin(farther, axis=1)
            found = ops.gather_elements(farther, 1, semi.reshape(-1, 1)).reshape(-1) < BIG
            chosen.append(ops.select(found, semi, easiest))
        return ops.stack(chosen, axis=1)
