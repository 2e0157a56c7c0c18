"""What a failed exercise shows, in tiers as a teaching assistant gives them: first the diagnosis (what differs,
where, by how much) and how to ask for more; the course's hint only when asked for; a solution never."""

from __future__ import annotations

from typing import Any

COURSE_HINT = "\nHint from the course: "  # how the grader appends the course's hint to a message (older graders)


def diagnosis(outcome: Any) -> str:
    """The outcome's message without the course's hint."""
    return outcome.message.split(COURSE_HINT)[0]


def tiered_message(outcome: Any, course_hint: str, *, hint: bool, ask_for_hint: str) -> str:
    """The diagnosis; then the course's hint if `hint`, else (for a failure that has one) `ask_for_hint`, the
    sentence that says how to ask for it."""
    text = diagnosis(outcome)
    if outcome.status not in ("failed", "not started") or not course_hint:
        return text
    if hint:
        return f"{text}\nHint from the course: {course_hint}".lstrip("\n")
    if outcome.status == "failed":
        return f"{text}\n{ask_for_hint}".lstrip("\n")
    return text
