"""Verification protocols from config: where the pairs come from, plus how to score them."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from facenet.data.pairs import PairSet, read_pairs
from facenet.data.synthetic import generate_eval
from facenet.errors import ConfigError

log = logging.getLogger(__name__)


class VerificationProtocol:
    """Pairs to score, the batch size to embed them with and the FAR targets to report VAL at."""

    def __init__(self, batch_size: int = 128, far_targets: Sequence[float] = (1e-3,), flip_tta: bool = False,
                 center_crop: int | None = None, max_pairs: int | None = None,
                 override_image_size: int | None = None):  # fmt: skip
        if batch_size < 1:
            raise ConfigError(f"eval.batch_size must be >= 1, got {batch_size}")
        if not all(0 < f < 1 for f in far_targets):
            raise ConfigError(f"eval.far_targets must lie in (0, 1), got {list(far_targets)}")
        self.batch_size, self.far_targets = batch_size, tuple(float(f) for f in far_targets)
        if center_crop is not None and center_crop < 1:
            raise ConfigError(f"eval.center_crop must be >= 1 or null, got {center_crop}")
        if max_pairs is not None and max_pairs < 2:
            raise ConfigError(f"eval.max_pairs must be >= 2 or null, got {max_pairs}")
        self.flip_tta, self.center_crop, self.max_pairs = flip_tta, center_crop, max_pairs
        if override_image_size is not None and override_image_size < 8:
            raise ConfigError(f"eval.override_image_size must be >= 8 or null, got {override_image_size}")
        self.override_image_size = override_image_size

    def input_size(self, net) -> int:
        """The input size to evaluate `net` (an EmbeddingNet) at: the size it was trained at, unless
        `eval.override_image_size` deliberately says otherwise (warned about; refused if the network cannot)."""
        size, trained = self.override_image_size, net.image_size
        if size is None or size == trained:
            return trained
        net.check_input_size(size)
        log.warning("eval.override_image_size=%d: evaluating a network trained on %dx%d inputs at %dx%d; these "
                    "figures do not describe the model as trained", size, trained, trained, size, size)  # fmt: skip
        return size

    def load(self, workers: int = 2) -> PairSet:
        """The protocol's pairs, limited to `max_pairs` (said in the log and recorded as eval/pairs) if set."""
        pairs = self._load(workers)
        if self.max_pairs is not None and len(pairs) > self.max_pairs:
            limited = pairs.limit(self.max_pairs)
            log.warning("eval.max_pairs=%d: evaluating %d of the %d pairs (the first same and different pairs of "
                        "each of %d folds); remove it for the full protocol", self.max_pairs, len(limited),
                        len(pairs), limited.n_folds)  # fmt: skip
            return limited
        return pairs

    def _load(self, workers: int) -> PairSet:
        raise NotImplementedError


class LfwPairs(VerificationProtocol):
    """A `pairs.txt` (LFW format) over an identity-folder tree."""

    def __init__(self, root: str, pairs: str, **kw):
        super().__init__(**kw)
        self.root, self.pairs = root, pairs

    def _load(self, workers: int) -> PairSet:
        return read_pairs(self.pairs, self.root)


class SyntheticPairs(VerificationProtocol):
    """Generated held-out identities with their own `pairs.txt` (identities disjoint from training)."""

    def __init__(
        self,
        identities_per_fold: int,
        images_per_identity: int,
        pairs_per_fold: int,
        image_size: int,
        seed: int,
        data_dir: str,
        **kw,
    ):
        super().__init__(**kw)
        self.spec = dict(
            identities_per_fold=identities_per_fold,
            images_per_identity=images_per_identity,
            pairs_per_fold=pairs_per_fold,
            image_size=image_size,
            seed=seed,
        )
        self.data_dir = data_dir

    def _load(self, workers: int) -> PairSet:
        root = generate_eval(self.data_dir, workers=workers, **self.spec)
        return read_pairs(root / "pairs.txt", root)
