"""Frames on a worker's result pipe, and the bounds the supervisor reads them under; what a frame may hold.

The worker turns the learner's output into plain data (`to_plain`, which refuses anything else, subclasses
included) and writes it on the pipe (`Channel`).

A frame is an 8-byte big-endian length, then a 4-byte length of a JSON header, the header, and the raw bytes of the
tensors it names. The header holds plain data only: None, bool, int, float, str, lists, tuples as
`{"$tuple": [...]}`, dicts as `{"$dict": [[key, value], ...]}` and tensors as `{"$tensor": [offset, size, dtype,
shape]}` into the raw bytes. Everything the worker sends after the learner's code ran may be forged by that code, so
`decode` trusts nothing: the frame's size is capped before a byte of it is kept, the header before it is parsed,
nesting and item counts are bounded, a tensor's bytes must match its dtype and shape, and nothing is shared (no
pickle memo: what is decoded is never larger than a small multiple of what was sent).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
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


class Kind(str, enum.Enum):
    """What a frame on a child's result pipe says (its "kind" on the wire)."""

    FINGERPRINTS = "fingerprints"  # the inputs' fingerprints (and the contract's facts), before any learner code
    PHASE = "phase"  # a step begins (`Phase`): the import, then per case its call and its audit
    OUTPUT = "output"  # a case's output, which ends its call
    RESULT = "result"  # what a case's audits, validator and mistakes said
    REJECTION = "rejection"  # the exercise fails here (a raise, a missing function, an output that is not plain data)
    FORBIDDEN = "forbidden"  # the audit hook refused a file access
    CRASH = "crash"  # the child failed outside the learner's call
    DONE = "done"  # every case was sent


class Phase(str, enum.Enum):
    """The steps a child announces (`Kind.PHASE`); the supervisor gives each its time limit."""

    IMPORT = "import"
    CALL = "call"
    AUDIT = "audit"


class Control(str, enum.Enum):
    """Messages between the supervisor and a zygote (JSON on its control socket and on each exercise's channel)."""

    READY = "ready"  # zygote -> supervisor: started (with its pid and the sandbox features that held)
    FAILED = "failed"  # zygote -> supervisor: could not start (with the traceback)
    LOG = "log"  # supervisor -> zygote: what children print goes to this descriptor from now on
    RUN = "run"  # supervisor -> zygote: fork a child for this exercise, on this channel
    STARTED = "started"  # zygote -> supervisor, on the exercise's channel: the child's pid and its result pipe
    EXITED = "exited"  # zygote -> supervisor, on the exercise's channel: the child ended, with its wait status


def control_message(kind: Control, **fields: Any) -> bytes:
    """One control message, as sent."""
    return json.dumps({"kind": kind.value, **fields}).encode()


@dataclasses.dataclass(frozen=True)
class ZygoteConfig:
    """What a zygote needs to know: the course and days it grades, and how."""

    root: str  # the course's folder
    loader: str  # the zoo's loader, "module:function"
    days: list[int]
    device: str
    prebuild: bool  # build every case's inputs once in the zygote (not on CUDA, which does not survive fork)
    threads: int  # torch threads of a child
    memory_bytes: int  # a child's address space beyond the zygote's
    forbid_reads: bool  # instructor grading: no reads of the solutions or stored references
    protect: list[str]  # folders no write may touch (the course; a batch's reports, unreadable too)
    log: str | None  # where children's prints go first
    log_bytes: int  # at most this much of them
    huge_pages: bool = False  # many submissions: the zygote's memory in huge pages (cheaper forks)
    sandbox: list[str] = dataclasses.field(default_factory=list)  # set by the zygote: what isolated it

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "ZygoteConfig":
        return cls(**json.loads(data))


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


# ---- what a frame may hold: plain data -----------------------------------------------------------------------------
class NotPlain(Exception):
    """The learner's output holds something other than plain data; the message names it."""


def to_plain(value: Any, path: str = "your output") -> Any:
    """`value` as plain data: exact `torch.Tensor`s (detached, on CPU), bool/int/float/str/None, and lists, tuples
    and dicts of these. Types are checked exactly (`type(x) is int`), so no subclass and none of its methods ever
    reaches the grader; numpy scalars and `nn.Parameter` are converted. Raises NotPlain naming the type otherwise."""
    import torch

    kind = type(value)
    if kind is torch.Tensor or kind is torch.nn.Parameter:
        if value.layout is not torch.strided:
            return torch.Tensor.to_dense(value).detach().to("cpu").clone()
        return torch.Tensor.detach(value).to("cpu").clone()
    if value is None or kind in (bool, int, float, str):
        return value
    if kind in (list, tuple):
        items = [to_plain(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return items if kind is list else tuple(items)
    if kind is dict:
        plain = {}
        for key, item in value.items():
            if type(key) not in (str, int, bool):
                raise NotPlain(f"{path} has a key of type {_type_name(key)}; dict keys must be plain str or int")
            plain[key] = to_plain(item, f"{path}[{key!r}]")
        return plain
    if kind.__module__ == "numpy" and hasattr(value, "item") and kind.__name__ in _NUMPY_SCALARS:
        return value.item()
    raise NotPlain(f"{path} is a {_type_name(value)}; grading accepts only plain torch.Tensor, int, float, bool, str, "
                   "None, and lists, tuples and dicts of these (no subclasses)")


_NUMPY_SCALARS = {"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                  "uint64", "bool_", "bool", "str_"}


def _type_name(value: Any) -> str:
    kind = type(value)
    bases = [base for base in (int, float, str, bool, list, tuple, dict) if isinstance(value, base)]
    try:
        import torch

        if isinstance(value, torch.Tensor):
            bases.append(torch.Tensor)
    except ImportError:
        pass
    module = kind.__module__
    name = kind.__qualname__ if module in ("builtins", "__main__") or module.startswith("_course_learner_") \
        else f"{module}.{kind.__qualname__}"
    if bases and kind not in bases:
        base = bases[0]
        base_name = "torch.Tensor" if base.__name__ == "Tensor" else base.__name__
        return f"{name} (a subclass of {base_name})"
    return name


class Channel:
    """The write end of a child's result pipe."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, kind: Kind | str, **fields: Any) -> None:
        """Write one frame: `kind` and `fields` (plain data; enum members as their values)."""
        data = encode({key: value.value if isinstance(value, enum.Enum) else value
                       for key, value in {"kind": kind, **fields}.items()})
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
