"""Day 4 as problems: every check gives hints in three tiers, and the mistakes a check declares are named by the
grader, in the learner's kernel and through the supervisor alike, where a learner's own predictor is also judged by
its agreement with the model. (That no exercise docstring spells out code is tested for every day written as
problems in tests/days/test_exercise_docstrings.py.)"""

from __future__ import annotations

import re
import textwrap

import pytest

from checks.course import Course
from checks.frontends.session import GradingSession
from checks.specs.day4 import CHECKS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# What code looks like in prose: a call, an operator between matrices, indexing or slicing, a tensor method.
CODE = re.compile(r"\w\(|@|\[:|\[\d+:|\.(argmax|gather|mean|sum|softmax|log_softmax|clone|expand|where)\b|torch\."
                  r"|(?<![=<>!])=(?!=)")


@pytest.mark.parametrize("check", CHECKS, ids=[check.name for check in CHECKS])
def test_every_check_has_three_hint_tiers_and_the_first_has_no_code(check):
    assert len(check.hints) == 3 and all(tier.strip() for tier in check.hints), check.hints
    assert not CODE.search(check.hints[0]), f"tier 1 of {check.name} contains code: {check.hints[0]!r}"
    assert check.hint == check.hints[0]


def test_the_declared_mistakes_are_named_through_the_supervisor(tmp_path):
    """`pytest --day 4` judges in a supervisor that never sees the inputs: it compares the output with the mistakes'
    outputs stored with the references and adds the message of the one it matches (the learner's kernel does the same
    in process: see tests/days/test_day4_wrong_implementations.py)."""
    course = Course.default()
    day = course.day(4)
    learner = tmp_path / "day4_array_indexing.py"
    learner.write_text(day.solution_path.read_text() + "\n\n" + textwrap.dedent("""
        def answer_loss(logits, tokens):
            answer_logits = logits[:, list(LABEL_POSITIONS)].to(torch.float64)  # one position late
            log_probs = answer_logits.log_softmax(dim=-1)
            return -log_probs.gather(-1, tokens[:, list(LABEL_POSITIONS), None]).mean()

        def predict_from_attention(model, tokens, layer):
            if not 0 <= layer < model.cfg.n_layers:
                raise ValueError("no such layer")
            _, cache = model.run_with_cache(tokens)
            return cache["pattern", layer][:, 0, list(ANSWER_POSITIONS)].argmax(dim=-1)  # positions, not tokens

        def predicted_read_positions(tokens):
            return (1 + torch.arange(LIST_LEN)).expand(tokens.shape[0], -1).contiguous()  # idx ignored
        """))
    session = GradingSession(course, [day], device="cpu", learner=learner)
    try:
        loss = session.grade_exercise(day, "answer_loss")
        positions = session.grade_exercise(day, "predict_from_attention")
        right = session.grade_exercise(day, "answer_accuracy")
        rule = session.grade_exercise(day, "predicted_read_positions")
    finally:
        session.close()
    assert loss.status == "failed" and "the logits one position late" in loss.message, loss.message
    assert positions.status == "failed" and "looks like positions, not tokens" in positions.message, positions.message
    assert right.status == "passed", right.message
    # judged by agreement with layer 1, in the supervisor too (on plain data: the worker cannot vouch for itself)
    assert rule.status == "failed" and "agrees with the reference on" in rule.message, rule.message


def test_agreement_judges_each_column_and_says_where_it_misses():
    import torch

    from checks.judging.compare import agreement

    expected = torch.tensor([[1, 2, 3]] * 10)
    mostly = expected.clone()
    mostly[0, 2] = 5  # 90% agreement in the last column
    assert agreement(mostly, expected, 0.9).passed and agreement(mostly, expected, 0.9).margin == 0
    mostly[1, 2] = 5
    verdict = agreement(mostly, expected, 0.9)
    assert not verdict.passed and "[1.0, 1.0, 0.8]" in verdict.message and "column 2 it misses 2 of 10" in verdict.message
    assert "wrong shape" in agreement(expected[:, :2], expected, 0.9).message
    assert "integer tensor" in agreement(expected.float(), expected, 0.9).message
    assert "tokens for positions" in agreement(expected + 40, expected, 0.9).message
