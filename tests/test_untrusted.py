"""Untrusted inputs and ignored keys: overrides a task would ignore are refused; pair files cannot name paths
outside the evaluation root; a sidecar is data and builds only the project's own classes; random or truncated
checkpoints and decompression bombs are one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib

import cv2
import numpy as np
import pytest

from facenet.config.overrides import check_overrides as check_reads
from facenet.data.images import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, header_pixels, read_image, set_max_pixels
from facenet.data.pairs import read_pairs
from facenet.errors import ConfigError, DataError
from facenet.tasks import TASKS
from tests.conftest import ROOT, tiny_checkpoint, write_faces

# ---------------------------------------------------------------- keys a task would ignore


def check_overrides(task: str, overrides: list[str], network_from_config: bool = False) -> None:
    """The override check of a registered task (`network_from_config`: task=eval of a checkpoint without a
    sidecar, which builds the network from the config)."""
    reads = TASKS[task].reads
    check_reads(task, reads.with_network() if network_from_config else reads, overrides)


@pytest.mark.parametrize(
    ("task", "override", "why"),
    [
        ("eval", "backbone=resnet18", "builds the network and its preprocessing from the checkpoint's sidecar"),
        ("eval", "head.dropout=0.5", "from the checkpoint's sidecar"),
        ("eval", "embedding_size=256", "from the checkpoint's sidecar"),
        ("eval", "preprocess.normalize=prewhiten", "from the checkpoint's sidecar"),
        ("eval", "lr=0.1", "task=eval does not read lr=0.1"),
        ("eval", "also_eval.lfw.root=/x", "does not read"),
        ("export", "backbone=resnet18", "from the checkpoint's sidecar"),
        ("export", "eval.root=/data", "task=export does not read eval.root=/data"),
        ("export", "max_image_pixels=10", "does not read"),
        ("train", "export.format=ONNX", "read by task=export only"),
    ],
)
def test_an_override_the_task_ignores_is_refused(task, override, why):
    with pytest.raises(ConfigError, match=why):
        check_overrides(task, ["tracking=off", override])


def test_overrides_the_task_reads_pass():
    check_overrides(
        "eval",
        [
            "ckpt=a.ckpt",
            "eval=lfw",
            "eval.root=/x",
            "eval.flip_tta=true",
            "hardware=cpu",
            "hardware.data_workers=2",
            "tracking=off",
            "output_dir=o",
            "data_dir=d",
            "max_image_pixels=1e9",
            "preprocess.image_size=112",
            "experiment=smoke",
            "hydra.verbose=true",
            "task=eval",
        ],
    )
    check_overrides("export", ["ckpt=a.ckpt", "export.format=ONNX", "export.batch_size=4", "hardware=cpu"])
    check_overrides("train", ["backbone=resnet18", "lr=0.1", "~also_eval.lfw", "eval.root=/x", "finetune.bn=frozen"])
    # a checkpoint without a sidecar: task=eval builds the network from the config, so those keys are read
    check_overrides("eval", ["backbone=resnet18", "embedding_size=64"], network_from_config=True)
    with pytest.raises(ConfigError, match="does not read lr"):
        check_overrides("eval", ["backbone=resnet18", "lr=0.1"], network_from_config=True)


def test_run_py_refuses_an_ignored_override_in_one_line(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "run.py",
            "task=eval",
            "ckpt=nosuch.ckpt",
            "backbone=resnet18",
            "embedding_size=64",
            f"output_dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in log
    (line,) = [ln for ln in log.splitlines() if "would change nothing" in ln]
    assert "backbone=resnet18 embedding_size=64 would change nothing" in line
    assert not list(tmp_path.glob("runs/*/*/run.json"))  # refused before a run started


# ---------------------------------------------------------------- pair files


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..", "a/../../b", "a\\..\\b"])
def test_pair_names_cannot_leave_the_evaluation_root(tmp_path, name):
    root = write_faces(tmp_path / "root", {"A": 2, "B": 2})
    outside = tmp_path / "secret"
    write_faces(outside, {"x": 2})
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"A\t1\t2\n{name}\t1\tB\t1\n")
    with pytest.raises(DataError, match=r"1 pair lines name a path, not an identity folder .*line 2"):
        read_pairs(pairs, root)
    pairs.write_text("A\t1\t2\nA\t1\tB\t1\n")
    assert len(read_pairs(pairs, root)) == 2


# ---------------------------------------------------------------- sidecars are data


@pytest.fixture(scope="module")
def tiny_model(compose_cfg, tmp_path_factory):
    return tiny_checkpoint(compose_cfg, tmp_path_factory.mktemp("tiny"))


def _tampered(ckpt, tmp_path, edit) -> str:
    spec = json.loads(ckpt.with_suffix(".json").read_text())
    edit(spec)
    bad = tmp_path / "bad.ckpt"
    shutil.copy(ckpt, bad)
    bad.with_suffix(".json").write_text(json.dumps(spec))
    return str(bad)


EDITS = {
    "os.system": (
        lambda s: s["model"]["backbone"].update(_target_="os.system", command="touch CANARY"),
        "names backbone class 'os.system'",
    ),
    "through a facenet module": (
        lambda s: s["model"]["head"].update(_target_="facenet.models.io.os.system"),
        "names head class 'facenet.models.io.os.system'",
    ),
    "unknown backbone": (
        lambda s: s["model"]["backbone"].update(_target_="facenet.models.resnet.ResNet1000"),
        "not one of this project's",
    ),
    "nested target": (
        lambda s: s["model"]["backbone"].update(block={"_target_": "os.system", "_args_": ["touch CANARY"]}),
        "does not fit ResNetConf",
    ),
    "extra argument": (lambda s: s["model"]["head"].update(_args_=["x"]), "does not fit EmbeddingHeadConf"),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_a_sidecar_builds_only_the_projects_classes(tiny_model, compose_cfg, tmp_path, edit, capsys, monkeypatch):
    from facenet.app import run
    from facenet.cli import main

    monkeypatch.chdir(tmp_path)  # where a `touch CANARY` would land
    change, message = EDITS[edit]
    bad = _tampered(tiny_model, tmp_path, change)
    for task in ("eval", "export"):
        with pytest.raises(ConfigError, match=message):
            run(
                compose_cfg(
                    "experiment=smoke", f"task={task}", f"ckpt={bad}", f"output_dir={tmp_path / task}", "tracking=off"
                )
            )
    image = write_faces(tmp_path / "faces", {"a": 1})
    one = str(next(image.rglob("*.png")))
    assert main(["verify", one, one, "--model", bad]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "CANARY").exists()


@pytest.mark.parametrize("damage", ["random", "truncated", "empty"])
def test_a_damaged_checkpoint_is_a_one_line_error(tiny_model, compose_cfg, tmp_path, damage, capsys):
    from facenet.app import run
    from facenet.cli import main

    bad = tmp_path / "bad.ckpt"
    data = tiny_model.read_bytes()
    bad.write_bytes(
        {"random": np.random.default_rng(0).bytes(len(data)), "truncated": data[: len(data) // 2], "empty": b""}[damage]
    )
    shutil.copy(tiny_model.with_suffix(".json"), bad.with_suffix(".json"))
    for task in ("eval", "export"):
        with pytest.raises(ConfigError, match=f"cannot read checkpoint {bad}"):
            run(
                compose_cfg(
                    "experiment=smoke", f"task={task}", f"ckpt={bad}", f"output_dir={tmp_path / task}", "tracking=off"
                )
            )
    img = write_faces(tmp_path / "faces", {"a": 1})
    one = str(next(img.rglob("*.png")))
    assert main(["verify", one, one, "--model", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot read checkpoint {bad}") and err.count("\n") == 1


# ---------------------------------------------------------------- decompression bombs


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR announcing width x height, then one row of data: a few hundred bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * (3 * width + 1)))


def _jpeg_header_only(width: int, height: int) -> bytes:
    """SOI, a JFIF APP0 segment and a baseline SOF0 announcing width x height (and nothing decodable)."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


