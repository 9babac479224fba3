"""A reader for frozen TensorFlow graphs (`GraphDef` protobuf files), enough to take their weights out: nodes with
their op, inputs and attributes, and `Const` tensors as numpy arrays. No TensorFlow, no protobuf schema: the
protobuf wire format is read directly (varints, length-delimited fields, fixed 32/64-bit values).

Field numbers are TensorFlow's (`graph.proto`, `node_def.proto`, `attr_value.proto`, `tensor.proto`,
`tensor_shape.proto`, `types.proto`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facenet.errors import DataError

_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 9: np.int64, 10: np.bool_}  # DataType enum


class _Truncated(ValueError):
    pass


def _varint(buf: bytes | memoryview, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(buf):
            raise _Truncated("varint runs past the end")
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of each field of a protobuf message: an int for varints, the raw bytes for
    length-delimited and fixed-width fields."""
    buf = memoryview(buf)
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, i = buf[i : i + width], i + width
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i : i + size], i + size
        else:
            raise _Truncated(f"wire type {wire} (groups) is not used by GraphDef")
        if i > len(buf):
            raise _Truncated("a field runs past the end")
        yield number, wire, value


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attr: dict[str, memoryview] = field(default_factory=dict)  # AttrValue messages, decoded on demand


def _node(buf: memoryview) -> Node:
    node = Node("", "")
    for number, _, value in fields(buf):
        if number == 1:
            node.name = bytes(value).decode()
        elif number == 2:
            node.op = bytes(value).decode()
        elif number == 3:
            node.inputs.append(bytes(value).decode())
        elif number == 5:  # map<string, AttrValue> entry: key = 1, value = 2
            entry = dict((n, v) for n, _, v in fields(value))
            node.attr[bytes(entry.get(1, b"")).decode()] = entry.get(2, memoryview(b""))
    return node


def read_graph(path: str | Path) -> dict[str, Node]:
    """The nodes of a frozen GraphDef file, by name."""
    try:
        data = Path(path).read_bytes()
        nodes = [_node(value) for number, _, value in fields(data) if number == 1]
    except OSError as err:
        raise DataError(f"cannot read TensorFlow graph {path}: {err.strerror or err}") from None
    except (_Truncated, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not a TensorFlow GraphDef file ({err})") from None
    if not nodes:
        raise DataError(f"{path} holds no graph nodes: not a frozen TensorFlow graph")
    return {n.name: n for n in nodes}


def attr_value(buf: memoryview) -> object:
    """An AttrValue: a string, int, float, bool, list of ints, or (tensor) numpy array."""
    for number, _, value in fields(buf):
        if number == 2:
            return bytes(value).decode()
        if number == 3:
            return value
        if number == 4:
            return struct.unpack("<f", bytes(value))[0]
        if number == 5:
            return bool(value)
        if number == 8:
            return tensor(value)
        if number == 1:  # ListValue: i = 3 (packed or not)
            return [v for n, w, raw in fields(value) if n == 3 for v in _ints(w, raw)]
    return None


def _ints(wire: int, raw) -> list[int]:
    if wire == 0:
        return [raw]
    out, i, buf = [], 0, bytes(raw)
    while i < len(buf):
        v, i = _varint(buf, i)
        out.append(v)
    return out


def tensor(buf: memoryview) -> np.ndarray:
    """A TensorProto as an array: `tensor_content` bytes, or repeated `float_val` / `int_val` (a single value
    broadcast over the shape, as TensorFlow does)."""
    dtype, shape, content, values = 1, [], None, []
    for number, wire, value in fields(buf):
        if number == 1:
            dtype = value
        elif number == 2:
            shape = [next((v for n, _, v in fields(dim) if n == 1), 0) for n, _, dim in fields(value) if n == 2]
        elif number == 4:
            content = bytes(value)
        elif number == 5:  # float_val
            values += list(np.frombuffer(bytes(value), "<f4")) if wire == 2 else [struct.unpack("<f", value)[0]]
        elif number in (7, 10):  # int_val, int64_val
            values += _ints(wire, value)
    if dtype not in _DTYPES:
        raise DataError(f"tensor of TensorFlow dtype {dtype} is not supported")
    np_type = np.dtype(_DTYPES[dtype]).newbyteorder("<")
    array = np.frombuffer(content, np_type).copy() if content is not None else np.asarray(values, np_type)
    size = int(np.prod(shape)) if shape else 1
    if array.size == 1 and size > 1:
        array = np.full(size, array[0], np_type)
    return array.astype(np_type.newbyteorder("=")).reshape(shape)


def constants(nodes: dict[str, Node]) -> dict[str, np.ndarray]:
    """Every `Const` node's value, by node name."""
    return {n.name: attr_value(n.attr["value"]) for n in nodes.values() if n.op == "Const" and "value" in n.attr}
