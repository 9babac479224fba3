"""An exported model file (`.mindir` or `.onnx`) with its model card (`<file>.json`, written by task=export), run
by the runtime that file needs: MindSpore's GraphCell for MindIR, onnxruntime for ONNX.

A `ModelFile` is what `task=eval ckpt=FILE` scores and what `facenet.inference.Embedder` embeds with: a callable
from a float32 NCHW batch of any length to its (B, D) embeddings (a static-batch file is fed in padded chunks of
its batch), with the card's preprocessing, input size and output norm, and `describe()`: which file (sha256) and
which runtime produced the numbers, as reports and the tracker record them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facenet.errors import ConfigError, first_line
from facenet.files import sha256

SUFFIXES = {".mindir": "MINDIR", ".onnx": "ONNX"}


def card_path(path: Path) -> Path:
    """The model card beside an exported file: `<file>.json`."""
    return path.with_name(path.name + ".json")


def is_model_file(path: str | Path) -> bool:
    """A `.mindir` or `.onnx` path (whether or not it exists)."""
    return Path(str(path)).suffix.lower() in SUFFIXES


class ModelFile:
    """An exported model and its card. `run` / `__call__`: embeddings of a preprocessed batch."""

    def __init__(self, path: Path, card: dict, runtime: str, batch_size: int | None, forward):
        self.path, self.card, self.runtime, self.batch_size = path, card, runtime, batch_size
        self._forward = forward
        self.preprocess: dict = card["preprocess"]
        self.image_size = int(self.preprocess["image_size"])
        self.embedding_size = card["output"].get("embedding_size")
        self.norm = float(card["output"].get("norm", 1.0))
        self._sha256: str | None = None

    @classmethod
    def open(cls, path: str | Path) -> ModelFile:
        """Load `path` with the runtime its suffix needs; refused in one line without its card, with a card of
        another export (other input shape), or without the runtime installed."""
        path = Path(path).expanduser()
        suffix = path.suffix.lower()
        if suffix not in SUFFIXES:
            raise ConfigError(f"{path.name}: an exported model is a .mindir or .onnx file")
        if not path.is_file():
            raise ConfigError(f"model file {str(path)!r} does not exist")
        card_file = card_path(path)
        if not card_file.is_file():
            raise ConfigError(
                f"{path} has no model card {card_file.name} (written by task=export beside the file): its "
                "preprocessing and input size are unknown, so it cannot be fed as it was trained"
            )
        try:
            card = json.loads(card_file.read_text())
            batch = card["input"]["batch_size"]
            size = int(card["preprocess"]["image_size"])
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{card_file} is not a model card written by task=export ({err!r})") from None
        batch = None if batch == "dynamic" else int(batch)
        if suffix == ".onnx":
            runtime, forward, shape = _onnx(path)
            expected = [batch or -1, 3, size, size]
            if [d if isinstance(d, int) else -1 for d in shape] != expected:
                raise ConfigError(
                    f"{path.name} takes inputs of shape {shape} but its model card {card_file.name} says "
                    f"{expected}: the card belongs to another export"
                )
        else:
            runtime, forward = _mindir(path)
        return cls(path, card, runtime, batch, forward)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(B, D) embeddings of a float32 NCHW batch of any B (a static-batch file: padded chunks of its batch)."""
        x = np.ascontiguousarray(x, np.float32)
        b = self.batch_size
        if not b:
            return np.asarray(self._forward(x))
        out = []
        for i in range(0, len(x), b):
            chunk = x[i : i + b]
            n = len(chunk)
            if n < b:
                chunk = np.concatenate([chunk, np.zeros((b - n, *chunk.shape[1:]), np.float32)])
            out.append(np.asarray(self._forward(chunk))[:n])
        return np.concatenate(out) if out else np.zeros((0, self.embedding_size or 0), np.float32)

    run = __call__

    def check_input_size(self, size: int) -> None:
        """An exported graph has the input size it was exported with: any other is refused."""
        if size != self.image_size:
            raise ConfigError(
                f"{self.path.name} was exported for {self.image_size}x{self.image_size} inputs: an exported graph "
                f"cannot be evaluated at {size}x{size} (eval.override_image_size is for checkpoints)"
            )

    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = sha256(self.path)
        return self._sha256

    def describe(self) -> dict:
        """Which file and runtime produce this model's embeddings (recorded in reports and the tracker)."""
        return {
            "file": str(self.path),
            "format": SUFFIXES[self.path.suffix.lower()],
            "sha256": self.sha256(),
            "runtime": self.runtime,
            "batch_size": self.batch_size or "dynamic",
            "source_checkpoint": self.card.get("source_checkpoint"),
        }


def _onnx(path: Path):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("ONNX models run with onnxruntime: pip install onnxruntime") from None
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own (Fail, InvalidProtobuf, ...) for a file it cannot read
        raise ConfigError(f"onnxruntime cannot load {path}: {first_line(err)}") from None
    name = session.get_inputs()[0].name
    return f"onnxruntime {ort.__version__}", lambda x: session.run(None, {name: x})[0], session.get_inputs()[0].shape


def _mindir(path: Path):
    import mindspore as ms

    from facenet.runtime import ensure_runtime

    ensure_runtime()
    try:
        graph = ms.nn.GraphCell(ms.load(str(path)))
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"MindSpore cannot load {path}: {first_line(err)}") from None
    return f"mindspore {ms.__version__} (GraphCell)", lambda x: graph(ms.Tensor(x)).asnumpy()
