"""Shared fixtures: MindSpore started once, configs composed through Hydra's compose API, tiny data in tmp dirs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from facenet.config.schema import register

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def runtime(tmp_path_factory):
    """MindSpore on the CPU; the model cache (`pretrained:` conversions) in a session folder, for subprocesses too."""
    import os

    from facenet.runtime import init_runtime

    os.environ["FACENET_CACHE"] = str(tmp_path_factory.mktemp("facenet-cache"))
    init_runtime("CPU", 0, "GRAPH")


@pytest.fixture
def pynative():
    """The test runs in PYNATIVE mode, op by op: small math checks without a graph compilation each (0.4 s instead
    of 3 s); GRAPH mode again afterwards. The compiled path is checked beside them."""
    import mindspore as ms

    ms.set_context(mode=ms.PYNATIVE_MODE)
    yield
    ms.set_context(mode=ms.GRAPH_MODE)


@pytest.fixture(scope="session")
def compose_cfg(tmp_path_factory):
    """compose_cfg(*overrides) -> DictConfig of conf/config.yaml with output and data dirs in a session tmp dir."""
    register()
    base = tmp_path_factory.mktemp("facenet")

    def make(*overrides: str, with_dirs: bool = True):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            extra = [f"output_dir={base / 'outputs'}", f"data_dir={base / 'data'}"] if with_dirs else []
            return compose(config_name="config", overrides=[*extra, *overrides])

    return make


def shared_data(name: str) -> Path:
    """Path of a real face set in ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real face data {path} is absent (tests read it from ../shared/data, never from the repo)")
    return path


def write_faces(root: Path, counts: dict[str, int], ext: str = "png", grey: bool = False, size=(20, 18)) -> Path:
    """An identity-folder tree of random images: `root/<name>/<name>_0001.<ext>`, counts[name] per identity."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.integers(0, 255, size if grey else (*size, 3), dtype=np.uint8)
            cv2.imwrite(str(root / name / f"{name}_{i + 1:04d}.{ext}"), img)
    return root


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for test servers and msrun)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_checkpoint(compose_cfg, folder: Path) -> Path:
    """`folder/tiny.ckpt` and its sidecar: a randomly initialised smoke network, as training writes it."""
    from facenet.models.io import model_spec, save_model
    from facenet.training.setup import build_model

    cfg = compose_cfg("experiment=smoke")
    ckpt = Path(folder) / "tiny.ckpt"
    save_model(build_model(cfg), ckpt, model_spec(cfg))
    return ckpt
