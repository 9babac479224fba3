"""A generated face-like identity dataset, so the default run needs no download.

Each identity is a vector of appearance parameters (face shape, skin tone, eye, brow, nose and mouth geometry and
colours, hair, marks); each image renders it under nuisance variation (pose, scale, shift, expression, lighting,
background, occlusion, blur, noise). Everything is drawn from seeded generators, so a given parameter set always
produces the same files. The set is written once as identity folders plus an LFW-format `pairs.txt` over
identities disjoint from training, and cached under the data directory keyed by a hash of its parameters.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from facenet.errors import ConfigError
from facenet.interrupts import pool_map, worker_pool

log = logging.getLogger(__name__)

_SKIN = np.array([[205, 225, 250], [170, 200, 235], [130, 170, 215], [95, 135, 185], [60, 95, 140], [45, 70, 105]])
_HAIR = np.array([[20, 20, 25], [30, 50, 80], [40, 80, 140], [90, 150, 210], [180, 180, 185], [30, 30, 120]])
_VERSION = 1  # bump when rendering changes, so caches are rebuilt


def identity_params(rng: np.random.Generator) -> dict:
    """Draw one identity's appearance."""
    skin = _SKIN[rng.integers(len(_SKIN))] + rng.normal(0, 12, 3)
    hair = _HAIR[rng.integers(len(_HAIR))] + rng.normal(0, 10, 3)
    return {
        "face_w": rng.uniform(0.25, 0.36),
        "face_h": rng.uniform(0.34, 0.45),
        "jaw": rng.uniform(0.75, 1.05),
        "skin": np.clip(skin, 0, 255),
        "eye_y": rng.uniform(-0.10, 0.02),
        "eye_dx": rng.uniform(0.09, 0.15),
        "eye_r": rng.uniform(0.025, 0.05),
        "eye_ratio": rng.uniform(0.45, 0.9),
        "iris": np.clip(rng.uniform(0, 1, 3) * np.array([160, 140, 90]) + 20, 0, 255),
        "brow_dy": rng.uniform(0.04, 0.08),
        "brow_w": rng.uniform(0.04, 0.08),
        "brow_t": rng.uniform(0.010, 0.030),
        "brow_tilt": rng.uniform(-0.25, 0.25),
        "nose_len": rng.uniform(0.06, 0.15),
        "nose_w": rng.uniform(0.025, 0.06),
        "mouth_y": rng.uniform(0.16, 0.26),
        "mouth_w": rng.uniform(0.06, 0.13),
        "mouth_t": rng.uniform(0.010, 0.030),
        "lip": np.clip(np.array([90, 80, 170]) + rng.normal(0, 25, 3), 0, 255),
        "hair": np.clip(hair, 0, 255),
        "hair_style": int(rng.integers(4)),
        "hairline": rng.uniform(0.55, 0.9),
        "beard": bool(rng.random() < 0.25),
        "mole": (rng.uniform(-0.18, 0.18), rng.uniform(-0.05, 0.25)) if rng.random() < 0.5 else None,
        "ear": rng.uniform(0.03, 0.06),
    }


