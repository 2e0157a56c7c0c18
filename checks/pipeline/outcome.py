"""What grading one exercise ends in: a `Status` and an `Outcome`, shared by every part of the grader and its reports."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Status(str, Enum):
    """How an exercise ended. The value is the word the reports print (and JSON stores)."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_STARTED = "not started"
    STALE_REFERENCE = "stale reference"  # the course's stored answers are out of date: never the learner's fault
    ERROR = "error"  # the course itself is broken (a check's inputs or validator crashed): never the learner's fault

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def is_course_problem(self) -> bool:
        return self in (Status.STALE_REFERENCE, Status.ERROR)


@dataclass(frozen=True)
class Outcome:
    """The result of grading one exercise.

    message: what went wrong (the diagnosis), empty on a pass. hint: the course's hint for this exercise, kept apart
    from the diagnosis so that a notebook can show it only when the learner asks for it. case: the label of the
    input case that decided the outcome (the first that failed), or "" when every case passed or none ran.
    """

    exercise: str
    day: int
    status: Status
    message: str = ""
    hint: str = ""
    case: str = ""
    duration_s: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["status"] = self.status.value
        return record


def on_case(message: str, case: str, cases: int, status: Status) -> str:
    """A failure's message, prefixed with the input case that decided it when the check has several (a stub's "not
    started" names no case): the one wording of the in-process pipeline and of the supervisor."""
    if case and cases > 1 and status is not Status.NOT_STARTED and not message.startswith("On input"):
        return f"On input case {case!r}: {message}"
    return message


def reason_given_at(day: int, first: str) -> str:
    """The message of an exercise that fails because its day's file cannot be graded, when exercise `first` of the
    same day already gave the reason: the reason is said once per day."""
    return f"not graded: day {day}'s file cannot be graded (the reason is given at {first})"
