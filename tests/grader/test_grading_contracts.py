"""The grader's means of letting the learner think (issue 18): hints in tiers, contracts for random draws, budgets
of forward passes, documented exceptions and types held to, and messages that point at the mistake."""

from __future__ import annotations

import pytest

from checks.course import Course
from checks.judging.hints import MIN_TIERS, code_in, shown_hints, tiered_message, tiers_asked
from checks.pipeline.outcome import Outcome, Status

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


# ---- contracts for random draws ----------------------------------------------------------------------------------------
import torch  # noqa: E402

from checks import grade  # noqa: E402
from checks.judging.contracts import Choice, hoeffding_radius, uniform_choice_test  # noqa: E402


def matched_by_multinomial(feature, generator):  # correct, drawing differently from the solution
    same = (feature[:, None] == feature[None, :]).double()
    return torch.multinomial(same, 1, generator=generator)[:, 0]


def matched_by_a_shuffle_per_element(feature, generator):  # correct: a random rank, then the partner of that rank
    picks = []
    for i in range(feature.shape[0]):
        matches = (feature == feature[i]).nonzero()[:, 0]
        picks.append(matches[torch.randperm(len(matches), generator=generator)[0]])
    return torch.stack(picks)


def matched_always_the_first_match(feature, generator):  # biased: valid and reproducible, never random
    return (feature[:, None] == feature[None, :]).double().argmax(1)


def matched_never_the_last_match(feature, generator):  # biased: floor(u * (count - 1)) never reaches the last
    same = feature[:, None] == feature[None, :]
    count = same.sum(1)
    u = torch.rand(feature.shape[0], generator=generator)
    rank = (u * (count - 1)).long()
    return torch.stack([same[i].nonzero()[rank[i], 0] for i in range(feature.shape[0])])


def matched_with_the_global_rng(feature, generator):
    same = (feature[:, None] == feature[None, :]).double()
    return torch.multinomial(same, 1)[:, 0]


def matched_with_a_fixed_seed(feature, generator):  # ignores the generator it is given: the same draw every time
    return matched_by_multinomial(feature, torch.Generator().manual_seed(0))


def groups_by_argsort_of_uniforms(group_of, group_seeds, n):  # correct, drawing differently from the solution
    drawn = {group: torch.rand(n, generator=torch.Generator().manual_seed(seed)).argsort()
             for group, seed in group_seeds.items()}
    return {variable: drawn[group] for variable, group in group_of.items()}


def groups_identity(group_of, group_seeds, n):  # biased: a permutation, but always the same
    return {variable: torch.arange(n) for variable in group_of}


def groups_one_generator_for_all(group_of, group_seeds, n):  # a group's permutation depends on the other seeds
    generator = torch.Generator().manual_seed(sum(group_seeds.values()))
    drawn = {group: torch.randperm(n, generator=generator) for group in sorted(group_seeds)}
    return {variable: drawn[group] for variable, group in group_of.items()}


def groups_one_permutation_for_all(group_of, group_seeds, n):  # groups not independent
    permutation = torch.randperm(n, generator=torch.Generator().manual_seed(min(group_seeds.values())))
    return {variable: permutation for variable in group_of}


def _io_and_s(tokens, positions):
    rows = torch.arange(tokens.shape[0])
    return tokens[rows, positions[:, 0]], tokens[rows, positions[:, 2]]


def abc_by_randperm(tokens, positions, name_tokens, generator):  # correct, drawing differently from the solution
    io, s = _io_and_s(tokens, positions)
    corrupted = tokens.clone()
    for b in range(tokens.shape[0]):
        for index in torch.randperm(len(name_tokens), generator=generator):
            if name_tokens[index] not in (io[b], s[b]):
                corrupted[b, positions[b, 2]] = name_tokens[index]
                break
    return corrupted


def abc_always_the_first_other_name(tokens, positions, name_tokens, generator):  # biased
    io, s = _io_and_s(tokens, positions)
    corrupted = tokens.clone()
    for b in range(tokens.shape[0]):
        corrupted[b, positions[b, 2]] = name_tokens[(name_tokens != io[b]) & (name_tokens != s[b])][0]
    return corrupted


