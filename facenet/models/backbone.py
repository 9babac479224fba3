"""The backbone contract: what the embedding head needs to know about a feature extractor."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Backbone(Protocol):
    """A MindSpore cell mapping (N, 3, S, S) images to an (N, out_channels, h, w) feature map.

    `out_channels` and `feature_size(S) -> (h, w)` let the head be built for the map before any image is seen
    (a flatten or GDC head depends on h x w); `feature_size` raises ConfigError for inputs too small for the
    network. `tests/test_models.py` checks both against a real forward pass for every `conf/backbone` option.
    """

    out_channels: int

    def feature_size(self, image_size: int) -> tuple[int, int]: ...

    def __call__(self, x): ...
