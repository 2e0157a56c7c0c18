"""Day 5 as problems: every check gives hints in three tiers (the first without code), the checks declare the
mistakes the grader names, and the two batching exercises are graded as batched. (No exercise docstring spells out
code: tests/days/test_exercise_docstrings.py, for every day.)"""

from __future__ import annotations

import re

import pytest

from checks.specs.day5 import CHECKS, PATCHING_PASSES, PRUNING_PASSES

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# What code looks like in prose: a call, an operator between matrices, indexing or slicing, a tensor method.
CODE = re.compile(r"\w\(|@|\[:|\[\d+:|\.(argmax|gather|mean|sum|softmax|log_softmax|clone|expand|where)\b|torch\."
                  r"|(?<![=<>!])=(?!=)")


def test_day5_has_at_least_fourteen_exercises():
    assert len(CHECKS) >= 14


@pytest.mark.parametrize("check", CHECKS, ids=[check.name for check in CHECKS])
def test_every_check_has_three_hint_tiers_and_the_first_has_no_code(check):
    assert len(check.hints) == 3 and all(tier.strip() for tier in check.hints), check.hints
    assert not CODE.search(check.hints[0]), f"tier 1 of {check.name} contains code: {check.hints[0]!r}"


def test_the_batching_exercises_have_forward_pass_budgets():
    budgets = {check.name: check.forward_passes for check in CHECKS}
    assert budgets["head_patching_by_position"] == PATCHING_PASSES < 256  # one pass per (layer, position, head): 256
    assert budgets["greedy_prune_batched"] == PRUNING_PASSES


def test_seven_typical_mistakes_are_declared():
    declared = [(check.name, mistake.message) for check in CHECKS for mistake in check.mistakes]
    assert len(declared) >= 7, declared
