"""MobileFaceNet (Chen et al., 2018): inverted-residual backbone for 112x112 faces, about 1M parameters.

Returns the 512-channel 7x7 map (at 112x112); pair it with `head=gdc` for the paper's global depthwise conv head.
"""

from __future__ import annotations

from mindspore import nn

from facenet.errors import ConfigError

# (expansion t, output channels c, repeats n, first stride s), as in the paper's Table 1
SETTINGS = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


def _conv(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Cell:
    layers = [
        nn.Conv2d(cin, cout, kernel, stride, pad_mode="pad", padding=kernel // 2, group=groups, has_bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.PReLU(cout))
    return nn.SequentialCell(layers)


class InvertedResidual(nn.Cell):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        mid = cin * expansion
        self.body = nn.SequentialCell(
            [_conv(cin, mid), _conv(mid, mid, 3, stride, groups=mid), _conv(mid, cout, act=False)]
        )
        self.residual = stride == 1 and cin == cout

    def construct(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileFaceNet(nn.Cell):
    def __init__(self, width: int, out_channels: int):
        super().__init__()
        if width < 8 or out_channels < 8:
            raise ConfigError(f"mobilefacenet: width and out_channels must be >= 8, got {width}, {out_channels}")
        layers = [_conv(3, width, 3, 2), _conv(width, width, 3, 1, groups=width)]
        cin = width
        for t, c, n, s in SETTINGS:
            c = c * width // 64
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(_conv(cin, out_channels))
        self.body = nn.SequentialCell(layers)
        self.out_channels = out_channels

    def feature_size(self, image_size: int) -> tuple[int, int]:
        s = image_size
        for _ in range(4):  # stem and three strided bottlenecks: 3x3/2 convs with padding 1
            s = (s - 1) // 2 + 1
        if s < 1:
            raise ConfigError(f"input {image_size}x{image_size} is too small for MobileFaceNet")
        return s, s

    def construct(self, x):
        return self.body(x)
