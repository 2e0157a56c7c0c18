"""Judging one output: compare it with the reference, hold it to the docstring's contract, run the check's
validator, and find inputs changed in place.

Plain functions on plain data; they never call the learner's function (`catching` only wraps it, for the caller to
call). A rejection is raised as `Rejection`, with the status it ends in, the diagnosis and the course's hint kept
apart (a notebook shows the hint only on request).

The contract: where a check sets `exact_types`, the output's types and dtypes must be the reference's; on a case
that expects an exception (`checks.spec.Raises`), the exception is the output (`Raised`), stored in the references
as `{RAISED_KEY: "ValueError"}`, and returning a value instead fails.
"""

from __future__ import annotations

import functools
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from checks.judging.compare import agreement, compare
from checks.pipeline.env import transformer_lens_type
from checks.pipeline.outcome import Status
from checks.spec import Check, InputsBuilder, expected_exception

RAISED_KEY = "raised"


@dataclass(frozen=True)
class Raised:
    """What a function did on a case that expects an exception and got one: the exception's class names (its own
    first, then its bases) and message."""

    names: tuple[str, ...]
    message: str

    def stored(self) -> dict[str, str]:
        """The form kept in the references."""
        return {RAISED_KEY: self.names[0]}


def catching(function: Callable[..., Any], case: InputsBuilder) -> Callable[..., Any]:
    """`function` itself, or, when `case` expects an exception, a wrapper that returns whatever exception it raises
    as `Raised`, for the judge to hold against the expected one (NotImplementedError still propagates: a stub is
    "not started")."""
    if expected_exception(case) is None:
        return function

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except NotImplementedError:
            raise
        except Exception as error:
            names = tuple(cls.__name__ for cls in type(error).__mro__ if issubclass(cls, BaseException))
            return Raised(names, str(error))

    return call


def graded_callable(function: Callable[..., Any], check: Check, case: str) -> Callable[..., Any]:
    """What grading calls on one case: `function` itself; on a case that expects an exception, `catching` it; for a
    check with a contract (`checks.judging.contracts`), the contract's runner (the call, the same call again, the
    trials)."""
    if check.contract is not None and expected_exception(check.cases[case]) is None:
        from checks.judging.contracts import contract_runner

        return contract_runner(function, check.contract, case)
    return catching(function, check.cases[case])


def case_facts(check: Check, inputs: dict[str, Any]) -> Any:
    """The plain data a contract's judge needs about a case's inputs (None without a contract). Computed on pristine
    inputs before any learner code runs."""
    return check.contract.facts(inputs) if check.contract is not None else None


def expected_raise(expected: Any) -> str | None:
    """The exception name a stored reference expects, or None when it expects a value."""
    if isinstance(expected, dict) and set(expected) == {RAISED_KEY} and isinstance(expected[RAISED_KEY], str):
        return expected[RAISED_KEY]
    return None


