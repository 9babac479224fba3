"""ResNet backbones (v1.5: stride on the 3x3 conv) that work at any input size (global pooling in the head)."""

from __future__ import annotations

from collections.abc import Sequence

from mindspore import nn

from facenet.errors import ConfigError


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True) -> nn.SequentialCell:
    layers = [
        nn.Conv2d(cin, cout, kernel, stride=stride, pad_mode="pad", padding=kernel // 2, has_bias=False),
        nn.BatchNorm2d(cout, momentum=0.9),
    ]
    if relu:
        layers.append(nn.ReLU())
    return nn.SequentialCell(layers)


class BasicBlock(nn.Cell):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * self.expansion
        self.body = nn.SequentialCell([_conv_bn(cin, width, 3, stride), _conv_bn(width, cout, 3, relu=False)])
        self.short = _conv_bn(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU()

    def construct(self, x):
        return self.relu(self.body(x) + self.short(x))


class Bottleneck(nn.Cell):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * self.expansion
        self.body = nn.SequentialCell(
            [_conv_bn(cin, width, 1), _conv_bn(width, width, 3, stride), _conv_bn(width, cout, 1, relu=False)]
        )
        self.short = _conv_bn(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU()

    def construct(self, x):
        return self.relu(self.body(x) + self.short(x))


_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Cell):
    """Stem, four stages of residual blocks; returns the last feature map (N, out_channels, h, w).

    `stem_kernel`/`stem_stride`/`stem_pool` choose between the ImageNet stem (7, 2, max-pool: /4) and a light
    stem for small face crops (3, 1 or 2, no pool).
    """

    def __init__(
        self, block: str, layers: Sequence[int], base_width: int, stem_kernel: int, stem_stride: int, stem_pool: bool
    ):
        super().__init__()
        if block not in _BLOCKS:
            raise ConfigError(f"backbone.block must be one of {sorted(_BLOCKS)}, got {block!r}")
        if len(layers) != 4 or min(layers) < 1:
            raise ConfigError(f"backbone.layers needs four positive block counts, got {list(layers)}")
        cls = _BLOCKS[block]
        stem = [_conv_bn(3, base_width, stem_kernel, stem_stride)]
        if stem_pool:
            stem.append(nn.MaxPool2d(3, 2, pad_mode="same"))
        blocks, cin = [], base_width
        for stage, count in enumerate(layers):
            width = base_width * 2**stage
            for i in range(count):
                blocks.append(cls(cin, width, 2 if (i == 0 and stage > 0) else 1))
                cin = width * cls.expansion
        self.stem = nn.SequentialCell(stem)
        self.stages = nn.SequentialCell(blocks)
        self.out_channels = cin
        self._stem = (stem_kernel, stem_stride, stem_pool)

    def feature_size(self, image_size: int) -> tuple[int, int]:
        """Spatial size of the output map for a square input (conv arithmetic of the stem and three stride-2
        stages)."""
        kernel, stride, pool = self._stem
        s = (image_size + 2 * (kernel // 2) - kernel) // stride + 1
        if pool:
            s = -(-s // 2)  # max-pool 3x3/2, "same" padding
        for _ in range(3):
            s = (s - 1) // 2 + 1  # 3x3/2 conv, padding 1
        if s < 1:
            raise ConfigError(f"input {image_size}x{image_size} is too small for this ResNet")
        return s, s

    def construct(self, x):
        return self.stages(self.stem(x))
