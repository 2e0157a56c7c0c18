"""Test support: the margin (error over tolerance) of a function's output on each input case of a check.

A margin is `checks.judging.compare.Verdict.margin`: 0 for an exact match, at most 1 on a pass, inf for a mismatch no
tolerance covers (type, shape, exact values, a broken contract). The grader's accuracy tests ask that every wrong
implementation fails its case by a margin of at least 10 and every correct alternative passes every case by at most
0.1, so that neither verdict hangs on rounding.
"""

from __future__ import annotations

import math
import functools
from functools import lru_cache
from typing import Any, Callable

import checks
from checks.judging.compare import agreement, compare
from checks.course import Course
from checks.pipeline.env import Env
from checks.judging.contracts import contract_verdict
from checks.judging.judge import Raised, case_facts, expected_raise, graded_callable, snapshot, type_mismatch
from checks.pipeline.outcome import Outcome
from checks.pipeline.inputs import InputsCache
from checks.store.references import ReferenceStore
from checks.spec import expected_exception

WRONG_MARGIN = 10.0
CORRECT_MARGIN = 0.1


@lru_cache(maxsize=None)
def _course() -> Course:
    """One course per test process: building it parses every day's solution file (0.1 s), which `checks.grade`
    does on every call not given a course."""
    return Course.default()


@lru_cache(maxsize=None)
def _env(device: str) -> Env:
    return Env(device, _course().load_model_function())


@lru_cache(maxsize=None)
def _inputs(device: str) -> InputsCache:
    """Each case built once on `_env(device)`, every call given fresh copies (as `checks.grade` does)."""
    return InputsCache()


@lru_cache(maxsize=None)
def _store(day_number: int) -> ReferenceStore:
    return ReferenceStore(_course().day(day_number))


def built_inputs(exercise: str, case: str, device: str = "cpu") -> tuple[dict[str, Any], Any]:
    """The inputs of one case, and its stored reference output."""
    day, check = _course().find(exercise)
    env = _env(device)
    built = _inputs(device).build(env, check, case)
    return built.inputs, _store(day.number).expected(exercise, case, built.fingerprint)


def output_margin(actual: Any, expected: Any, exercise: str) -> float:
    """The margin of an output against a stored reference, under the exercise's check."""
    _, check = _course().find(exercise)
    exception = expected_raise(expected)
    if exception is not None:
        return 0.0 if isinstance(actual, Raised) and exception in actual.names else math.inf
    if isinstance(actual, Raised):
        return math.inf
    verdict = (agreement(actual, expected, check.min_agreement) if check.min_agreement is not None
               else compare(actual, expected, atol=check.atol, rtol=check.rtol, unordered=check.unordered))
    if verdict.passed and check.exact_types and type_mismatch(actual, expected):
        return math.inf
    return verdict.margin


# the outputs of the last `grade` call, per case in the order graded: (function, exercise, device, outputs)
_graded: tuple[Callable[..., Any], str, str, dict[str, tuple[bool, Any]]] | None = None


def grade(function: Callable[..., Any], *, name: str | None = None, device: str | None = None) -> Outcome:
    """`checks.grade`, keeping what `function` returned (or raised) on each case it was called on, so that
    `case_margin` and `margins` judge those outputs instead of building the inputs and calling it again. A check with
    a random-draw contract calls the function several times per case: nothing is kept, its margins are recomputed."""
    global _graded
    from checks.pipeline.grading import default_device

    exercise = name or function.__name__
    _, check = _course().find(exercise)
    device = device or default_device()
    _graded = None
    if check.contract is not None:
        return checks.grade(function, name=exercise, device=device, course=_course())
    cases = iter(check.cases)  # grading calls the function once per case, in order, until one fails
    outputs: dict[str, tuple[bool, Any]] = {}

    @functools.wraps(function)
    def recorded(*args: Any, **kwargs: Any) -> Any:
        case = next(cases, None)
        try:
            output = function(*args, **kwargs)
        except Exception as error:
            if case is not None:
                outputs[case] = (False, error)
            raise
        if case is not None:
            outputs[case] = (True, snapshot(output))
        return output

    outcome = checks.grade(recorded, name=exercise, device=device, course=_course())
    _graded = (function, exercise, device, outputs)
    return outcome


def _recorded_margin(function: Callable[..., Any], exercise: str, case: str, device: str) -> float | None:
    """The margin of the output `grade` recorded for this function, exercise, case and device, or None."""
    if _graded is None or _graded[:3] != (function, exercise, device) or case not in _graded[3]:
        return None
    day, check = _course().find(exercise)
    store = _store(day.number)
    store._load()  # the grading that recorded the output found the reference fresh
    expected = store._outputs[exercise][case]
    returned, output = _graded[3][case]
    if not returned:
        error = output
        if expected_exception(check.cases[case]) is None or isinstance(error, NotImplementedError):
            return math.inf
        output = Raised(tuple(cls.__name__ for cls in type(error).__mro__ if issubclass(cls, BaseException)),
                        str(error))
    return output_margin(output, expected, exercise)


def case_margin(function: Callable[..., Any], exercise: str, case: str, device: str = "cpu") -> float:
    """The margin of `function`'s output on one case (inf when it raises where a value is expected). A check with a
    random-draw contract has no tolerance to measure against: 0 when the contract holds, inf when it is broken. From
    the output the last `grade(function)` recorded, else by building the inputs and calling it."""
    recorded = _recorded_margin(function, exercise, case, device)
    if recorded is not None:
        return recorded
    _, check = _course().find(exercise)
    inputs, expected = built_inputs(exercise, case, device)
    env = _env(device)
    env.prepare()
    facts = case_facts(check, inputs)
    try:
        actual = graded_callable(function, check, case)(**inputs)
    except Exception:
        return math.inf
    finally:
        env.audit()
    if check.contract is not None and expected_raise(expected) is None:
        return math.inf if contract_verdict(check.contract, actual, facts, case, exercise) else 0.0
    return output_margin(actual, expected, exercise)


def is_clear_rejection(margin: float) -> bool:
    """Whether a wrong implementation's failing case was rejected clearly: for a broken contract on values within
    tolerance (margin <= 1: a materialised product, a mutated input, a dtype), or for values wrong by at least
    WRONG_MARGIN. A rejection in between would hang on rounding."""
    return margin <= 1 or margin >= WRONG_MARGIN


def margins(function: Callable[..., Any], exercise: str, device: str = "cpu") -> dict[str, float]:
    """The margin on every case of the exercise's check."""
    _, check = _course().find(exercise)
    return {case: case_margin(function, exercise, case, device) for case in check.cases}


def all_hints(outcome: Any) -> str:
    """Every tier of the course's hints for the exercise of `outcome` (what a learner can ask for), one per line."""
    _, check = _course().find(outcome.exercise)
    return "\n".join(check.hints) or outcome.hint
