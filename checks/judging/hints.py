"""What a failed exercise shows, in tiers as a teaching assistant gives them: first the diagnosis (what differs,
where, by how much) and how to ask for more; then, one tier at a time and only when asked for, the course's hints
(`Check.hints`): (1) a nudge, a question or the concept to revisit, without code; (2) the approach in words; (3) the
near-code recipe. A solution never.

`check(fn, hint=N)` in a notebook and `pytest --day D --course-hints N` show tiers 1..N (`hint=True` and a bare
`--course-hints` mean 1); `--grade-json` lists the tiers shown under "hints".
"""

from __future__ import annotations

import re
from typing import Sequence

from checks.pipeline.outcome import Outcome, Status

MIN_TIERS = 3

# What makes a sentence code rather than words: a call in backticks, a torch/tensor API, indexing with a slice or a
# comma, an assignment or an in-place operator, a lambda, a method call on a name (x.sum(), cache["..."]).
_CODE_PATTERNS = (
    (re.compile(r"`[^`]*\w\([^`]*`"), "a call in backticks"),
    (re.compile(r"\b(torch|einops|F|np|nn)\.\w"), "a library call"),
    (re.compile(r"\[[^\]]*[:,][^\]]*\]"), "indexing with a slice or a comma"),
    (re.compile(r"(?<![<>=!])=(?!=)"), "an assignment"),
    (re.compile(r"\b\w+\.\w+\("), "a method call"),
    (re.compile(r"\b\w+\[['\"\d]"), "indexing"),
    (re.compile(r"\blambda\b|->|\+=|-=|\*="), "code syntax"),
)


def code_in(text: str) -> str | None:
    """What in `text` is code (e.g. "a library call: `torch.`"), or None when it reads as words only. Tier 1 of a
    check's hints must pass this: a nudge names a question or a concept, never the code that answers it."""
    for pattern, what in _CODE_PATTERNS:
        found = pattern.search(text)
        if found:
            return f"{what}: {found.group(0)!r}"
    return None


def tiers_asked(hint: bool | int | None) -> int:
    """How many tiers a request asks for: False/None/0 -> none, True -> 1, N -> N."""
    if hint is None or hint is False:
        return 0
    if hint is True:
        return 1
    if not isinstance(hint, int) or hint < 0:
        raise ValueError(f"hint must be True, False or a number of tiers (1, 2, 3...), got {hint!r}")
    return hint


def shown_hints(hints: Sequence[str], hint: bool | int | None) -> list[str]:
    """The tiers of `hints` a request shows: 1..N."""
    return list(hints[:tiers_asked(hint)])


def tiered_message(outcome: Outcome, *, hint: bool | int | None, ask_for_hint: str,
                   hints: Sequence[str] = ()) -> str:
    """The diagnosis (`outcome.message`); then tiers 1..N of the course's hints (`hints`, else the outcome's single
    `outcome.hint`) when `hint` asks for N of them, else, for a failure that has hints, `ask_for_hint`: the sentence
    that says how to ask for them."""
    text = outcome.message
    tiers = list(hints) or ([outcome.hint] if outcome.hint else [])
    if outcome.status not in (Status.FAILED, Status.NOT_STARTED) or not tiers:
        return text
    shown = shown_hints(tiers, hint)
    if shown:
        lines = [f"Hint {i} of {len(tiers)} from the course: {tier}" for i, tier in enumerate(shown, 1)]
        if len(shown) < len(tiers):
            lines.append(f"(the next tier: hint={len(shown) + 1} in check(), --course-hints {len(shown) + 1} in pytest)")
        return "\n".join([text, *lines]).lstrip("\n")
    if outcome.status is Status.FAILED:
        return f"{text}\n{ask_for_hint}".lstrip("\n")
    return text