def abc_with_the_global_rng(tokens, positions, name_tokens, generator):
    io, s = _io_and_s(tokens, positions)
    corrupted = tokens.clone()
    for b in range(tokens.shape[0]):
        others = name_tokens[(name_tokens != io[b]) & (name_tokens != s[b])]
        corrupted[b, positions[b, 2]] = others[torch.randint(len(others), ())]
    return corrupted


CONTRACT_PASSES = [("matched_resample", matched_by_multinomial), ("matched_resample", matched_by_a_shuffle_per_element),
                   ("sample_groups", groups_by_argsort_of_uniforms), ("abc_corruption", abc_by_randperm)]
CONTRACT_FAILS = [
    ("matched_resample", matched_always_the_first_match, "not uniform"),
    ("matched_resample", matched_never_the_last_match, "not uniform"),
    ("matched_resample", matched_with_the_global_rng, "global random number generator"),
    ("matched_resample", matched_with_a_fixed_seed, "not uniform"),
    ("sample_groups", groups_identity, "not uniform"),
    ("sample_groups", groups_one_generator_for_all, "its own seed alone"),
    ("sample_groups", groups_one_permutation_for_all, "must be independent"),
    ("abc_corruption", abc_always_the_first_other_name, "not uniform"),
    ("abc_corruption", abc_with_the_global_rng, "global random number generator"),
]


@pytest.mark.parametrize("exercise, correct", CONTRACT_PASSES, ids=[f.__name__ for _, f in CONTRACT_PASSES])
def test_a_correct_draw_unlike_the_solutions_passes(exercise, correct):
    outcome = grade(correct, name=exercise, device="cpu", course=COURSE)
    assert outcome.status == "passed", outcome.message


@pytest.mark.parametrize("exercise, wrong, phrase", CONTRACT_FAILS, ids=[f.__name__ for _, f, _ in CONTRACT_FAILS])
def test_a_biased_or_irreproducible_draw_fails(exercise, wrong, phrase):
    outcome = grade(wrong, name=exercise, device="cpu", course=COURSE)
    assert outcome.status == "failed" and phrase in outcome.message, outcome.message
    if phrase == "not uniform":
        assert "with probability at most 1e-06" in outcome.message


# ---- every documented exception is graded, every named type enforced --------------------------------------------------
import ast  # noqa: E402
import re  # noqa: E402

from checks.spec import expected_exception  # noqa: E402

_PROMISED_EXCEPTION = re.compile(r"\b[Rr]aises? (?:an? )?`?(\w+(?:Error|Exception))")
_NAMED_TYPE = re.compile(r"\bPython (?:float|int|bool)s?\b|\b(?:int64|int32|float32|float64|float16|bfloat16|"
                         r"torch\.long|torch\.bool)\b|\bbool tensor\b", re.IGNORECASE)


def _exercises(day: int) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(COURSE.day(day).solution_path.read_text(encoding="utf-8"))
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def promised_exceptions(docstring: str) -> set[str]:
    """The exceptions a docstring promises ("Raises ValueError when ...")."""
    return set(_PROMISED_EXCEPTION.findall(docstring))


def named_types(function: ast.FunctionDef) -> list[str]:
    """The types and dtypes a docstring (or the return annotation: `-> float`) names."""
    found = _NAMED_TYPE.findall(ast.get_docstring(function) or "")
    returns = ast.unparse(function.returns) if function.returns else ""
    return found + ([f"-> {returns}"] if returns in ("float", "int", "bool") else [])


def test_the_rules_read_docstrings():
    assert promised_exceptions("Returns x. Raises ValueError when k < 1; raises a KeyError otherwise.") == {
        "ValueError", "KeyError"}
    assert promised_exceptions("Returns the mean, as a Python float.") == set()
    function = ast.parse('def f() -> float:\n    """The mean as a Python float of an int64 [n] tensor."""').body[0]
    assert named_types(function) == ["Python float", "int64", "-> float"]
    plain = ast.parse('def f():\n    """Returns a float tensor of shape [n]."""').body[0]
    assert named_types(plain) == []


@pytest.mark.parametrize("day", DAYS)
def test_every_documented_exception_has_a_raises_case(day):
    exercises = _exercises(day)
    missing = []
    for check in COURSE.day(day).checks:
        promised = promised_exceptions(ast.get_docstring(exercises[check.name]) or "")
        cased = {expected_exception(case).__name__ for case in check.cases.values() if expected_exception(case)}
        if promised - cased:
            missing.append(f"{check.name}: its docstring promises {sorted(promised - cased)}, which no Raises case "
                           "checks")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("day", DAYS)