class Rejection(Exception):
    """Ends a grading call early with a status, its message (the diagnosis) and, where useful, the course hint."""

    def __init__(self, status: Status | str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status = Status(status)
        self.message = message
        self.hint = hint


def judge(actual: Any, expected: Any, check: Check, inputs: dict[str, Any], *,
          mistakes: Mapping[str, Any] | None = None, facts: Any = None, case: str = "") -> None:
    """Compare with the reference, hold the output to the contract, then run the check's validator; raise a
    Rejection unless all pass. A failed comparison's message ends with the messages of the check's mistakes whose
    stored outputs on this case (`mistakes`, see `diagnose`) the output matches. A check with a random-draw contract
    is judged by its properties instead of the reference (`facts`: the plain data about the inputs it needs; `case`:
    the case's label)."""
    exception = expected_raise(expected)
    if exception is not None:
        if isinstance(actual, Raised) and exception in actual.names:
            return
        did = (f"raised {actual.names[0]} ({actual.message[:120]})" if isinstance(actual, Raised)
               else f"returned {_describe(actual)}")
        raise Rejection(Status.FAILED, f"on these inputs the docstring of {check.name} says it raises {exception}, "
                        f"but it {did}: check the arguments as the docstring says and `raise {exception}(...)` "
                        "when they are invalid.", check.hint)
    if check.contract is not None:
        from checks.judging.contracts import contract_verdict

        try:
            complaint = contract_verdict(check.contract, actual, facts, case, check.name)
        except Exception:  # an output so odd that judging it fails: a failure of the output, said plainly
            complaint = (f"your output could not be judged ({traceback.format_exc(limit=0).strip()}); it should be "
                         f"what the docstring of {check.name} describes")
        if complaint:
            raise Rejection(Status.FAILED, complaint, check.hint)
        return
    try:
        verdict = (agreement(actual, expected, check.min_agreement) if check.min_agreement is not None
                   else compare(actual, expected, atol=check.atol, rtol=check.rtol, unordered=check.unordered,
                                axes=check.axes))
    except Exception as error:  # an output so odd that comparing it fails
        raise Rejection(Status.FAILED, f"your output could not be compared with the reference "
                        f"({type(error).__name__}: {error}); it should be a {type(expected).__name__}",
                        check.hint) from None
    if not verdict.passed:
        raise Rejection(Status.FAILED, f"{verdict.message} {diagnose(check, actual, mistakes or {})}".strip(),
                        check.hint)
    if check.exact_types:
        broken = type_mismatch(actual, expected)
        if broken:
            raise Rejection(Status.FAILED, f"the values are right, but {broken}", check.hint)
    complaint, status = validation_complaint(check, actual, inputs)
    if complaint:
        raise Rejection(status, complaint, check.hint if status is Status.FAILED else "")


def validation_complaint(check: Check, actual: Any, inputs: dict[str, Any]) -> tuple[str | None, Status]:
    """What the check's validator says of `actual` (None: nothing, or no validator), and whose fault it is: FAILED,
    or ERROR when the validator itself crashed (a bug in the course). Run where the inputs are: in process, or in
    the worker, which sends the complaint to its supervisor."""
    if check.validate is None:
        return None, Status.FAILED
    try:
        return check.validate(actual, inputs), Status.FAILED
    except Exception:
        return (f"the validator of {check.name!r} crashed; this is a bug in the course:\n{traceback.format_exc()}",
                Status.ERROR)


def diagnose(check: Check, actual: Any, mistakes: Mapping[str, Any]) -> str:
    """The messages of the check's declared mistakes (`checks.spec.Mistake`) that `actual` matches, as one string
    ("" when none does). `mistakes`: each mistake's output on the case, by the function that computed it, stored with
    the references (`ReferenceStore.mistakes`); one without a stored output on the case is skipped."""
    found = []
    for mistake in check.mistakes:
        if mistake.computed_by not in mistakes:
            continue
        try:
            mistaken = mistakes[mistake.computed_by]
            if compare(actual, mistaken, atol=check.atol, rtol=check.rtol, unordered=check.unordered).passed:
                found.append(mistake.message)
        except Exception:  # noqa: BLE001 - a diagnosis is a courtesy; it never decides a verdict
            continue
    return " ".join(found)


def type_mismatch(actual: Any, expected: Any, path: str = "output") -> str | None:
    """Where `actual`'s types differ from `expected`'s (tensor or Python number, exact dtype, exact Python type),
    as a sentence, or None. Containers are walked (lists and tuples alike); their own types are not compared."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(actual, torch.Tensor):
            return (f"{path} is {_describe(actual)} where the docstring promises a tensor of dtype {expected.dtype}: "
                    "return the tensor itself (no .item() or .tolist()).")
        if actual.dtype != expected.dtype:
            return (f"{path} has dtype {actual.dtype}, and the docstring promises {expected.dtype}: convert with "
                    f".to({expected.dtype}) or compute in that dtype.")
        return None
    if isinstance(expected, (bool, int, float)):
        if type(actual) is not type(expected):
            advice = " (call .item() on a 0-d tensor)" if isinstance(actual, torch.Tensor) else ""
            return (f"{path} is {_describe(actual)} where the docstring promises a Python "
                    f"{type(expected).__name__}{advice}.")
        return None
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in expected:
            if key in actual:
                found = type_mismatch(actual[key], expected[key], f"{path}[{key!r}]")
                if found:
                    return found
    elif isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        for i, (item, expected_item) in enumerate(zip(actual, expected)):
            found = type_mismatch(item, expected_item, f"{path}[{i}]")
            if found:
                return found
    return None


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, Raised):
        return f"raised {value.names[0]}"
    text = repr(value)
    return f"a {type(value).__name__} ({text[:40]}{'...' if len(text) > 40 else ''})"


# ---- input mutation --------------------------------------------------------------------------------------------------
def snapshot(value: Any) -> Any:
    """A copy of `value` deep enough to detect in-place changes to tensors and containers (models are audited by
    the env, other objects are taken as they are). An ActivationCache is saved as its entries: adding derived
    entries (`stack_head_results`, `accumulated_resid`, ... do) is not a change, editing or removing one is."""
    ActivationCache = transformer_lens_type("ActivationCache")  # noqa: N806

    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, ActivationCache):
        return {key: tensor.detach().clone() for key, tensor in value.cache_dict.items()}
    if isinstance(value, dict):
        return {key: snapshot(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [snapshot(item) for item in value]
    return value


def first_difference(value: Any, saved: Any, path: str) -> str | None:
    """The path of the first part of `value` that no longer equals its snapshot, or None."""
    ActivationCache = transformer_lens_type("ActivationCache")  # noqa: N806

    if isinstance(value, torch.Tensor):
        same = (value.shape == saved.shape and value.dtype == saved.dtype
                and torch.equal(value.detach().isnan(), saved.isnan())
                and torch.equal(value.detach().nan_to_num(), saved.nan_to_num()))
        return None if same else path
    if isinstance(value, ActivationCache):
        for key in saved:
            if key not in value.cache_dict:
                return f"{path}[{key!r}]" if path else str(key)
        value = {key: value.cache_dict[key] for key in saved}
    if isinstance(value, dict):
        if set(value) != set(saved):
            return path
        for key in value:
            found = first_difference(value[key], saved[key], f"{path}[{key!r}]" if path else str(key))
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != len(saved):
            return path
        for i, (item, saved_item) in enumerate(zip(value, saved)):
            found = first_difference(item, saved_item, f"{path}[{i}]")
            if found is not None:
                return found
    return None
