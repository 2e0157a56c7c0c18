"""Frames on a worker's result pipe, and the bounds the supervisor reads them under.

A frame is an 8-byte big-endian length, then a 4-byte length of a JSON header, the header, and the raw bytes of the
tensors it names. The header holds plain data only: None, bool, int, float, str, lists, tuples as
`{"$tuple": [...]}`, dicts as `{"$dict": [[key, value], ...]}` and tensors as `{"$tensor": [offset, size, dtype,
shape]}` into the raw bytes. Everything the worker sends after the learner's code ran may be forged by that code, so
`decode` trusts nothing: the frame's size is capped before a byte of it is kept, the header before it is parsed,
nesting and item counts are bounded, a tensor's bytes must match its dtype and shape, and nothing is shared (no
pickle memo: what is decoded is never larger than a small multiple of what was sent).
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any

MAX_FRAME = 64 << 20  # bytes of one frame, tensors included
MAX_HEADER = 8 << 20  # bytes of its JSON header
MAX_DEPTH = 32  # nesting of lists, tuples and dicts
MAX_ITEMS = 1 << 20  # values in one frame
MAX_MESSAGE = 20_000  # characters of a message shown to the learner
_DTYPES = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128", "int8", "int16", "int32", "int64",
           "uint8", "bool")


class FrameError(ValueError):
    """The bytes are not a frame this protocol allows."""


def encode(message: dict[str, Any]) -> bytes:
    """One frame holding `message` (plain data, see the module docstring)."""
    blobs: list[bytes] = []
    offset = [0]

    def plain(value: Any) -> Any:
        import torch

        if value is None or type(value) in (bool, int, float, str):
            return value
        if type(value) is list:
            return [plain(item) for item in value]
        if type(value) is tuple:
            return {"$tuple": [plain(item) for item in value]}
        if type(value) is dict:
            return {"$dict": [[plain(key), plain(item)] for key, item in value.items()]}
        if isinstance(value, torch.Tensor):
            tensor = value.detach().to("cpu").contiguous()
            data = tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
            blobs.append(data)
            offset[0] += len(data)
            return {"$tensor": [offset[0] - len(data), len(data), str(tensor.dtype).removeprefix("torch."),
                                list(tensor.shape)]}
        raise TypeError(f"cannot send a {type(value).__name__}")

    header = json.dumps(plain(message), separators=(",", ":")).encode()
    if len(header) > MAX_HEADER or 4 + len(header) + offset[0] > MAX_FRAME:
        raise FrameError(f"{(4 + len(header) + offset[0]) / 2**20:.1f} MiB, of which {len(header) / 2**20:.1f} MiB "
                         f"outside tensors (at most {MAX_FRAME / 2**20:g} MiB, {MAX_HEADER / 2**20:g} MiB outside "
                         "tensors)")
    body = struct.pack(">I", len(header)) + header + b"".join(blobs)
    return len(body).to_bytes(8, "big") + body


def decode(body: bytes) -> Any:
    """The message of one frame's body (after its length); raises FrameError for anything outside the bounds."""
    import torch

    if len(body) > MAX_FRAME or len(body) < 4:
        raise FrameError("frame size")
    (size,) = struct.unpack(">I", body[:4])
    if size > MAX_HEADER or 4 + size > len(body):
        raise FrameError("header size")
    blob = memoryview(body)[4 + size:]
    try:
        tree = json.loads(body[4:4 + size])
    except (ValueError, RecursionError) as error:
        raise FrameError(f"header: {type(error).__name__}") from None
    count = [0]

    def value(node: Any, depth: int) -> Any:
        count[0] += 1
        if count[0] > MAX_ITEMS or depth > MAX_DEPTH:
            raise FrameError("too many or too deeply nested values")
        if node is None or type(node) in (bool, int, float, str):
            return node
        if type(node) is list:
            return [value(item, depth + 1) for item in node]
        if type(node) is not dict or len(node) != 1:
            raise FrameError("not plain data")
        (kind, content), = node.items()
        if kind == "$tuple" and type(content) is list:
            return tuple(value(item, depth + 1) for item in content)
        if kind == "$dict" and type(content) is list:
            result = {}
            for pair in content:
                if type(pair) is not list or len(pair) != 2 or type(pair[0]) not in (str, int, bool):
                    raise FrameError("dict item")
                result[pair[0]] = value(pair[1], depth + 1)
            return result
        if kind == "$tensor" and type(content) is list and len(content) == 4:
            return tensor(*content)
        raise FrameError("not plain data")

    def tensor(offset: Any, nbytes: Any, dtype: Any, shape: Any) -> Any:
        if dtype not in _DTYPES or type(shape) is not list or len(shape) > 16 or \
                not all(type(n) is int and n >= 0 for n in (offset, nbytes, *shape)):
            raise FrameError("tensor header")
        kind = getattr(torch, dtype)
        numel = 1
        for n in shape:
            numel *= n
        if numel * torch.empty((), dtype=kind).element_size() != nbytes or offset + nbytes > len(blob):
            raise FrameError("tensor size")
        if not nbytes:
            return torch.empty(shape, dtype=kind)
        data = torch.frombuffer(bytearray(blob[offset:offset + nbytes]), dtype=torch.uint8)
        if kind is torch.bool:
            return (data != 0).reshape(shape)
        return data.view(kind).reshape(shape)

    return value(tree, 0)


_CONTROL = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|.)?|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
                      r"|[\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean(text: Any, limit: int = MAX_MESSAGE) -> str:
    """`text` as a string fit for a terminal, JSON and JUnit: escape sequences and control characters (carriage
    returns included; newlines and tabs kept) removed, at most `limit` characters (the cut said)."""
    text = str(text) if not isinstance(text, str) else text
    if len(text) > 4 * limit:
        text = text[:4 * limit]
    text = _CONTROL.sub("", text)
    if len(text) > limit:
        text = text[:limit] + f"\n... (cut at {limit} characters)"
    return text