def test_every_type_a_docstring_names_is_enforced(day):
    exercises = _exercises(day)
    loose = [f"{check.name}: names {named_types(exercises[check.name])} but sets neither exact_types nor a contract"
             for check in COURSE.day(day).checks
             if named_types(exercises[check.name]) and not (check.exact_types or check.contract)]
    assert not loose, "\n".join(loose)


# ---- budgets of forward passes -----------------------------------------------------------------------------------------
from checks.pipeline.budgets import STOP_FACTOR, BudgetExceeded, ForwardPasses  # noqa: E402


def _tiny_model():
    import importlib.util

    from support import FIXTURE_COURSE

    spec = importlib.util.spec_from_file_location("_fixture_models", FIXTURE_COURSE / "models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_model("tiny")


def test_forward_passes_are_counted_however_the_model_is_run():
    from transformer_lens import HookedTransformer

    model, original = _tiny_model(), HookedTransformer.forward
    tokens = torch.zeros(2, 5, dtype=torch.long)
    with torch.no_grad(), ForwardPasses(2) as passes:
        model(tokens)
        model.run_with_cache(tokens)
        model.reset_hooks()  # nothing the model offers resets the count
        model.run_with_hooks(tokens, fwd_hooks=[])
        model.forward(tokens)
    assert passes.count == 4 and HookedTransformer.forward is original
    assert passes.complaint("f") == ("f ran 4 forward passes of the model, and this exercise allows at most 2 forward "
                                     "passes: the point is to batch the work (stack the runs along the batch "
                                     "dimension) rather than loop over runs.")
    with ForwardPasses(None) as unbounded:
        model(tokens)
    assert unbounded.count == 0 and unbounded.complaint("f") is None


def test_a_call_far_beyond_its_budget_is_stopped_and_a_replaced_forward_is_caught():
    from transformer_lens import HookedTransformer

    model, tokens = _tiny_model(), torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(BudgetExceeded), torch.no_grad(), ForwardPasses(1) as passes:
        for _ in range(10):
            model(tokens)
    assert passes.count == STOP_FACTOR + 1 and f"was stopped at {STOP_FACTOR}" in passes.complaint("f")
    original = HookedTransformer.forward
    with ForwardPasses(1) as passes:
        HookedTransformer.forward = original  # the learner's way around the count
    assert passes.replaced and "replaced HookedTransformer.forward" in passes.complaint("f")
    assert HookedTransformer.forward is original


def test_the_uniformity_test_is_sized_by_hoeffding():
    # matched_resample's distribution case: blocks of 3, 2, 4 (and 1, untested) -> 29 cells, 400 trials
    radius = hoeffding_radius(400, 29, 1e-6)
    assert 0.14 < radius < 0.16 < 0.25  # below 1/4: an option never drawn in a block of 4 is always caught
    choices = [Choice("a block of 4", (0, 1, 2, 3)), Choice("a block of 2", (7, 8))]
    generator = torch.Generator().manual_seed(0)
    uniform = [[int(torch.randint(4, (), generator=generator)), 7 + int(torch.randint(2, (), generator=generator))]
               for _ in range(400)]
    assert uniform_choice_test(choices, uniform, 1e-6) is None
    first = [[0, 7]] * 400  # always the first match: rejected with certainty, whatever the seed
    assert "took 0 in 400 of 400 draws" in uniform_choice_test(choices, first, 1e-6)
    never_last = [[draw[0] % 3, draw[1]] for draw in uniform]
    assert "not uniform" in uniform_choice_test(choices, never_last, 1e-6)
    # at alpha 0.2, uniform draws are rejected at most 20% of the time (Hoeffding is conservative: far less)
    rejected = 0
    for seed in range(200):
        generator = torch.Generator().manual_seed(seed + 1)
        draws = [[int(torch.randint(4, (), generator=generator)), 7 + int(torch.randint(2, (), generator=generator))]
                 for _ in range(100)]
        rejected += uniform_choice_test(choices, draws, 0.2) is not None
    assert rejected <= 0.2 * 200
