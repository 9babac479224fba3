"""Margin transforms (InsightFace's margin_loss callables): the cosines of features to class centres in, the scaled
logits out, with the own class's cosine t replaced by a harder target logit. A margin writes `target_logit(t)`:

    combined  cos(m1 * theta + m2) - m3      (InsightFace's combined margin)
    arcface   cos(theta + m)                 (additive angular margin, Deng et al. 2019)
    cosface   cos(theta) - m                 (additive cosine margin, Wang et al. 2018; no acos)

The cosines come clamped to +-COS_LIMIT (`facenet.losses.class_centres`): MindSpore's ACos gradient is
`-dout / sqrt(1 - x^2)`, infinite at +-1. Past `m1 * theta + m2 > pi` the margined cosine would rise again (a worse
angle, a larger logit); there the target falls back to `cos(theta) - mm - m3`, with the threshold
`th = cos((pi - m2) / m1)` and `mm = sin(pi - m2) * m2` of the original ArcFace code (`th = cos(pi - m)`,
`mm = sin(pi - m) * m`). `straight_through=True` is InsightFace's current variant: the margin changes the target
logit's value but its gradient is that of the plain cosine.
"""

from __future__ import annotations

import math

from mindspore import nn, ops

from facenet.errors import ConfigError


def margin_constants(m1: float, m2: float) -> tuple[float, float]:
    """(th, mm): below cos(theta) = th the margined angle passes pi and the linear fallback applies."""
    th = math.cos((math.pi - m2) / m1) if m1 > 0 else -1.0
    return th, math.sin(math.pi - m2) * m2


class Margin(nn.Cell):
    """construct(cos (B, K), onehot (B, K)) -> s * cos with each row's own-class cosine t (1 in `onehot`; a row
    without one is left as it is) replaced by `target_logit(t)`."""

    def __init__(self, s: float, straight_through: bool):
        super().__init__()
        if s <= 0:
            raise ConfigError(f"loss.s must be > 0, got {s}")
        self.s, self.straight_through = float(s), bool(straight_through)

    def target_logit(self, t):
        """The margined cosine of each sample's own class, from its plain cosine `t` (clamped)."""
        raise NotImplementedError

    def construct(self, cos, onehot):
        t = (cos * onehot).sum(1)  # the own class's cosine, on the rank that holds its centre (else 0)
        target = self.target_logit(t)
        if self.straight_through:
            target = t + ops.stop_gradient(target - t)
        return self.s * (cos + onehot * (target - t).expand_dims(1))


class CombinedMargin(Margin):
    """cos(m1 * theta + m2) - m3, with the linear fallback past pi; m1 = 1, m2 = 0 takes no angle (CosFace)."""

    def __init__(self, s: float, m1: float, m2: float, m3: float, straight_through: bool):
        super().__init__(s, straight_through)
        if not 0 < m1 <= 4 or not 0 <= m2 < math.pi / 2 or not 0 <= m3 < 1:
            raise ConfigError(
                f"loss margins out of range: m1 in (0, 4], m2 in [0, pi/2), m3 in [0, 1); got m1={m1}, m2={m2}, m3={m3}"
            )
        self.m1, self.m2, self.m3 = float(m1), float(m2), float(m3)
        self.angular = not (m1 == 1.0 and m2 == 0.0)
        self.th, self.mm = margin_constants(self.m1, self.m2)

    def target_logit(self, t):
        if not self.angular:
            return t - self.m3
        margined = ops.cos(self.m1 * ops.acos(t) + self.m2) - self.m3
        return ops.select(t > self.th, margined, t - self.mm - self.m3)


class ArcFaceMargin(Margin):
    """cos(theta + m), with the original code's linear fallback cos(theta) - mm past theta + m > pi."""

    def __init__(self, s: float, m: float, straight_through: bool):
        super().__init__(s, straight_through)
        if not 0 <= m < math.pi / 2:
            raise ConfigError(f"loss.m must be in [0, pi/2) for arcface (an angle in radians; 0.5 is usual), got {m}")
        self.m = float(m)
        self.th, self.mm = margin_constants(1.0, self.m)

    def target_logit(self, t):
        if self.m == 0:  # no margin: the plain cosine, without an acos
            return t
        return ops.select(t > self.th, ops.cos(ops.acos(t) + self.m), t - self.mm)


class CosFaceMargin(Margin):
    """cos(theta) - m: no angle, so no acos and nothing to fall back from (straight-through would change nothing)."""

    def __init__(self, s: float, m: float):
        super().__init__(s, False)
        if not 0 <= m < 1:
            raise ConfigError(f"loss.m must be in [0, 1) for cosface (taken off a cosine; 0.35 is usual), got {m}")
        self.m = float(m)

    def target_logit(self, t):
        return t - self.m
