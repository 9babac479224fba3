"""Image decoding and preprocessing (OpenCV). The preprocessing spec travels with every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facenet.errors import ConfigError, DataError

# Input standardisations, by name (the name travels in every checkpoint's sidecar and model card)
NORMALIZATIONS = {
    "unit": "(x - 127.5) / 127.5",  # to [-1, 1]: this project's models and the reference recipe
    "fixed": "(x - 127.5) / 128",  # davidsandberg's 2018 models ("fixed image standardization")
    "prewhiten": "(x - mean) / max(std, 1 / sqrt(size)), per image",  # his 2017 models
}


def read_image(path: str) -> np.ndarray:
    """Decode any OpenCV-readable file (grey or colour) to an RGB uint8 HxWx3 array."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise DataError(f"cannot decode image {path!r}: {err.strerror}") from None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise DataError(f"cannot decode image {path!r} (missing, empty or corrupt file)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def normalization(value: str) -> str:
    """The name of a standardisation, from its name or its formula (sidecars written before names were used
    carry the formula)."""
    if value in NORMALIZATIONS:
        return value
    by_formula = {formula: name for name, formula in NORMALIZATIONS.items()}
    if value in by_formula:
        return by_formula[value]
    raise ConfigError(f"unknown input standardisation {value!r}: expected one of {sorted(NORMALIZATIONS)}")


def to_input(img: np.ndarray, normalize: str = "unit") -> np.ndarray:
    """HxWx3 uint8 RGB -> 3xHxW float32, standardised as `normalize` says (see NORMALIZATIONS)."""
    x = img.astype(np.float32)
    if normalize == "unit":
        x = (x - 127.5) / 127.5
    elif normalize == "fixed":
        x = (x - 127.5) / 128.0
    elif normalize == "prewhiten":
        mean, std = float(x.mean(dtype=np.float64)), float(x.std(dtype=np.float64))
        x = (x - mean) / max(std, 1.0 / np.sqrt(x.size))
    else:
        raise ConfigError(f"unknown input standardisation {normalize!r}: expected one of {sorted(NORMALIZATIONS)}")
    return x.transpose(2, 0, 1)


def resize(img: np.ndarray, size: int, interpolation: int | None = None) -> np.ndarray:
    """Resize to size x size; area interpolation when shrinking, linear when enlarging, unless given."""
    if img.shape[0] == size and img.shape[1] == size:
        return img
    if interpolation is None:
        interpolation = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interpolation)


@dataclass(frozen=True)
class EvalTransform:
    """Deterministic preprocessing: [central `center_crop` x `center_crop` box], resize to `image_size`,
    standardise (`normalize`). The crop serves unaligned LFW-style images (e.g. the central 150x150 of a 250x250 LFW
    photo)."""

    image_size: int
    center_crop: int | None = None
    normalize: str = "unit"

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if self.center_crop:
            h, w = img.shape[:2]
            c = min(self.center_crop, h, w)
            y, x = (h - c) // 2, (w - c) // 2
            img = img[y : y + c, x : x + c]
        return to_input(resize(img, self.image_size), self.normalize)


_INTERPOLATIONS = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA, cv2.INTER_LANCZOS4)


@dataclass(frozen=True)
class TrainTransform:
    """Training augmentation: resize, random shift (reflect-pad then random crop), horizontal flip.

    The crop keeps the output at `image_size` and the face at the scale evaluation sees.
    """

    image_size: int
    hflip: bool
    max_shift: float
    random_interpolation: bool
    normalize: str = "unit"

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        interp = _INTERPOLATIONS[rng.integers(len(_INTERPOLATIONS))] if self.random_interpolation else None
        img = resize(img, self.image_size, interp)
        pad = int(round(self.max_shift * self.image_size))
        if pad > 0:
            img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT)
            y, x = rng.integers(0, 2 * pad + 1, 2)
            img = img[y : y + self.image_size, x : x + self.image_size]
        if self.hflip and rng.random() < 0.5:
            img = img[:, ::-1]
        return to_input(np.ascontiguousarray(img), self.normalize)
