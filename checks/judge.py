"""Judging one output: compare it with the reference, run the check's validator, and find inputs changed in place.

Plain functions on plain data; they never call the learner's function. A rejection is raised as `Rejection`, with
the status it ends in, the diagnosis and the course's hint kept apart (a notebook shows the hint only on request).
"""

from __future__ import annotations

import traceback
from typing import Any

import torch

from checks.compare import compare
from checks.outcome import Status
from checks.spec import Check


class Rejection(Exception):
    """Ends a grading call early with a status, its message (the diagnosis) and, where useful, the course hint."""

    def __init__(self, status: Status | str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status = Status(status)
        self.message = message
        self.hint = hint


def judge(actual: Any, expected: Any, check: Check, inputs: dict[str, Any]) -> None:
    """Compare with the reference, then run the check's validator; raise a Rejection unless both pass."""
    try:
        verdict = compare(actual, expected, atol=check.atol, rtol=check.rtol, unordered=check.unordered)
    except Exception as error:  # an output so odd that comparing it fails
        raise Rejection(Status.FAILED, f"your output could not be compared with the reference "
                        f"({type(error).__name__}: {error}); it should be a {type(expected).__name__}",
                        check.hint) from None
    if not verdict.passed:
        raise Rejection(Status.FAILED, verdict.message, check.hint)
    if check.validate is not None:
        try:
            complaint = check.validate(actual, inputs)
        except Exception:
            raise Rejection(Status.ERROR, f"the validator of {check.name!r} crashed; this is a bug in the course:\n"
                            f"{traceback.format_exc()}") from None
        if complaint:
            raise Rejection(Status.FAILED, complaint, check.hint)


# ---- input mutation --------------------------------------------------------------------------------------------------
def snapshot(value: Any) -> Any:
    """A copy of `value` deep enough to detect in-place changes to tensors and containers (models are audited by
    the env, other objects are taken as they are)."""
    from transformer_lens import ActivationCache

    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, ActivationCache):
        return {key: tensor.detach().clone() for key, tensor in value.cache_dict.items()}
    if isinstance(value, dict):
        return {key: snapshot(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [snapshot(item) for item in value]
    return value


def first_difference(value: Any, saved: Any, path: str) -> str | None:
    """The path of the first part of `value` that no longer equals its snapshot, or None."""
    from transformer_lens import ActivationCache

    if isinstance(value, torch.Tensor):
        same = (value.shape == saved.shape and value.dtype == saved.dtype
                and torch.equal(value.detach().isnan(), saved.isnan())
                and torch.equal(value.detach().nan_to_num(), saved.nan_to_num()))
        return None if same else path
    if isinstance(value, ActivationCache):
        value = value.cache_dict
    if isinstance(value, dict):
        if set(value) != set(saved):
            return path
        for key in value:
            found = first_difference(value[key], saved[key], f"{path}[{key!r}]" if path else str(key))
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != len(saved):
            return path
        for i, (item, saved_item) in enumerate(zip(value, saved)):
            found = first_difference(item, saved_item, f"{path}[{i}]")
            if found is not None:
                return found
    return None