@pytest.fixture
def default_limit(monkeypatch):
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_a_decompression_bomb_is_refused_before_decoding(tmp_path, fmt, default_limit):
    import resource

    bomb = tmp_path / f"bomb.{fmt}"
    bomb.write_bytes((_png_header_only if fmt == "png" else _jpeg_header_only)(50000, 50000))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DataError, match=r"50000x50000, above the limit of 200 megapixels: refused before decoding"):
        read_image(str(bomb))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: nothing was decoded


def test_the_pixel_limit_is_configurable_and_stated(tmp_path, monkeypatch, default_limit, capsys):
    from facenet.cli import main

    img = tmp_path / "big.png"
    cv2.imwrite(str(img), np.zeros((1200, 1000, 3), np.uint8))
    assert read_image(str(img)).shape == (1200, 1000, 3)
    set_max_pixels(1_000_000)
    with pytest.raises(DataError, match=r"1000x1200, above the limit of 1 megapixels.*max_image_pixels="):
        read_image(str(img))
    monkeypatch.setenv(MAX_PIXELS_ENV, str(DEFAULT_MAX_PIXELS))
    assert (
        main(["--max-image-pixels", "1e5", "embed", str(img), "-o", str(tmp_path / "e.npz"), "--model", "nosuch.ckpt"])
        == 1
    )
    assert os.environ[MAX_PIXELS_ENV] == "100000"  # facenet --max-image-pixels sets it for the command
    capsys.readouterr()
    with pytest.raises(ConfigError, match="max_image_pixels must be >= 1"):
        set_max_pixels(0)


def test_header_sizes_agree_with_the_decoder(tmp_path):
    """The header reader against OpenCV's decoded shapes, for every format the index accepts."""
    rng = np.random.default_rng(0)
    cases = [
        ("a.jpg", []),
        ("b.jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        ("c.png", []),
        ("d.bmp", []),
        ("e.webp", []),
        ("f.tiff", []),
        ("g.pgm", []),
        ("h.ppm", []),
    ]
    for k, (name, params) in enumerate(cases):
        shape = (17 + 13 * k, 31 + 7 * k) + (() if name.endswith(".pgm") else (3,))
        path = tmp_path / name
        assert cv2.imwrite(str(path), rng.integers(0, 255, shape, dtype=np.uint8), params)
        pixels, text = header_pixels(np.fromfile(path, np.uint8))
        assert (pixels, text) == (shape[0] * shape[1], f"{shape[1]}x{shape[0]}"), name
    assert header_pixels(np.frombuffer(b"not an image at all", np.uint8)) is None
