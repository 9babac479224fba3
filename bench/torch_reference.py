"""The same embedding networks in PyTorch (eager, channels_last), for side-by-side throughput only.

Built from the same backbone config as `facenet.models.resnet.ResNet` (v1.5 blocks, stem kernel/stride/pool,
global average pooling, linear to the embedding, L2 normalisation), trained with a batch-all triplet loss and Adam.
PyTorch is an optional, benchmark-only dependency (`pip install -e .[bench]`); nothing in `facenet/` imports it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class _Basic(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(cin, width, 3, stride), _conv_bn(width, width, 3, relu=False))
        self.short = _conv_bn(cin, width, 1, stride, relu=False) if stride != 1 or cin != width else nn.Identity()

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * 4
        self.body = nn.Sequential(
            _conv_bn(cin, width, 1), _conv_bn(width, width, 3, stride), _conv_bn(width, cout, 1, relu=False)
        )
        self.short = _conv_bn(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


class EmbeddingResNet(nn.Module):
    def __init__(self, backbone: Mapping, embedding_size: int):
        super().__init__()
        block = _Basic if backbone["block"] == "basic" else _Bottleneck
        width = backbone["base_width"]
        stem = [_conv_bn(3, width, backbone["stem_kernel"], backbone["stem_stride"])]
        if backbone["stem_pool"]:
            stem.append(nn.MaxPool2d(3, 2, 1))
        layers, cin = [], width
        for i, n in enumerate(backbone["layers"]):
            w = width * 2**i
            for j in range(n):
                layers.append(block(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w * block.expansion
        self.features = nn.Sequential(*stem, *layers)
        self.fc = nn.Linear(cin, embedding_size)

    def forward(self, x):
        x = self.features(x).mean((2, 3))
        return nn.functional.normalize(self.fc(x), dim=1)


def batch_all_triplet_loss(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    d = torch.cdist(emb, emb)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    valid = (same & ~eye)[:, :, None] & (~same)[:, None, :]
    hinge = torch.relu(d[:, :, None] - d[:, None, :] + margin) * valid
    return hinge.sum() / (hinge > 0).sum().clamp(min=1)


def train_step(net: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, margin: float):
    opt.zero_grad(set_to_none=True)
    loss = batch_all_triplet_loss(net(x), y, margin)
    loss.backward()
    opt.step()
    return loss
