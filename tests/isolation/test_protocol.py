"""The worker's frames (checks/isolation/protocol.py): plain data round-trips exactly; anything else, and anything beyond the
bounds, is refused before it costs the supervisor memory or time; each kind of frame round-trips as its dataclass,
and `parse` refuses a message whose fields are not what its kind allows."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from checks.isolation.protocol import (MAX_DEPTH, MAX_FRAME, MAX_HEADER, CaseInputs, Crash, Done, Fingerprints,
                                       Forbidden, FrameError, Output, Phase, PhaseStart, Rejected, Result, clean,
                                       decode, encode, parse)
from checks.pipeline.outcome import Status


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


# ---- the frames as dataclasses ---------------------------------------------------------------------------------------
FRAMES = [
    Fingerprints({"seed": CaseInputs("9f2c", [[0.5, 0.0, -1.25, 3.0]], {"draws": (1, 2)}),
                  "other": CaseInputs("77aa", [], None), "broken": "Traceback: the builder crashed"}),
    PhaseStart(Phase.IMPORT, sandbox={"seccomp": True, "landlock_abi": 4}),
    PhaseStart(Phase.CALL, "seed"),
    PhaseStart(Phase.AUDIT, "seed"),
    Output("seed", {"scores": [1.5, None], "shape": (2, 3)}),
    Output("seed", None, ("ValueError", "Exception", "BaseException"), "wrong shape"),
    Result("seed", None, Status.FAILED),
    Result("seed", "the validator crashed", Status.ERROR),
    Rejected("", Status.NOT_STARTED, "count_repeats still raises NotImplementedError", "a hint", import_error=False),
    Rejected("seed", Status.FAILED, "importing it raised ValueError", import_error=True),
    Forbidden("opened /course/solutions/day1.py"),
    Crash("Traceback (most recent call last): ..."),
    Done(),
]


def _sent(message: dict) -> dict:
    return decode(_body(encode(message)))


@pytest.mark.parametrize("frame", FRAMES, ids=lambda frame: type(frame).__name__)
def test_each_frame_round_trips_as_its_dataclass_with_its_field_types(frame):
    parsed = parse(_sent(frame.to_message()))
    assert parsed == frame and type(parsed) is type(frame)
    for name, value in vars(frame).items():  # enum members come back as members, tuples as tuples
        assert type(getattr(parsed, name)) is type(value), name


def test_an_output_holds_a_tensor_exactly():
    sent = Output("seed", [torch.arange(6).reshape(2, 3), torch.tensor([0.5], dtype=torch.bfloat16)])
    parsed = parse(_sent(sent.to_message()))
    assert isinstance(parsed, Output) and parsed.case == "seed"
    for got, want in zip(parsed.output, sent.output):
        assert type(got) is torch.Tensor and got.dtype == want.dtype and torch.equal(got, want)


class _Sly(str):
    """A str that is not one: `parse` takes exact types only."""


@pytest.mark.parametrize("message, why", [
    ({"kind": "rejection", "case": ["x"], "status": "failed", "message": "m"}, "a case that is not a str"),
    ({"kind": "rejection", "case": _Sly("seed"), "status": "failed", "message": "m"}, "a subclass of str"),
    ({"kind": "rejection", "case": "", "status": 5, "message": "m"}, "a status that is not a str"),
    ({"kind": "rejection", "case": "", "status": "failed", "message": torch.ones(2)}, "a tensor outside an output"),
    ({"kind": "rejection", "case": "", "status": "failed", "message": "m", "import_error": 1}, "an int for a bool"),
    ({"kind": "result", "case": "seed", "complaint": torch.ones(2), "complaint_status": "failed"},
     "a tensor complaint"),
    ({"kind": "result", "case": "seed", "complaint": None}, "a missing field"),
    ({"kind": "result", "case": "seed", "complaint": None, "complaint_status": "failed", "output": 0},
     "a field its kind does not have"),
    ({"kind": "output", "case": "seed", "output": 1, "raised": "ValueError"}, "raised names that are not a list"),
    ({"kind": "output", "case": "seed", "output": 1, "raised": [1]}, "a raised name that is not a str"),
    ({"kind": "output", "case": 3, "output": 1}, "an output's case that is not a str"),
    ({"kind": "phase", "phase": "sleep", "case": "seed"}, "a phase outside the protocol's"),
    ({"kind": "phase", "phase": ["call"], "case": "seed"}, "a phase that is not a str (nor hashable)"),
    ({"kind": "phase", "phase": "import", "sandbox": {"seccomp": "yes"}}, "a sandbox feature that is not a bool"),
    ({"kind": "fingerprints", "cases": {"seed": {"hash": 1, "floats": [], "facts": None}}}, "a hash that is no str"),
    ({"kind": "fingerprints", "cases": {"seed": {"hash": "a", "floats": [[True]], "facts": None}}}, "a bool float"),
    ({"kind": "fingerprints", "cases": {"seed": {"error": 3}}}, "a builder's error that is not a str"),
    ({"kind": "forbidden", "what": 3}, "a refused access that is not a str"),
    ({"kind": "crash", "message": None}, "a crash without its message"),
    ({"kind": "done", "extra": 1}, "a field on a frame that has none"),
])
def test_a_field_of_the_wrong_type_missing_or_unknown_is_refused(message, why):
    assert parse(message) is None


@pytest.mark.parametrize("kind", ["stop", "Rejection", "ready", ""])
def test_an_unknown_kind_is_refused(kind):
    assert parse({"kind": kind}) is None


@pytest.mark.parametrize("message", [[1, 2], "rejection", None, {}, {"kind": 3}, {"kind": ["phase"]}])
def test_what_is_no_message_at_all_is_garbage(message):
    with pytest.raises(FrameError):
        parse(message)


@pytest.mark.parametrize("claimed, read", [("failed", Status.FAILED), ("not started", Status.NOT_STARTED),
                                           ("error", Status.FAILED), ("passed", Status.FAILED),
                                           ("stale reference", Status.FAILED), ("anything", Status.FAILED)])
def test_a_rejection_claims_at_most_a_failure_or_a_stub(claimed, read):
    """Everything after the import may be forged: a rejection is the learner's failure, or a stub (which the
    supervisor believes only when the learner's file shows one), never the course's error or a pass."""
    frame = parse(_sent({"kind": "rejection", "case": "", "status": claimed, "message": "forged", "hint": ""}))
    assert isinstance(frame, Rejected) and frame.status is read and frame.message == "forged"


@pytest.mark.parametrize("claimed, read", [("failed", Status.FAILED), ("error", Status.ERROR),
                                           ("passed", Status.FAILED), ("not started", Status.FAILED)])
def test_a_result_claims_at_most_a_failure_or_a_crashed_validator(claimed, read):
    frame = parse(_sent({"kind": "result", "case": "seed", "complaint": "c", "complaint_status": claimed}))
    assert isinstance(frame, Result) and frame.complaint_status is read
