"""Inception-ResNet-v1 (Szegedy et al., 2016), the classic FaceNet backbone of davidsandberg/facenet.

160x160 input -> 1792 x 3 x 3 map; with `head=facenet` (dropout, 512-d, batch norm) it is davidsandberg's model.
Blocks are scaled residuals (0.17, 0.10, 0.20) as in his `inception_resnet_v1.py`: `repeats` = (A, B, C) blocks,
followed by one final unscaled, non-activated Inception-ResNet-C block. Stages, branches and concatenation order
follow his graph (scopes `Conv2d_1a_3x3` ... `Repeat/block35_k`, `Mixed_6a`, `Repeat_1/block17_k`, `Mixed_7a`,
`Repeat_2/block8_k`, `Block8`), so his weights load one to one (`facenet.models.pretrained`); the stage names
(`stem`, `block35`, `mixed_6a`, `block17`, `mixed_7a`, `block8`, `block8_last`) are what `finetune.freeze` names.
"""

from __future__ import annotations

from mindspore import nn, ops

from facenet.errors import ConfigError


def _conv(cin: int, cout: int, kernel, stride: int = 1, valid: bool = False, act: bool = True) -> nn.Cell:
    pad = "valid" if valid else "same"
    # batch norm as davidsandberg's slim arg scope: decay 0.995, epsilon 0.001
    bn = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.995)
    layers = [nn.Conv2d(cin, cout, kernel, stride, pad_mode=pad, has_bias=False), bn]
    if act:
        layers.append(nn.ReLU())
    return nn.SequentialCell(layers)


class _Block(nn.Cell):
    """x + scale * up(concat(branches(x))), then ReLU (not after the very last block)."""

    def __init__(self, branches: list[nn.Cell], mixed: int, channels: int, scale: float, relu: bool = True):
        super().__init__()
        self.branches = nn.CellList(branches)
        self.up = nn.Conv2d(mixed, channels, 1, has_bias=True)
        self.scale, self.relu = scale, relu

    def construct(self, x):
        mixed = ops.cat([b(x) for b in self.branches], axis=1)
        out = x + self.scale * self.up(mixed)
        return ops.relu(out) if self.relu else out


def block35(c: int = 256) -> _Block:
    return _Block(
        [
            _conv(c, 32, 1),
            nn.SequentialCell([_conv(c, 32, 1), _conv(32, 32, 3)]),
            nn.SequentialCell([_conv(c, 32, 1), _conv(32, 32, 3), _conv(32, 32, 3)]),
        ],
        96,
        c,
        0.17,
    )


def block17(c: int = 896) -> _Block:
    return _Block(
        [_conv(c, 128, 1), nn.SequentialCell([_conv(c, 128, 1), _conv(128, 128, (1, 7)), _conv(128, 128, (7, 1))])],
        256,
        c,
        0.10,
    )


def block8(c: int = 1792, relu: bool = True) -> _Block:
    return _Block(
        [_conv(c, 192, 1), nn.SequentialCell([_conv(c, 192, 1), _conv(192, 192, (1, 3)), _conv(192, 192, (3, 1))])],
        384,
        c,
        0.20 if relu else 1.0,
        relu,
    )


class _Concat(nn.Cell):
    def __init__(self, branches: list[nn.Cell]):
        super().__init__()
        self.branches = nn.CellList(branches)

    def construct(self, x):
        return ops.cat([b(x) for b in self.branches], axis=1)


class InceptionResNetV1(nn.Cell):
    def __init__(self, repeats: tuple[int, int, int]):
        super().__init__()
        a, b, c = repeats
        if min(repeats) < 1:
            raise ConfigError(f"inception_resnet_v1: repeats must be >= 1, got {list(repeats)}")
        self.stem = nn.SequentialCell(
            [
                _conv(3, 32, 3, 2, valid=True),
                _conv(32, 32, 3, valid=True),
                _conv(32, 64, 3),
                nn.MaxPool2d(3, 2, pad_mode="valid"),
                _conv(64, 80, 1),
                _conv(80, 192, 3, valid=True),
                _conv(192, 256, 3, 2, valid=True),
            ]
        )
        self.block35 = nn.SequentialCell([block35() for _ in range(a)])
        self.mixed_6a = _Concat(
            [
                _conv(256, 384, 3, 2, valid=True),
                nn.SequentialCell([_conv(256, 192, 1), _conv(192, 192, 3), _conv(192, 256, 3, 2, valid=True)]),
                nn.MaxPool2d(3, 2, pad_mode="valid"),
            ]
        )
        self.block17 = nn.SequentialCell([block17() for _ in range(b)])
        self.mixed_7a = _Concat(
            [
                nn.SequentialCell([_conv(896, 256, 1), _conv(256, 384, 3, 2, valid=True)]),
                nn.SequentialCell([_conv(896, 256, 1), _conv(256, 256, 3, 2, valid=True)]),
                nn.SequentialCell([_conv(896, 256, 1), _conv(256, 256, 3), _conv(256, 256, 3, 2, valid=True)]),
                nn.MaxPool2d(3, 2, pad_mode="valid"),
            ]
        )
        self.block8 = nn.SequentialCell([block8() for _ in range(c)])
        self.block8_last = block8(relu=False)
        self.out_channels = 1792

    def feature_size(self, image_size: int) -> tuple[int, int]:
        s = (image_size - 3) // 2 + 1  # conv 3x3/2 valid
        s = s - 2  # conv 3x3 valid
        s = (s - 3) // 2 + 1  # max-pool 3x3/2 valid
        s = s - 2  # conv 3x3 valid
        for _ in range(3):  # conv 3x3/2 valid, reduction A, reduction B
            s = (s - 3) // 2 + 1
        if s < 1:
            raise ConfigError(f"input {image_size}x{image_size} is too small for Inception-ResNet-v1 (>= 75)")
        return s, s

    def construct(self, x):
        x = self.block17(self.mixed_6a(self.block35(self.stem(x))))
        return self.block8_last(self.block8(self.mixed_7a(x)))
