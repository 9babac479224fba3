"""Softmax cross-entropy over identities on a linear classifier, as davidsandberg's published FaceNet models were
trained, with his two optional terms:

- center loss (Wen et al. 2016), `center_weight` x mean((f - c_y)^2) over the batch's feature elements, the centres
  c (not trained by the optimiser) moved each step by c_y -= (1 - alpha) (c_y - f) for every sample (summed when a
  class appears more than once), computed with the centres from before the update: his `center_loss`;
- a prelogits norm penalty, `prelogits_norm_weight` x mean over the batch of ||(|f| + 1e-4)||_p.
"""

from __future__ import annotations

import math

import mindspore as ms
import numpy as np
from mindspore import Parameter, ops

from facenet.errors import ConfigError
from facenet.losses.classifier import ClassifierLoss

NORM_EPS = 1e-4  # davidsandberg's: tf.norm(tf.abs(prelogits) + eps, ord=p)


class SoftmaxLoss(ClassifierLoss):
    """construct(features (B, D), labels (B,)) -> (cross-entropy [+ center loss] [+ norm penalty], telemetry).

    Telemetry: the batch's classification accuracy, the cross-entropy alone, then the center loss and the
    prelogits norm where they are used, and the mean feature norm.
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        center_weight: float,
        center_alpha: float,
        prelogits_norm_weight: float,
        prelogits_norm_p: float,
        seed: int = 0,
    ):
        super().__init__(num_classes, embedding_size, seed)
        bad = []
        if center_weight < 0:
            bad.append(f"loss.center_weight={center_weight} (must be >= 0)")
        if not 0 <= center_alpha <= 1:
            bad.append(f"loss.center_alpha={center_alpha} (must be in [0, 1])")
        if prelogits_norm_weight < 0:
            bad.append(f"loss.prelogits_norm_weight={prelogits_norm_weight} (must be >= 0)")
        if prelogits_norm_p <= 0:
            bad.append(f"loss.prelogits_norm_p={prelogits_norm_p} (must be > 0)")
        if bad:
            raise ConfigError("invalid softmax loss settings: " + ", ".join(bad))
        self.center_weight, self.center_alpha = float(center_weight), float(center_alpha)
        self.norm_weight, self.norm_p = float(prelogits_norm_weight), float(prelogits_norm_p)
        limit = math.sqrt(6.0 / (num_classes + embedding_size))  # Glorot uniform, as his slim layer's default
        init = np.random.default_rng(seed).uniform(-limit, limit, (num_classes, embedding_size)).astype(np.float32)
        self.weight = Parameter(ms.Tensor(init), name="classifier")
        self.bias = Parameter(ms.Tensor(np.zeros(num_classes, np.float32)), name="classifier_bias")
        self.centers = None
        if self.center_weight > 0:
            zeros = np.zeros((num_classes, embedding_size), np.float32)
            self.centers = Parameter(ms.Tensor(zeros), name="classifier_centers", requires_grad=False)
            self.move = ops.ScatterSub()  # repeated indices accumulate, as tf.scatter_sub
        self.TELEMETRY = (
            "train_accuracy",
            "cross_entropy",
            *(("center_loss",) if self.center_weight > 0 else ()),
            *(("prelogits_norm",) if self.norm_weight > 0 else ()),
            "embedding_norm",
        )

    def construct(self, features, labels):
        labels = labels.astype(ms.int32)
        logits = ops.matmul(features, self.weight.T) + self.bias
        cross_entropy = ops.cross_entropy(logits, labels)
        loss = cross_entropy
        terms = [(ops.stop_gradient(logits).argmax(1) == labels).astype(ms.float32).mean(), cross_entropy]
        if self.centers is not None:
            own = ops.gather(self.centers, labels, 0)
            center_loss = ((features - own) ** 2).mean()
            step = ops.stop_gradient((1.0 - self.center_alpha) * (own - features))
            own = ops.depend(own, self.move(self.centers, labels, step))
            loss = loss + self.center_weight * ops.depend(center_loss, own)
            terms.append(center_loss)
        if self.norm_weight > 0:
            norm = ((ops.abs(features) + NORM_EPS) ** self.norm_p).sum(1) ** (1.0 / self.norm_p)
            prelogits_norm = norm.mean()
            loss = loss + self.norm_weight * prelogits_norm
            terms.append(prelogits_norm)
        terms.append(ops.norm(features, dim=1).mean())
        return loss, ops.stop_gradient(ops.stack(terms))
