"""FaceNet's semi-hard negatives (Schroff et al. 2015), with TensorFlow Addons' fallback."""

from mindspore import ops

from facenet.mining.base import BIG, Miner, one_negative_mask


class SemiHardMiner(Miner):
    """For every positive pair (a, p): the closest negative that is farther than p, i.e. d(a,p) < d(a,n); with a
    margin m it lies inside the semi-hard band d(a,p) < d(a,n) < d(a,p) + m whenever the band holds any negative
    (else the triplet is already satisfied and contributes no loss). When every negative is closer than p, the
    farthest negative is taken (the least hard of the hard ones), as `tfa.losses.triplet_semihard_loss` does.
    First index on ties."""

    one_negative = True

    def construct(self, dist, pos, neg):
        return one_negative_mask(*self.negatives(dist, pos, neg))

    def negatives(self, dist, pos, neg):
        b = dist.shape[0]
        d_an = dist.expand_dims(1)  # (a, 1, n)
        farther = neg.expand_dims(1) * (d_an > dist.expand_dims(2))  # (a, p, n)
        semi = ops.argmin(d_an + BIG * (1.0 - farther), axis=2)  # (a, p)
        easiest = ops.argmax(dist * neg - BIG * (1.0 - neg), dim=1)  # (a,)
        has_semi = farther.max(axis=2) > 0
        index = ops.where(has_semi, semi, ops.broadcast_to(easiest.reshape(-1, 1), (b, b)).astype(semi.dtype))
        has_neg = neg.max(axis=1).reshape(-1, 1)  # an anchor without negatives (one-identity batch) mines nothing
        return index, pos * has_neg
