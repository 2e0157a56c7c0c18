"""The worker's frames (checks/isolation/protocol.py): plain data round-trips exactly; anything else, and anything beyond the
bounds, is refused before it costs the supervisor memory or time."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from checks.isolation.protocol import MAX_DEPTH, MAX_FRAME, MAX_HEADER, FrameError, clean, decode, encode


def _body(frame: bytes) -> bytes:
    assert int.from_bytes(frame[:8], "big") == len(frame) - 8
    return frame[8:]


def _raw(header: bytes, blob: bytes = b"") -> bytes:
    return struct.pack(">I", len(header)) + header + blob


def test_plain_data_round_trips_with_its_types():
    message = {"kind": "result", "case": "seed", 3: (1, 2.5, None, True, "x"), "nan": float("nan"),
               "tensors": [torch.arange(6, dtype=torch.int64).reshape(2, 3), torch.tensor([True, False]),
                           torch.ones(2, 2, dtype=torch.bfloat16), torch.zeros(0, 4), torch.tensor(1.5)]}
    decoded = decode(_body(encode(message)))
    assert decoded[3] == (1, 2.5, None, True, "x") and type(decoded[3]) is tuple
    assert decoded["nan"] != decoded["nan"]
    for sent, got in zip(message["tensors"], decoded["tensors"]):
        assert type(got) is torch.Tensor and got.dtype == sent.dtype and got.shape == sent.shape
        assert torch.equal(got, sent)


@pytest.mark.parametrize("body, why", [
    (_raw(b"[" * (MAX_DEPTH + 2) + b"]" * (MAX_DEPTH + 2)), "too deeply nested"),
    (_raw(b'{"$tensor":[0,8,"float32",[4]]}', bytes(8)), "bytes that do not match the shape"),
    (_raw(b'{"$tensor":[0,4,"object",[1]]}', bytes(4)), "a dtype outside the list"),
    (_raw(b'{"$tensor":[0,4000000,"float32",[1000000]]}', bytes(4)), "bytes it does not have"),
    (_raw(b'{"__class__":"os.system"}'), "an object that is not plain data"),
    (_raw(b'{"$dict":[[["unhashable"],1]]}'), "an unhashable key"),
    (struct.pack(">I", MAX_HEADER + 1) + b"{}", "a header beyond the cap"),
    (_raw(b"[" + b"1" * 5000 + b"]"), "an integer of 5000 digits"),
    (_raw(b"not json"), "garbage"),
])
def test_anything_else_is_refused(body, why):
    with pytest.raises(FrameError):
        decode(body)


def test_the_frame_and_the_header_are_capped_before_decoding():
    with pytest.raises(FrameError):
        decode(bytes(MAX_FRAME + 1))
    with pytest.raises(FrameError):  # the sender refuses too: the learner is told, not the pipe flooded
        encode({"output": "x" * (MAX_HEADER + 1)})
    with pytest.raises(FrameError):
        encode({"output": torch.zeros(MAX_FRAME // 4 + 1)})


def test_a_header_of_many_small_values_is_refused_once_past_the_item_bound():
    header = json.dumps([[]] * 1_200_000, separators=(",", ":")).encode()
    assert len(header) < MAX_HEADER
    with pytest.raises(FrameError):
        decode(_raw(header))


def test_messages_lose_escape_sequences_and_control_characters_and_are_cut():
    text = "a\r\x1b[2K\x1b[32mPASSED\x1b[0m\x1b]0;title\x07\x00\x9b\u202eb\n\tc"
    assert clean(text) == "aPASSEDb\n\tc"
    long = clean("y" * 100_000)
    assert len(long) < 20_100 and long.endswith("(cut at 20000 characters)")
