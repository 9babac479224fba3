"""Verification protocols from config: where the pairs come from; `facenet.evaluation.report` scores them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from facenet.data.binsets import read_bin
from facenet.data.pairs import PairSet, read_pairs
from facenet.data.synthetic import generate_eval
from facenet.errors import ConfigError, DataError
from facenet.evaluation.base import Protocol
from facenet.evaluation.report import MEAN, evaluate_sets

log = logging.getLogger(__name__)


class VerificationProtocol(Protocol):
    """Pairs to score, the batch size to embed them with and the FAR targets to report VAL at."""

    def __init__(self, far_targets: Sequence[float], max_pairs: int | None, **kw):
        super().__init__(**kw)
        if not all(0 < f < 1 for f in far_targets):
            raise ConfigError(f"eval.far_targets must lie in (0, 1), got {list(far_targets)}")
        self.far_targets = tuple(float(f) for f in far_targets)
        if max_pairs is not None and max_pairs < 2:
            raise ConfigError(f"eval.max_pairs must be >= 2 or null, got {max_pairs}")
        self.max_pairs = max_pairs

    def prepare(self, workers: int = 2) -> dict[str, PairSet]:
        return self.load_sets(workers)

    def describe(self, data: dict[str, PairSet]) -> str:
        n = self.size(data)
        skipped = sum(p.skipped for p in data.values())
        return (
            f"{n} verification pairs"
            + (f" in {len(data)} sets" if list(data) != [""] else "")
            + (f" ({skipped} pairs skipped: images missing, eval.missing=skip)" if self.missing == "skip" else "")
        )

    def size(self, data: dict[str, PairSet]) -> int:
        return sum(len(p) for p in data.values())

    def evaluate(self, net, data, transform, workers, tracker, step, out_dir, prefix="eval") -> dict[str, float]:
        return evaluate_sets(net, data, self, transform, workers, tracker, step, out_dir, prefix)

    def load(self, workers: int = 2) -> PairSet:
        """The protocol's pairs, limited to `max_pairs` (said in the log and recorded as eval/pairs) if set."""
        return self.limited(self._load(workers))

    def limited(self, pairs: PairSet, name: str = "") -> PairSet:
        if self.max_pairs is None or len(pairs) <= self.max_pairs:
            return pairs
        limited = pairs.limit(self.max_pairs)
        log.warning(
            "eval.max_pairs=%d: evaluating %d of the %d pairs%s (the first same and different pairs of each "
            "of %d folds); remove it for the full protocol",
            self.max_pairs,
            len(limited),
            len(pairs),
            f" of {name}" if name else "",
            limited.n_folds,
        )
        return limited

    def _load(self, workers: int) -> PairSet:
        raise NotImplementedError

    def load_sets(self, workers: int = 2) -> dict[str, PairSet]:
        """The protocol's pair sets by name: one unnamed set (`""`), or a benchmark suite's named sets."""
        return {"": self.load(workers)}

    def primary(self, names: Sequence[str]) -> str:
        """The set whose accuracy is the run's `accuracy` (what run.py returns, what picks `best.ckpt`): the only
        one here; a suite's choice of its named sets, or "mean"."""
        return names[0]


class LfwPairs(VerificationProtocol):
    """A `pairs.txt` (LFW format) over an identity-folder tree; `missing="skip"` leaves out the pairs whose images
    are not there (counted; the others keep their folds)."""

    def __init__(self, root: str, pairs: str, **kw):
        super().__init__(**kw)
        self.root, self.pairs = root, pairs

    def _load(self, workers: int) -> PairSet:
        return read_pairs(self.pairs, self.root, self.missing, "eval.missing")


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
        return read_pairs(root / "pairs.txt", root, self.missing, "eval.missing")


class BinPairs(VerificationProtocol):
    """An InsightFace `.bin` verification set (lfw.bin, cfp_fp.bin, agedb_30.bin, ...): 10 consecutive folds."""

    def __init__(self, path: str, **kw):
        super().__init__(**kw)
        self.path = path

    def _load(self, workers: int) -> PairSet:
        return read_bin(self.path)


# InsightFace's verification sets, in the order papers tabulate them
KNOWN_BENCHMARKS = ("lfw", "cfp_fp", "cfp_ff", "agedb_30", "calfw", "cplfw", "vgg2_fp")


class Benchmarks(VerificationProtocol):
    """Every `.bin` set of a folder (or those named in `sets`), each scored on its own, reported side by side.

    `primary`: the set whose accuracy is the run's `accuracy`; null: lfw if present, else the mean over the sets;
    "mean": the mean."""

    def __init__(self, dir: str, sets: Sequence[str] | None, primary: str | None, **kw):
        super().__init__(**kw)
        self.dir, self.sets, self.primary_name = Path(dir).expanduser(), sets, primary

    def files(self) -> dict[str, Path]:
        """The sets to score, by name: known benchmarks in the usual order, then any other `.bin`, by name."""
        if not self.dir.is_dir():
            raise DataError(f"eval.dir={str(self.dir)!r} does not exist or is not a folder")
        found = {p.stem: p for p in self.dir.glob("*.bin") if p.is_file()}
        if self.sets is not None and not self.sets:
            raise ConfigError("eval.sets=[] names no benchmark: list some, or null for every .bin in eval.dir")
        if self.sets is not None:
            missing = [name for name in self.sets if name not in found]
            if missing:
                raise DataError(
                    f"eval.sets names {missing}, not found in {self.dir} as <name>.bin (it has: "
                    f"{', '.join(sorted(found)) or 'no .bin file'})"
                )
            return {name: found[name] for name in self.sets}
        if not found:
            raise DataError(
                f"no .bin verification set in {self.dir} (InsightFace's lfw.bin, cfp_fp.bin, "
                "agedb_30.bin, ...; facenet pack-pairs makes one from a pairs.txt)"
            )
        rank = {name: i for i, name in enumerate(KNOWN_BENCHMARKS)}
        return {name: found[name] for name in sorted(found, key=lambda n: (rank.get(n, len(rank)), n))}

    def load_sets(self, workers: int = 2) -> dict[str, PairSet]:
        files = self.files()
        self.primary(list(files))  # a primary naming no set is refused before anything is read
        return {name: self.limited(read_bin(path), name) for name, path in files.items()}

    def _load(self, workers: int) -> PairSet:
        raise ConfigError("eval=benchmarks holds several pair sets: read them with load_sets()")

    def primary(self, names: Sequence[str]) -> str:
        if self.primary_name is None:
            return "lfw" if "lfw" in names else MEAN
        if self.primary_name not in (*names, MEAN):
            raise ConfigError(
                f"eval.primary={self.primary_name}: no such set in {self.dir} (it has {', '.join(names)}; or {MEAN!r})"
            )
        return self.primary_name
