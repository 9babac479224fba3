"""Embedding extraction options: flip test-time augmentation; mixed-precision settings."""

from __future__ import annotations

import cv2
import mindspore as ms
import numpy as np
import pytest

from facenet.data.images import EvalTransform
from facenet.data.sources import ImageFiles
from facenet.errors import ConfigError
from facenet.evaluation.verify import embed_images
from facenet.models.build import build_network
from facenet.runtime import mixed_precision


@pytest.fixture(scope="module")
def net_and_images(compose_cfg, tmp_path_factory):
    cfg = compose_cfg("preprocess.image_size=32")
    ms.set_seed(3)
    net = build_network(cfg.backbone, cfg.head, 32)
    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        if i == 0:
            img = np.concatenate([img[:, :16], img[:, :16][:, ::-1]], axis=1)  # mirror-symmetric image
        cv2.imwrite(str(folder / f"{i}.png"), img)
        paths.append(str(folder / f"{i}.png"))
    return net, paths


def test_flip_tta_sums_image_and_mirror(net_and_images):
    net, paths = net_and_images
    tf = EvalTransform(32)
    plain = embed_images(net, ImageFiles(paths), tf, batch_size=4)
    tta = embed_images(net, ImageFiles(paths), tf, batch_size=4, flip_tta=True)
    net.set_train(False)
    x = np.stack([tf(cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB)) for p in paths])
    mirrored = net(ms.Tensor(np.ascontiguousarray(x[..., ::-1]))).asnumpy()
    expected = plain + mirrored
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(tta, expected, atol=1e-5)
    assert np.allclose(tta[0], plain[0], atol=1e-5)  # a symmetric face is its own mirror
    assert not np.allclose(tta[1:], plain[1:], atol=1e-3)


def test_mixed_precision_levels(net_and_images):
    net, _ = net_and_images
    assert mixed_precision(net, "O0", "CPU") is net
    with pytest.raises(ConfigError, match="needs a GPU or Ascend"):
        mixed_precision(net, "O2", "CPU")
    with pytest.raises(ConfigError, match="must be one of"):
        mixed_precision(net, "O5", "GPU")
