"""The frozen-graph reader against protobuf bytes written by hand from TensorFlow's field numbers."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from facenet.errors import DataError
from facenet.models.tf_graph import attr_value, constants, read_graph


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: bytes | int, wire: int = 2) -> bytes:
    key = _varint(number << 3 | wire)
    if wire == 0:
        return key + _varint(value)
    if wire == 5:
        return key + value
    return key + _varint(len(value)) + value


def _tensor(shape: list[int], content: bytes | None = None, floats: list[float] | None = None, dtype: int = 1) -> bytes:
    dims = b"".join(_field(2, _field(1, d, wire=0)) for d in shape)
    body = _field(1, dtype, wire=0) + _field(2, dims)
    if content is not None:
        body += _field(4, content)
    if floats is not None:
        body += _field(5, struct.pack(f"<{len(floats)}f", *floats))  # packed repeated float_val
    return body


def _node(name: str, op: str, inputs: list[str] = (), attrs: dict[str, bytes] | None = None) -> bytes:
    body = _field(1, name.encode()) + _field(2, op.encode())
    body += b"".join(_field(3, i.encode()) for i in inputs)
    for key, value in (attrs or {}).items():
        body += _field(5, _field(1, key.encode()) + _field(2, value))
    return _field(1, body)


def test_reads_nodes_constants_and_attributes(tmp_path):
    weights = np.arange(24, dtype=np.float32).reshape(2, 3, 1, 4)
    graph = (
        _node(
            "w", "Const", attrs={"value": _field(8, _tensor([2, 3, 1, 4], weights.tobytes())), "dtype": _field(6, 1, 0)}
        )
        + _node("scale", "Const", attrs={"value": _field(8, _tensor([], floats=[0.17]))})
        + _node("ones", "Const", attrs={"value": _field(8, _tensor([3], floats=[1.0]))})  # one value, broadcast
        + _node("ids", "Const", attrs={"value": _field(8, _tensor([2], np.array([7, -1], "<i4").tobytes(), dtype=3))})
        + _node(
            "conv",
            "Conv2D",
            ["input:0", "w"],
            {"padding": _field(2, b"VALID"), "strides": _field(1, _field(3, _varint(1) + _varint(2)))},
        )
        + _node(
            "bn",
            "FusedBatchNorm",
            ["conv"],
            {"epsilon": _field(4, struct.pack("<f", 1e-3), wire=5), "is_training": _field(5, 0, wire=0)},
        )
    )
    path = tmp_path / "g.pb"
    path.write_bytes(graph)
    nodes = read_graph(path)
    assert list(nodes) == ["w", "scale", "ones", "ids", "conv", "bn"]
    assert nodes["conv"].op == "Conv2D" and nodes["conv"].inputs == ["input:0", "w"]
    assert attr_value(nodes["conv"].attr["padding"]) == "VALID" and attr_value(nodes["conv"].attr["strides"]) == [1, 2]
    assert (
        attr_value(nodes["bn"].attr["epsilon"]) == pytest.approx(1e-3)
        and attr_value(nodes["bn"].attr["is_training"]) is False
    )
    values = constants(nodes)
    assert set(values) == {"w", "scale", "ones", "ids"}
    assert np.array_equal(values["w"], weights) and values["w"].dtype == np.float32
    assert values["scale"].shape == () and float(values["scale"]) == pytest.approx(0.17)
    assert np.array_equal(values["ones"], [1.0, 1.0, 1.0]) and np.array_equal(values["ids"], [7, -1])


@pytest.mark.parametrize("content", [b"", b"\x0a\xff\xff", b"not a graph at all \xff\xff\xff\xff"])
def test_what_is_not_a_graph_is_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.pb"
    path.write_bytes(content)
    with pytest.raises(DataError, match="bad.pb"):
        read_graph(path)
    with pytest.raises(DataError, match="cannot read TensorFlow graph"):
        read_graph(tmp_path / "missing.pb")
