"""Day 3 as problems: the library and the learner's notebook hold no exercise's answer, the capstone's bounds sit
clear of what the course's own hypotheses recover, and the supervisor judges the capstone and names a head's
mistakes as the learner's kernel does (the docstring and hint-tier rules of every day: test_exercise_docstrings.py,
test_grading_contracts.py)."""

from __future__ import annotations

import json
import textwrap

import pytest

from checks.course import Course
from checks.frontends.session import GradingSession
from checks.specs import day3 as spec
from curriculum.tools.paths import COURSE_ROOT
from margins import built_inputs
from solutions import day3_causal_scrubbing as solution

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROOT = COURSE_ROOT


def test_the_library_and_the_learners_notebook_hold_no_answer():
    library = (ROOT / "curriculum" / "library" / "scrubbing.py").read_text()
    for answer in ("def matched_source", "def day3_hypotheses", "set_use_split_qkv_input", "unique_consecutive",
                   "randperm"):
        assert answer not in library, answer
    notebook = json.loads((ROOT / "notebooks" / "learner" / "day3_causal_scrubbing.ipynb").read_text())
    text = "\n".join("".join(cell["source"]) for cell in notebook["cells"])
    assert "tests/" not in text and "test_day3" not in text
    allowed = "from curriculum.library.scrubbing import ladder_figure"
    assert "curriculum.library.scrubbing" not in text.replace(allowed, "")
    stub = (ROOT / "curriculum" / "day3_causal_scrubbing.py").read_text()
    assert '"ladder 4":' not in stub and "previous token\"}" not in stub.split("def capstone")[1]


@pytest.mark.parametrize("case", list(spec.CAPSTONE_CASES))
def test_the_capstone_bounds_sit_clear_of_the_courses_answers(case):
    """The bounds the capstone is graded by come from the course's hypotheses: each sits several points, and many
    standard errors, from what they recover on the grading case."""
    inputs, _ = built_inputs("capstone", case)
    found = solution.capstone(**inputs)
    margin = {name: 0.0 for name in found}
    for name, result in found.items():
        value, error = result["recovered"], result["standard_error"]
        if name.startswith("ladder"):
            margin[name] = value - spec.LADDER_FLOOR
        elif name == "refuted":
            margin[name] = spec.REFUTED_CEILING - value
        elif name == "refined":
            margin[name] = value - spec.REFINED_FLOOR
        else:
            margin[name] = spec.NAIVE_CEILING - value
        assert margin[name] > 0.04 and margin[name] > 5 * error, (name, value, error)
    assert spec.CAPSTONE_CONTRACT.valid(found, spec._capstone_facts(inputs)) is None


def test_the_supervisor_judges_the_capstone_and_names_a_heads_mistake(tmp_path):
    course = Course.default()
    day = course.day(3)
    learner = tmp_path / "day3_causal_scrubbing.py"
    learner.write_text(day.solution_path.read_text() + "\n\n" + textwrap.dedent("""
        def head_output_from_inputs(model, layer, head, q_input, k_input, v_input):
            pos = model.W_pos[: q_input.shape[1]]
            q = (k_input + pos) @ model.W_Q[layer, head] + model.b_Q[layer, head]  # the key's input
            k = (q_input + pos) @ model.W_K[layer, head] + model.b_K[layer, head]  # the query's input
            v = v_input @ model.W_V[layer, head] + model.b_V[layer, head]
            scores = (q @ k.transpose(-1, -2) / model.cfg.d_head ** 0.5).masked_fill(
                torch.ones(q.shape[1], q.shape[1], dtype=torch.bool).triu(1), float("-inf"))
            return scores.softmax(-1) @ v @ model.W_O[layer, head]

        def capstone(model, tokens, candidates, n_resamplings, seed):
            names = ["embed", "L0H0", "L0H1", "L0H2", "L0H3", "b_O0"]
            keep = lambda kept, g="other": {c: ("orig" if c in kept else g) for c in names}
            story = {"other": "sequence"}
            hypotheses = {f"ladder {i}": {"v": keep(["embed"]), "groups": story} for i in range(1, 5)}
            hypotheses["refuted"] = {"q": keep(["embed"]), "groups": story}  # a claim that holds
            hypotheses["naive"] = {"k": keep([], "any"), "groups": {"any": "any position"}}
            hypotheses["refined"] = {"k": keep([], "prev"), "groups": {"prev": "previous token"}}
            baseline = {"q": keep([]), "k": keep([]), "v": keep([]), "groups": story}
            groups = {"other": "sequence", "any": "any position", "prev": "previous token"}
            draws = [draw_sources(tokens[:, :-1], groups, seed + r) for r in range(n_resamplings)]
            losses = scrub_hypotheses(model, tokens, candidates, {"clean": {}, "base": baseline, **hypotheses}, draws)
            clean, base = losses["clean"][0], losses["base"][0]
            return {n: {"hypothesis": h, "recovered": (base - losses[n][0]) / (base - clean),
                        "standard_error": losses[n][1] / (base - clean)} for n, h in hypotheses.items()}
        """))
    session = GradingSession(course, [day], device="cpu", learner=learner)
    try:
        head = session.grade_exercise(day, "head_output_from_inputs")
        capstone = session.grade_exercise(day, "capstone")
    finally:
        session.close()
    assert head.status == "failed" and spec.MISTAKES["head q and k swapped"].message in head.message, head.message
    assert capstone.status == "failed" and "is not more specific" in capstone.message, capstone.message
