"""Exercises are problems: no exercise docstring spells out code (a call, a matrix product, indexing or slicing, a
tensor method, an assignment). The docstring states the contract (what to return, shapes, dtypes, conventions,
errors); the steps live in the hints (`Check.hints`, tiers 2 and 3). One test for every day written as problems."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

from checks.course import Course

# What code looks like in prose: a call, an operator between matrices, indexing or slicing, a tensor method.
CODE = re.compile(r"\w\(|@|\[:|\[\d+:|\.(argmax|gather|mean|sum|softmax|log_softmax|clone|expand|where|std)\b|torch\."
                  r"|(?<![=<>!])=(?!=)")
DAYS_AS_PROBLEMS = (1, 2, 3, 4, 5)
"""Days whose docstrings have been rewritten as contracts: every day."""
# Contracts that must name a call: a reproducible draw is defined by the exact draw it makes (what, not how).
CONTRACTS_THAT_NAME_CALLS = {
    "generate_repeated_tokens": ("`torch.randint(first_token, model.cfg.d_vocab, (batch, half_len), "
                                 "generator=generator)`",),
    "random_composition_baseline": ("`torch.randn(..., generator=generator)`",),
    "sample_array_indexing_batch": ("a[idx] = elt",),
}
COURSE = Course.default()


def _exercises(day: int) -> list[tuple[str, str]]:
    module = importlib.import_module(f"solutions.{COURSE.day(day).module}")
    return [(check.name, inspect.getdoc(getattr(module, check.name)) or "") for check in COURSE.day(day).checks]


@pytest.mark.parametrize("day", DAYS_AS_PROBLEMS)
def test_no_exercise_docstring_spells_out_code(day):
    problems = []
    for name, docstring in _exercises(day):
        for allowed in CONTRACTS_THAT_NAME_CALLS.get(name, ()):
            docstring = docstring.replace(allowed, "")
        found = CODE.search(docstring)
        if found:
            problems.append(f"{name}: {docstring[max(found.start() - 30, 0):found.end() + 30]!r}")
    assert not problems, "docstrings that spell out code:\n" + "\n".join(problems)


def test_the_detector_finds_code():
    for text in ("the diagonal(offset=1 - half_len)", "W_E @ W_V", "pattern[:, 0]", "torch.randint",
                 "x.mean over keys", "scores = q . k", "z @ W_O", "tokens[:, :-1]", "x.std(0)", "u = rand"):
        assert CODE.search(text), text
    for prose in ("Mean attention from each query to the key just before it, per pattern.",
                  "the unbiased standard deviation, divided by n - 1; feature[j] == feature[i]"):
        assert not CODE.search(prose), prose
