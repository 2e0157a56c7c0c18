"""What a failed exercise shows, in tiers as a teaching assistant gives them: first the diagnosis (what differs,
where, by how much) and how to ask for more; the course's hint only when asked for; a solution never."""

from __future__ import annotations

from checks.outcome import Outcome, Status


def tiered_message(outcome: Outcome, *, hint: bool, ask_for_hint: str) -> str:
    """The diagnosis (`outcome.message`); then the course's hint (`outcome.hint`) if `hint`, else, for a failure
    that has one, `ask_for_hint`: the sentence that says how to ask for it."""
    text = outcome.message
    if outcome.status not in (Status.FAILED, Status.NOT_STARTED) or not outcome.hint:
        return text
    if hint:
        return f"{text}\nHint from the course: {outcome.hint}".lstrip("\n")
    if outcome.status is Status.FAILED:
        return f"{text}\n{ask_for_hint}".lstrip("\n")
    return text