def _pt(cx: float, cy: float, s: float, x: float, y: float) -> tuple[int, int]:
    return int(round(cx + x * s)), int(round(cy + y * s))


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = np.linspace(0, 1, n)[:, None, None]
    img = (c0 * (1 - t) + c1 * t).astype(np.float32)
    img = np.repeat(img, n, axis=1) if rng.random() < 0.5 else np.repeat(img, n, axis=1).transpose(1, 0, 2).copy()
    for _ in range(rng.integers(0, 6)):
        color = tuple(float(v) for v in rng.uniform(0, 255, 3))
        p = tuple(int(v) for v in rng.integers(0, n, 2))
        cv2.circle(img, p, int(rng.integers(n // 16, n // 3)), color, -1, cv2.LINE_AA)
    return img


def render(p: dict, rng: np.random.Generator, size: int) -> np.ndarray:
    """Render identity `p` once, with fresh nuisance variation from `rng`; returns a BGR uint8 image."""
    n = size * 2  # draw at 2x and downsample, for anti-aliased small images
    img = _background(rng, n)
    s = n * rng.uniform(0.85, 1.05)
    cx, cy = n / 2, n / 2 + 0.03 * n
    yaw = rng.uniform(-0.05, 0.05)  # features slide sideways as the head turns
    skin = tuple(float(v) for v in p["skin"])
    hair = tuple(float(v) for v in p["hair"])
    fw, fh = p["face_w"] * s, p["face_h"] * s
    if p["hair_style"] in (1, 3):  # long hair behind the face
        cv2.ellipse(img, (int(cx), int(cy + 0.05 * s)), (int(fw * 1.25), int(fh * 1.15)), 0, 180, 360, hair, -1)
        cv2.rectangle(
            img, _pt(cx, cy, s, -p["face_w"] * 1.25, -0.05), _pt(cx, cy, s, p["face_w"] * 1.25, 0.3), hair, -1
        )
    for side in (-1, 1):
        cv2.circle(img, _pt(cx, cy, s, side * p["face_w"], 0.0), int(p["ear"] * s), skin, -1, cv2.LINE_AA)
    cv2.ellipse(img, (int(cx), int(cy)), (int(fw), int(fh)), 0, 180, 360, skin, -1, cv2.LINE_AA)
    cv2.ellipse(img, (int(cx), int(cy)), (int(fw * p["jaw"]), int(fh)), 0, 0, 180, skin, -1, cv2.LINE_AA)
    cv2.rectangle(
        img,
        (int(cx - fw * min(p["jaw"], 1.0)), int(cy - 2)),
        (int(cx + fw * min(p["jaw"], 1.0)), int(cy + 2)),
        skin,
        -1,
    )
    if p["hair_style"] != 2:  # not bald: a cap of hair down to the hairline
        cv2.ellipse(
            img,
            (int(cx), int(cy - fh * (1 - p["hairline"]) * 0.6)),
            (int(fw * 1.05), int(fh * p["hairline"])),
            0,
            180,
            360,
            hair,
            -1,
            cv2.LINE_AA,
        )
    if p["beard"]:
        cv2.ellipse(
            img,
            (int(cx), int(cy + 0.12 * s)),
            (int(fw * 0.8), int(fh * 0.75)),
            0,
            10,
            170,
            hair,
            int(0.05 * s),
            cv2.LINE_AA,
        )
    fx = cx + yaw * s
    openness = rng.uniform(0.5, 1.0)
    for side in (-1, 1):
        ex, ey = fx + side * p["eye_dx"] * s, cy + p["eye_y"] * s
        r = p["eye_r"] * s
        cv2.ellipse(
            img,
            (int(ex), int(ey)),
            (int(r), max(1, int(r * p["eye_ratio"] * openness))),
            0,
            0,
            360,
            (245, 245, 245),
            -1,
            cv2.LINE_AA,
        )
        cv2.circle(img, (int(ex), int(ey)), max(1, int(r * 0.55)), tuple(float(v) for v in p["iris"]), -1, cv2.LINE_AA)
        cv2.circle(img, (int(ex), int(ey)), max(1, int(r * 0.22)), (10, 10, 10), -1, cv2.LINE_AA)
        by = ey - p["brow_dy"] * s
        tilt = side * p["brow_tilt"] * p["brow_w"] * s
        cv2.line(
            img,
            (int(ex - p["brow_w"] * s), int(by + tilt)),
            (int(ex + p["brow_w"] * s), int(by - tilt)),
            hair,
            max(1, int(p["brow_t"] * s)),
            cv2.LINE_AA,
        )
    nose_top, nose_bot = cy + (p["eye_y"] + 0.03) * s, cy + (p["eye_y"] + 0.03 + p["nose_len"]) * s
    shade = tuple(float(v) * 0.75 for v in p["skin"])
    cv2.line(
        img,
        (int(fx), int(nose_top)),
        (int(fx - p["nose_w"] * s * 0.5), int(nose_bot)),
        shade,
        max(1, int(0.012 * s)),
        cv2.LINE_AA,
    )
    cv2.line(
        img,
        (int(fx - p["nose_w"] * s * 0.5), int(nose_bot)),
        (int(fx + p["nose_w"] * s * 0.5), int(nose_bot)),
        shade,
        max(1, int(0.012 * s)),
        cv2.LINE_AA,
    )
    smile = rng.uniform(-0.6, 1.0)  # expression
    my, mw = cy + p["mouth_y"] * s, p["mouth_w"] * s
    start, end = (0, 180) if smile >= 0 else (180, 360)
    cv2.ellipse(
        img,
        (int(fx), int(my)),
        (int(mw), max(1, int(abs(smile) * 0.04 * s))),
        0,
        start,
        end,
        tuple(float(v) for v in p["lip"]),
        max(1, int(p["mouth_t"] * s)),
        cv2.LINE_AA,
    )
    if p["mole"] is not None:
        cv2.circle(img, _pt(fx, cy, s, *p["mole"]), max(1, int(0.012 * s)), (30, 40, 60), -1, cv2.LINE_AA)
    occlusion = rng.random()
    if occlusion < 0.12:  # sunglasses
        for side in (-1, 1):
            cv2.circle(
                img,
                (int(fx + side * p["eye_dx"] * s), int(cy + p["eye_y"] * s)),
                int(0.065 * s),
                (25, 25, 25),
                -1,
                cv2.LINE_AA,
            )
    elif occlusion < 0.22:  # a random occluder (hand, scarf, microphone)
        color = tuple(float(v) for v in rng.uniform(0, 255, 3))
        x0, y0 = rng.uniform(0.2, 0.7, 2) * n
        cv2.rectangle(
            img,
            (int(x0), int(y0)),
            (int(x0 + rng.uniform(0.1, 0.3) * n), int(y0 + rng.uniform(0.1, 0.3) * n)),
            color,
            -1,
        )
    elif occlusion < 0.32:  # hat
        color = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cv2.ellipse(
            img, (int(cx), int(cy - fh * 0.55)), (int(fw * 1.3), int(fh * 0.55)), 0, 180, 360, color, -1, cv2.LINE_AA
        )
    # pose, scale and shift as one similarity transform
    angle = rng.uniform(-15, 15)
    scale = rng.uniform(0.9, 1.1)
    m = cv2.getRotationMatrix2D((n / 2, n / 2), angle, scale)
    m[:, 2] += rng.uniform(-0.06, 0.06, 2) * n
    img = cv2.warpAffine(img, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # lighting: directional gradient, brightness, contrast, colour cast
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:n, 0:n] / n - 0.5
    light = 1.0 + rng.uniform(0, 0.5) * (np.cos(theta) * xx + np.sin(theta) * yy)
    img = img * light[..., None] * rng.uniform(0.7, 1.25) * rng.uniform(0.88, 1.12, 3)
    img = (img - img.mean()) * rng.uniform(0.75, 1.2) + img.mean()
    img = cv2.resize(np.clip(img, 0, 255).astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    sigma = rng.uniform(0, 1.0)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = img + rng.normal(0, rng.uniform(0, 8), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _render_identity(args: tuple[int, int, int, int, int, str, str]) -> None:
    seed, stream, ident, count, size, folder, name = args
    rng = np.random.default_rng([seed, stream, ident])
    params = identity_params(rng)
    out = Path(folder) / name
    out.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(out / f"{name}_{i + 1:04d}.png"), render(params, rng, size))


def _cached(data_dir: str | os.PathLike, kind: str, params: dict, build) -> Path:
    """Folder `<data_dir>/synthetic-<kind>-<hash of params>`, built by `build(tmp_folder)` once, atomically."""
    key = hashlib.sha1(json.dumps({**params, "kind": kind, "version": _VERSION}, sort_keys=True).encode()).hexdigest()
    root = Path(data_dir).expanduser().resolve() / f"synthetic-{kind}-{key[:10]}"
    if (root / "manifest.json").exists():
        return root
    tmp = root.with_name(f"{root.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log.info("generating synthetic %s set into %s", kind, root)
    try:
        build(tmp)
        (tmp / "manifest.json").write_text(json.dumps({**params, "kind": kind, "version": _VERSION}, indent=2))
    except BaseException:  # interrupted or failed: no half-made set is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        tmp.rename(root)
    except OSError:  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _render_all(jobs: list[tuple], workers: int, desc: str) -> None:
    with worker_pool(workers) as pool:
        list(tqdm(pool_map(pool, _render_identity, jobs), total=len(jobs), desc=desc, unit="id"))


def generate_train(
    data_dir: str | os.PathLike,
    identities: int,
    images_per_identity: int,
    image_size: int,
    seed: int = 0,
    workers: int = 2,
) -> Path:
    """Identity folders `id_00000/id_00000_0001.png`, ... for training; generated once, then read from cache."""
    if identities < 2 or images_per_identity < 2:
        raise ConfigError(
            f"synthetic training needs >= 2 identities with >= 2 images, got {identities} x {images_per_identity}"
        )
    params = dict(identities=identities, images_per_identity=images_per_identity, image_size=image_size, seed=seed)

    def build(tmp: Path) -> None:
        _render_all(
            [(seed, 0, i, images_per_identity, image_size, str(tmp), f"id_{i:05d}") for i in range(identities)],
            workers,
            "synthetic train identities",
        )

    return _cached(data_dir, "train", params, build)


def generate_eval(
    data_dir: str | os.PathLike,
    identities_per_fold: int,
    images_per_identity: int,
    pairs_per_fold: int,
    image_size: int,
    seed: int = 0,
    workers: int = 2,
) -> Path:
    """Held-out identities (a separate random stream, so disjoint from training) and `pairs.txt` over them:
    10 identity-disjoint folds of `pairs_per_fold` same and as many different pairs, LFW View 2 format."""
    max_same = identities_per_fold * images_per_identity * (images_per_identity - 1) // 2
    max_diff = identities_per_fold * (identities_per_fold - 1) // 2 * images_per_identity**2
    if identities_per_fold < 2 or images_per_identity < 2 or pairs_per_fold > min(max_same, max_diff):
        raise ConfigError(
            f"synthetic eval set too small for {pairs_per_fold} same and different pairs per fold: "
            f"{identities_per_fold} identities x {images_per_identity} images per fold"
        )
    params = dict(
        identities_per_fold=identities_per_fold,
        images_per_identity=images_per_identity,
        pairs_per_fold=pairs_per_fold,
        image_size=image_size,
        seed=seed,
    )
    names = [[f"eval_{f:02d}_{i:03d}" for i in range(identities_per_fold)] for f in range(10)]

    def build(tmp: Path) -> None:
        _render_all(
            [
                (seed, 1, f * 100_000 + i, images_per_identity, image_size, str(tmp), name)
                for f, fold in enumerate(names)
                for i, name in enumerate(fold)
            ],
            workers,
            "synthetic eval identities",
        )
        _write_pairs(names, images_per_identity, pairs_per_fold, seed, tmp / "pairs.txt")

    return _cached(data_dir, "eval", params, build)


def _write_pairs(names: list[list[str]], k: int, n: int, seed: int, path: Path) -> None:
    """LFW View 2 layout: header `10 n`, then per fold n same pairs followed by n different pairs."""
    rng = np.random.default_rng([seed, 2])
    lines = [f"{len(names)}\t{n}"]
    for fold in names:
        same: set[tuple[str, int, int]] = set()
        while len(same) < n:
            i, j = sorted(int(v) + 1 for v in rng.choice(k, 2, replace=False))
            same.add((fold[rng.integers(len(fold))], i, j))
        lines += [f"{a}\t{i}\t{j}" for a, i, j in sorted(same)]
        diff: set[tuple[str, int, str, int]] = set()
        while len(diff) < n:
            a, b = sorted(int(v) for v in rng.choice(len(fold), 2, replace=False))
            diff.add((fold[a], int(rng.integers(k)) + 1, fold[b], int(rng.integers(k)) + 1))
        lines += [f"{a}\t{i}\t{b}\t{j}" for a, i, b, j in sorted(diff)]
    path.write_text("\n".join(lines) + "\n")
