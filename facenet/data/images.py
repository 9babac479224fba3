"""Image decoding and preprocessing (OpenCV). The preprocessing spec travels with every checkpoint."""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass

import cv2
import numpy as np

from facenet.errors import ConfigError, DataError

# Images whose header announces more pixels than this are refused before decoding (a decompression bomb: a small
# file that decodes to gigabytes). Set by `max_image_pixels` (run.py), `facenet --max-image-pixels`, or the
# environment variable below (which worker processes inherit).
MAX_PIXELS_ENV = "FACENET_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 200_000_000  # 200 megapixels: above any camera's photo (a 16320x12240 sensor is 199.8)


def max_pixels() -> int:
    value = os.environ.get(MAX_PIXELS_ENV, "")
    try:
        return int(float(value)) if value else DEFAULT_MAX_PIXELS
    except ValueError:
        raise ConfigError(f"{MAX_PIXELS_ENV}={value!r}: expected a number of pixels") from None


def set_max_pixels(limit: int | float) -> None:
    """The decoding limit for this process and the workers it starts."""
    if not limit or limit < 1:
        raise ConfigError(f"max_image_pixels must be >= 1, got {limit}")
    os.environ[MAX_PIXELS_ENV] = str(int(limit))


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # JPEG frame headers


def _jpeg_png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG (IHDR) or JPEG (the first start-of-frame segment), read from the bytes; None for
    other formats or a header this does not follow."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SOF:
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def header_pixels(data: np.ndarray) -> tuple[int, str] | None:
    """(pixels, "WxH") from an encoded image's header, without decoding it: PNG and JPEG read here, other formats
    by Pillow (which reads headers lazily); None if neither knows the format (OpenCV's own limit, 2^30 pixels,
    then applies)."""
    size = _jpeg_png_size(data[:65536].tobytes())
    if size is not None:
        return size[0] * size[1], f"{size[0]}x{size[1]}"
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data.tobytes())) as im:
            return im.size[0] * im.size[1], f"{im.size[0]}x{im.size[1]}"
    except Image.DecompressionBombError as err:  # above Pillow's own limit (179 MP): its message has the size
        found = re.search(r"\((\d+) pixels\)", str(err))
        return (int(found.group(1)), f"{int(found.group(1)) / 1e6:.0f} megapixels") if found else None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


# Pillow warns of images above its own limit (89 megapixels); ours is the one that applies, and it is stated
warnings.filterwarnings("ignore", message="Image size .* could be decompression bomb")

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
    return decode_image(data, repr(path), "missing, empty or corrupt file")


def decode_image(data: np.ndarray | bytes, name: str, why: str = "corrupt or not an image") -> np.ndarray:
    """Encoded image bytes (a file's, a RecordIO record's, a .bin entry's) to an RGB uint8 HxWx3 array; `name` says
    in errors which image it was. Refused from the header, before decoding, above the `max_pixels()` limit."""
    if not isinstance(data, np.ndarray):
        data = np.frombuffer(data, dtype=np.uint8)
    header = header_pixels(data) if data.size else None
    if header is not None and header[0] > (limit := max_pixels()):
        raise DataError(
            f"image {name} is {header[1]}, above the limit of {limit / 1e6:g} megapixels: refused "
            f"before decoding (a decompression bomb?); raise max_image_pixels= in run.py, "
            f"facenet --max-image-pixels, or {MAX_PIXELS_ENV} to read it"
        )
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise DataError(f"cannot decode image {name} ({why})")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


PORTABLE_FORMATS = {b"\xff\xd8": ".jpg", b"\x89P": ".png"}  # what every reader of the field's packed sets decodes


def image_format(data: bytes) -> str | None:
    """ ".jpg" or ".png" from an encoded image's first bytes; None for any other format."""
    return PORTABLE_FORMATS.get(bytes(data[:2]))


def portable_bytes(path: str) -> tuple[bytes, bool]:
    """A file's bytes for a packed set (RecordIO, `.bin`): JPEG and PNG as they are; any other format (PGM, BMP,
    ...) decoded and re-encoded as PNG, losslessly (True: re-encoded). DataError if it is not an image."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise DataError(f"cannot read image {path!r}: {err.strerror}") from None
    if image_format(data[:2].tobytes()):
        if header_pixels(data) is None:
            raise DataError(f"cannot decode image {path!r} (corrupt header)")
        return data.tobytes(), False
    return encode_png(read_image(path)), True


def encode_png(img: np.ndarray) -> bytes:
    """RGB uint8 HxWx3 as PNG bytes (lossless)."""
    return cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes()


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
