"""The grader's means of letting the learner think (issue 18): hints in tiers, contracts for random draws, budgets
of forward passes, documented exceptions and types held to, and messages that point at the mistake."""

from __future__ import annotations

import pytest

from checks.course import Course
from checks.hints import MIN_TIERS, code_in, shown_hints, tiered_message, tiers_asked
from checks.outcome import Outcome, Status

COURSE = Course.default()
DAYS = sorted(COURSE.days)


# ---- hints in tiers --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("day", DAYS)
def test_every_check_has_three_hint_tiers_and_a_first_tier_without_code(day):
    problems = []
    for check in COURSE.day(day).checks:
        if len(check.hints) < MIN_TIERS:
            problems.append(f"{check.name}: {len(check.hints)} hint tier(s), at least {MIN_TIERS} wanted")
        elif code_in(check.hints[0]):
            problems.append(f"{check.name}: its first hint has code ({code_in(check.hints[0])})")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("text", [
    "compare logits[:, :-1].argmax(-1) with tokens[:, 1:]", "Use `torch.randperm(n)`", "call torch.quantile",
    "set z = 0", "take cache['pattern', 0]", "x.sum(-1) over keys", "use `model.to_tokens(text)`", "a lambda x: x",
    "pattern[:, 0]", "W_U[:, correct]"])
def test_code_in_a_hint_is_recognised(text):
    assert code_in(text) is not None


@pytest.mark.parametrize("text", [
    "Which token does the prediction made at a position try to guess?",
    "Where in an attention pattern does a query attend to its own position (query and key equal)?",
    "What does the final LayerNorm do to a component's contribution, and which part of it is linear?",
    "In K-composition, which side of the attention score does the earlier head's output feed: queries or keys?"])
def test_words_are_not_code(text):
    assert code_in(text) is None


def test_tiers_asked_and_shown():
    hints = ("nudge", "approach", "recipe")
    assert [tiers_asked(h) for h in (False, None, 0, True, 1, 2, 3)] == [0, 0, 0, 1, 1, 2, 3]
    assert shown_hints(hints, True) == ["nudge"] and shown_hints(hints, 2) == ["nudge", "approach"]
    assert shown_hints(hints, 9) == list(hints)
    with pytest.raises(ValueError):
        tiers_asked(-1)
    failed = Outcome("f", 1, Status.FAILED, "2 of 4 elements differ.", "nudge")
    assert tiered_message(failed, hint=False, ask_for_hint="Stuck?", hints=hints) == "2 of 4 elements differ.\nStuck?"
    shown = tiered_message(failed, hint=2, ask_for_hint="Stuck?", hints=hints)
    assert "Hint 1 of 3 from the course: nudge" in shown and "Hint 2 of 3 from the course: approach" in shown
    assert "recipe" not in shown.replace("the next tier", "") and "hint=3" in shown
    passed = Outcome("f", 1, Status.PASSED)
    assert tiered_message(passed, hint=3, ask_for_hint="Stuck?", hints=hints) == ""
