"""Every backbone at its default input size, the heads' options, the reference recipe's head and loss."""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest

from facenet.losses import TripletLoss
from facenet.mining import RandomTripletsMiner
from facenet.models.build import build_network
from facenet.models.embedding import count_parameters
from tests.conftest import CONF

# backbone -> (default input size, head, output map channels and size, parameters in millions with that head)
DEFAULTS = {
    "resnet_tiny": (64, "pool_linear", (128, 4), 0.32),
    "resnet18": (112, "pool_linear", (512, 4), 11.24),
    "resnet34": (112, "pool_linear", (512, 4), 21.35),
    "resnet50": (224, "reference", (2048, 7), 36.35),
    "resnet101": (112, "pool_linear", (2048, 4), 42.76),
    "mobilefacenet": (112, "gdc", (512, 7), 1.00),
    "inception_resnet_v1": (160, "pool_linear", (1792, 3), 22.79),
}


def test_every_backbone_is_listed():
    assert sorted(p.stem for p in (CONF / "backbone").glob("*.yaml")) == sorted(DEFAULTS)


@pytest.mark.parametrize("group", ["backbone", "head"])
def test_a_sidecar_may_name_the_class_of_every_option_and_no_other(group):
    """The classes a checkpoint's sidecar may name are written in the code (an installed package has no conf/):
    every option's class, and nothing else."""
    from omegaconf import OmegaConf

    from facenet.models.io import MODEL_CLASSES, model_classes

    targets = {OmegaConf.load(p)._target_ for p in (CONF / group).glob("*.yaml")}
    assert set(MODEL_CLASSES[group]) == targets == set(model_classes(group))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_backbone_forward_shape_at_default_size(compose_cfg, name):
    size, head, (channels, spatial), millions = DEFAULTS[name]
    cfg = compose_cfg(f"backbone={name}", f"head={head}", f"preprocess.image_size={size}")
    net = build_network(cfg.backbone, cfg.head, size)
    net.set_train(False)
    x = ms.Tensor(np.random.default_rng(0).uniform(-1, 1, (2, 3, size, size)).astype(np.float32))
    fmap = net.backbone(x)
    assert fmap.shape == (2, channels, spatial, spatial)
    assert net.backbone.feature_size(size) == (spatial, spatial)
    emb = net(x).asnumpy()
    assert emb.shape == (2, 128)
    assert np.allclose(np.linalg.norm(emb, axis=1), cfg.head.scale, atol=1e-4)
    assert count_parameters(net) / 1e6 == pytest.approx(millions, abs=0.01)


def test_reference_head_gives_norm_10_embeddings_from_the_flattened_map(compose_cfg):
    cfg = compose_cfg("backbone=resnet_tiny", "head=reference", "preprocess.image_size=64", "init_std=0.01")
    net = build_network(cfg.backbone, cfg.head, 64, cfg.init_std)
    assert net.head.proj.weight.shape == (128, 128 * 4 * 4)  # Dense(C*h*w, 128), not a pooled vector
    w = net.head.proj.weight.asnumpy()
    assert abs(w.std() - 0.01) < 0.001 and abs(w.mean()) < 0.001  # N(0, 0.01) init
    x = ms.Tensor(np.random.default_rng(1).uniform(-1, 1, (3, 3, 64, 64)).astype(np.float32))
    assert np.allclose(np.linalg.norm(net(x).asnumpy(), axis=1), 10.0, atol=1e-3)


@pytest.mark.parametrize("option", ["dropout=0.3", "batch_norm=true", "pool=gdc"])
def test_head_options_train_mode_shapes(compose_cfg, option):
    cfg = compose_cfg(f"head.{option}", "preprocess.image_size=32")
    net = build_network(cfg.backbone, cfg.head, 32)
    net.set_train(True)
    out = net(ms.Tensor(np.random.default_rng(2).uniform(-1, 1, (4, 3, 32, 32)).astype(np.float32))).asnumpy()
    assert out.shape == (4, 128) and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)


def test_reference_loss_equals_hand_computation():
    """Non-squared L2, margin 0.5, mean over active triplets, on a [anchors | positives | negatives] batch."""
    a = np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]], np.float32)
    p = np.array([[0.3, 0.4], [1.0, 2.0], [5.0, 5.1]], np.float32)  # d_ap = 0.5, 1.0, 0.1
    n = np.array([[0.6, 0.8], [1.0, 1.2], [8.0, 9.0]], np.float32)  # d_an = 1.0, 0.2, 5.0
    # hinge = max(d_ap - d_an + 0.5, 0) = 0.0, 1.3, 0.0 -> one active triplet -> loss 1.3
    y = np.array([0, 1, 2, 0, 1, 2, 3, 4, 5], np.int32)
    loss, tel = TripletLoss(RandomTripletsMiner(), margin=0.5)(ms.Tensor(np.r_[a, p, n]), ms.Tensor(y))
    assert float(loss.asnumpy()) == pytest.approx(1.3, abs=1e-5)
    assert tel.asnumpy()[0] == pytest.approx(1 / 3)
