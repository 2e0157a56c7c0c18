"""Grade one learner function against its stored reference: the logic shared by pytest and `checks.check`.

One grading call, in order: build the inputs on pristine models; fetch the reference and check it is fresh for those
inputs (stale or missing -> "stale reference"); call the learner's function under a timeout; then audit: weights or
hooks changed, inputs mutated, output compared with the reference, and the check's own validator. Whatever the
learner's function does, the models are restored afterwards, so each exercise fails or passes on its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from checks.compare import compare
from checks.course import Course, Day
from checks.env import Env
from checks.references import (InputsFingerprint, ReferenceStore, StaleReference, fingerprint_inputs,
                               rebuild_command)
from checks.spec import Check

STATUSES = ("passed", "failed", "not started", "stale reference", "error")
_CHECKS_DIR = str(Path(__file__).resolve().parent)


@dataclass(frozen=True)
class Outcome:
    """The result of grading one exercise. status is one of STATUSES; message explains anything but a pass."""

    exercise: str
    day: int
    status: str
    message: str = ""
    duration_s: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class LearnerTimeout(Exception):
    """Raised inside the learner's function when it runs past the check's timeout."""


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class Grader:
    """Grades exercises of one course on one device, sharing one env (pristine models) and the loaded references."""

    def __init__(self, course: Course, device: str | torch.device | None = None) -> None:
        self.course = course
        self.env = Env(device or default_device(), lambda name: course.load_model_function()(name))
        self._stores: dict[int, ReferenceStore] = {}

    def store(self, day: Day) -> ReferenceStore:
        if day.number not in self._stores:
            self._stores[day.number] = ReferenceStore(day)
        return self._stores[day.number]

    def grade(self, function: Callable[..., Any] | None, day: Day, check: Check, missing: str = "") -> Outcome:
        """Grade `function` (the learner's) on `check`. `function` None means it is missing; `missing` says why."""
        start = time.perf_counter()
        try:
            if function is None:
                raise _Verdict("failed", missing or f"there is no function {check.name!r} to grade")
            inputs, fingerprint = self._build_inputs(check)
            expected = self._expected(day, check, fingerprint)
            actual = self._call(function, check, inputs)
            self._judge(actual, expected, check, inputs)
            status, message = "passed", ""
        except _Verdict as verdict:
            status, message = verdict.status, verdict.message
        return Outcome(check.name, day.number, status, message, round(time.perf_counter() - start, 4))

    def _build_inputs(self, check: Check) -> tuple[dict[str, Any], InputsFingerprint]:
        self.env.prepare()
        try:
            inputs = check.inputs(self.env)
            used = {name: self.env.model_hashes[name] for name in self.env.models_used}
            return inputs, fingerprint_inputs(inputs, used)
        except Exception:
            self.env.audit()
            raise _Verdict("error", f"building the inputs of {check.name!r} failed; this is a bug in the course, not "
                           f"in your code:\n{traceback.format_exc()}") from None

    def _expected(self, day: Day, check: Check, fingerprint: InputsFingerprint) -> Any:
        try:
            return self.store(day).expected(check.name, fingerprint)
        except StaleReference as error:
            raise _Verdict("stale reference", f"{error}. This is not your mistake: the course's stored answers need "
                           f"rebuilding with `{rebuild_command(day)}`.") from None

    def _call(self, function: Callable[..., Any], check: Check, inputs: dict[str, Any]) -> Any:
        """Call the learner's function on pristine models under the check's timeout; audit what it changed."""
        snapshot = _snapshot(inputs)
        self.env.prepare()
        try:
            with _time_limit(check.timeout_s):
                actual = function(**inputs)
        except NotImplementedError as error:
            if _raised_by_library(error, function):
                raise _Verdict("failed", f"{check.name} raised:\n{_learner_traceback(error)}") from None
            raiser = traceback.extract_tb(error.__traceback__)[-1].name
            if raiser != check.name:
                raise _Verdict("not started", f"{check.name} calls {raiser}, which still raises "
                               f"NotImplementedError: fill in {raiser} first.") from None
            raise _Verdict("not started", f"{check.name} still raises NotImplementedError: fill in its body.") from None
        except LearnerTimeout:
            raise _Verdict("failed", f"{check.name} did not return within {check.timeout_s:g} s and was stopped: an "
                           "infinite loop, or a loop that should be a batched tensor operation?") from None
        except Exception as error:
            raise _Verdict("failed", f"{check.name} raised {type(error).__name__}:\n"
                           f"{_learner_traceback(error)}") from None
        finally:
            problems = self.env.audit()  # always: the models are restored even when the call failed
        mutated = _first_difference(inputs, snapshot, "")
        if mutated is not None:
            problems.append(f"your function modified its input {mutated!r} in place: work on a copy (e.g. "
                            "`x.clone()`), never on the caller's tensors.")
        if problems:
            raise _Verdict("failed", " ".join(problems))
        return actual

    @staticmethod
    def _judge(actual: Any, expected: Any, check: Check, inputs: dict[str, Any]) -> None:
        """Compare with the reference, then run the check's validator; raise a _Verdict unless both pass."""
        try:
            verdict = compare(actual, expected, atol=check.atol, rtol=check.rtol, unordered=check.unordered)
        except Exception as error:  # an output so odd that comparing it fails
            raise _Verdict("failed", f"your output could not be compared with the reference ({type(error).__name__}: "
                           f"{error}); it should be a {type(expected).__name__}") from None
        if not verdict.passed:
            hint = f"\nHint from the course: {check.hint}" if check.hint else ""
            raise _Verdict("failed", verdict.message + hint)
        if check.validate is not None:
            try:
                complaint = check.validate(actual, inputs)
            except Exception:
                raise _Verdict("error", f"the validator of {check.name!r} crashed; this is a bug in the course:\n"
                               f"{traceback.format_exc()}") from None
            if complaint:
                raise _Verdict("failed", complaint)


class _Verdict(Exception):
    """Ends a grading call early with a status and its message."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---- timeouts --------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise LearnerTimeout in the running code after `seconds` (SIGALRM: Unix main thread only; else no limit)."""
    if seconds <= 0 or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise LearnerTimeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---- tracebacks ------------------------------------------------------------------------------------------------------
def _learner_traceback(error: BaseException) -> str:
    """The traceback from the learner's function inwards: the grader's own frames are dropped."""
    frames = traceback.extract_tb(error.__traceback__)
    kept = [frame for frame in frames if not frame.filename.startswith(_CHECKS_DIR)]
    summary = traceback.StackSummary.from_list(kept)
    lines = ["Traceback (most recent call last):\n", *summary.format(),
             *traceback.format_exception_only(type(error), error)]
    return "".join(lines).rstrip()


def _raised_by_library(error: BaseException, function: Callable[..., Any]) -> bool:
    """Whether a NotImplementedError is a real error rather than a stub: "not started" needs the innermost frame to
    be a `raise NotImplementedError` line outside installed libraries (torch's own NotImplementedError comes from C
    code, i.e. from whatever learner line called it)."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return True
    innermost = frames[-1]
    learner_file = getattr(getattr(function, "__code__", None), "co_filename", None)
    in_library = innermost.filename != learner_file and any(
        part in innermost.filename for part in ("site-packages", "dist-packages"))
    line = (innermost.line or "").strip()
    return in_library or bool(line) and not line.startswith("raise NotImplementedError")


# ---- input mutation --------------------------------------------------------------------------------------------------
def _snapshot(value: Any) -> Any:
    """A copy of `value` deep enough to detect in-place changes to tensors and containers (models are audited by
    the env, other objects are taken as they are)."""
    from transformer_lens import ActivationCache

    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, ActivationCache):
        return {key: tensor.detach().clone() for key, tensor in value.cache_dict.items()}
    if isinstance(value, dict):
        return {key: _snapshot(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_snapshot(item) for item in value]
    return value


def _first_difference(value: Any, saved: Any, path: str) -> str | None:
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
            found = _first_difference(value[key], saved[key], f"{path}[{key!r}]" if path else str(key))
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != len(saved):
            return path
        for i, (item, saved_item) in enumerate(zip(value, saved)):
            found = _first_difference(item, saved_item, f"{path}[{i}]")
            if found is not None:
                return found
    return None
