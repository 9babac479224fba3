"""The default synthetic set must need learning: raw pixels and an untrained network score poorly on its pairs."""

from __future__ import annotations

import numpy as np
import pytest
from hydra.utils import instantiate

from facenet.data.images import EvalTransform, read_image
from facenet.evaluation.verify import evaluate_pairs
from facenet.metrics import verification_report
from facenet.models.build import build_network


@pytest.fixture(scope="module")
def default_eval(compose_cfg):
    cfg = compose_cfg()  # the default config, as `python run.py` uses it
    return cfg, instantiate(cfg.eval).load(workers=2)


@pytest.mark.slow
def test_raw_pixel_distance_scores_at_most_070(default_eval):
    cfg, pairs = default_eval
    x = np.stack([EvalTransform(cfg.preprocess.image_size)(read_image(p)).ravel() for p in pairs.paths])
    d = np.linalg.norm(x[pairs.left] - x[pairs.right], axis=1)
    acc = verification_report(d, pairs.issame).accuracy_mean
    print(f"raw-pixel L2 accuracy on default synthetic pairs: {acc:.4f}")
    assert acc <= 0.70


@pytest.mark.slow
def test_untrained_network_scores_at_most_075(default_eval):
    import mindspore as ms

    cfg, pairs = default_eval
    ms.set_seed(0)
    net = build_network(cfg.backbone, cfg.head, cfg.preprocess.image_size)
    report, _ = evaluate_pairs(net, pairs, EvalTransform(cfg.preprocess.image_size), 128, (1e-3,))
    print(f"untrained {cfg.backbone.block} network accuracy on default synthetic pairs: {report.accuracy_mean:.4f}")
    assert report.accuracy_mean <= 0.75
