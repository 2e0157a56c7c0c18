"""In-process grading builds each input case once per env (`checks.pipeline.inputs.InputsCache`) and hands every call
fresh copies: what one call does to its inputs or to the models never reaches the next."""

from __future__ import annotations

import torch

from checks.pipeline.grading import Grader
from checks.pipeline.inputs import InputsCache
from checks.pipeline.learner import load_module


def _counting_builds(check, monkeypatch) -> list[str]:
    """Wrap every inputs builder of `check` to record each build (undone after the test)."""
    built: list[str] = []
    for case, builder in list(check.cases.items()):
        def counted(env, builder=builder, case=case):
            built.append(case)
            return builder(env)
        monkeypatch.setitem(check.cases, case, counted)
    return built


def test_each_case_is_built_once_and_every_call_gets_fresh_copies(built_course, monkeypatch):
    day = built_course.days[1]
    check = day.check("count_repeats")
    builds = _counting_builds(check, monkeypatch)
    solutions = load_module(day.solution_path)
    grader = Grader(built_course, "cpu")

    def vandal(tokens):
        answer = solutions.count_repeats(tokens)
        tokens.zero_()  # damages its own copy only: the next call still sees the built values
        return answer

    assert grader.grade_function(vandal, day, check).status == "failed"
    for _ in range(2):
        assert grader.grade_function(solutions.count_repeats, day, check).status == "passed"
    assert builds == list(check.cases)


def test_a_changed_model_is_built_afresh(built_course, monkeypatch):
    """A model edited outside any graded call (in a notebook, through a model an earlier call saw) is not hidden by the
    cache: the case is built again on it, as without a cache."""
    day = built_course.days[1]
    check = day.check("mean_logit")
    builds = _counting_builds(check, monkeypatch)
    grader = Grader(built_course, "cpu")
    cache = InputsCache()
    first = cache.build(grader.env, check, "seed")
    again = cache.build(grader.env, check, "seed")
    assert builds == ["seed"] and again.inputs["model"] is first.inputs["model"]
    assert again.inputs["tokens"] is not first.inputs["tokens"] and torch.equal(again.inputs["tokens"],
                                                                               first.inputs["tokens"])
    with torch.no_grad():
        next(first.inputs["model"].parameters()).add_(1.0)
    cache.build(grader.env, check, "seed")
    assert builds == ["seed", "seed"]
    grader.env.audit()  # restore the model for the other tests


def test_copies_keep_views_strides_and_shared_memory():
    from checks.pipeline.inputs import _fresh_copy

    base = torch.arange(24.0).reshape(4, 6)
    inputs = {"left": base[:, :3], "right": base[:, 3:], "gen": torch.Generator().manual_seed(3)}
    fresh = _fresh_copy(inputs, [], {})
    assert fresh["left"].stride() == (6, 1) and torch.equal(fresh["left"], inputs["left"])
    fresh["left"][0, 0] = -1.0
    assert base[0, 0] == 0.0  # the original is untouched
    assert fresh["right"].untyped_storage().data_ptr() == fresh["left"].untyped_storage().data_ptr()
    assert torch.equal(torch.rand(3, generator=fresh["gen"]), torch.rand(3, generator=inputs["gen"]))
