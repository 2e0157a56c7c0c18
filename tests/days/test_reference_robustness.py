"""The stored references do not depend on how the numbers were computed: the solutions, run in float64, with 1 or 2
CPU threads, or on inputs whose activations were computed in other batch splits, stay far inside every check's
tolerance (margin, i.e. error over tolerance, at most 0.1) on every input case of Days 1 and 4.

No GPU is lent to this project, so this is the evidence, on CPU, that a reference built on one machine grades another:
float64 bounds the rounding of any float32 computation (a GPU's included), threads change the order of reductions,
and batch splits change the blocking of the matrix products behind cached activations and logits.
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from typing import Any, Iterator

import pytest
import torch
from transformer_lens import ActivationCache, HookedTransformer

from checks.pipeline.learner import load_module
from checks.spec import expected_exception
from margins import CORRECT_MARGIN, _course, _env, built_inputs, output_margin

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DAYS = (1, 4)


def _cases() -> list[tuple[int, str, str]]:
    course = _course()
    return [(number, check.name, case) for number in DAYS for check in course.day(number).checks
            for case, builder in check.cases.items() if expected_exception(builder) is None]


def _solution(number: int, name: str) -> Any:
    return getattr(load_module(_course().day(number).solution_path), name)


# ---- float64 ---------------------------------------------------------------------------------------------------------
_DOUBLE_MODELS: dict[int, HookedTransformer] = {}


def _in_float64(value: Any) -> Any:
    """`value` with every floating-point tensor, cache and model in float64 (a model is copied once)."""
    if isinstance(value, HookedTransformer):
        if id(value) not in _DOUBLE_MODELS:
            double = copy.copy(value) if hasattr(value, "caching_calls") else value  # keep a watcher's class
            _DOUBLE_MODELS[id(value)] = copy.deepcopy(double).to(torch.float64, print_details=False)
        return _DOUBLE_MODELS[id(value)]
    if isinstance(value, torch.Tensor):
        return value.to(torch.float64) if value.dtype.is_floating_point else value
    if isinstance(value, ActivationCache):
        return ActivationCache({k: _in_float64(v) for k, v in value.cache_dict.items()}, _in_float64(value.model))
    if isinstance(value, dict):
        return {key: _in_float64(item) for key, item in value.items()}
    return value


# ---- batch splits ----------------------------------------------------------------------------------------------------
class _SplitBatchModel(HookedTransformer):
    """A view of a zoo model whose forward passes and caches are computed in two uneven batch chunks."""

    def forward(self, tokens: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.shape[0] < 2:
            return super().forward(tokens, *args, **kwargs)
        cut = tokens.shape[0] // 3 + 1
        return torch.cat([super(_SplitBatchModel, self).forward(part, *args, **kwargs)
                          for part in (tokens[:cut], tokens[cut:])])

    def run_with_cache(self, tokens: Any, *args: Any, **kwargs: Any) -> Any:
        plain = copy.copy(self)
        plain.__class__ = HookedTransformer  # one forward pass per chunk, or the caching hooks keep the last only
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.shape[0] < 2:
            return plain.run_with_cache(tokens, *args, **kwargs)
        cut = tokens.shape[0] // 3 + 1
        runs = [plain.run_with_cache(part, *args, **kwargs) for part in (tokens[:cut], tokens[cut:])]
        logits = torch.cat([run[0] for run in runs])
        entries = {key: torch.cat([run[1].cache_dict[key] for run in runs]) for key in runs[0][1].cache_dict}
        return logits, ActivationCache(entries, self)


class _SplitEnv:
    """The grading env, except that models hand out batch-splitting views to the inputs builders."""

    def __init__(self, env: Any) -> None:
        self._env = env
        self.device = env.device
        self.views: dict[int, HookedTransformer] = {}

    def model(self, name: str) -> HookedTransformer:
        original = self._env.model(name)
        view = copy.copy(original)
        view.__class__ = _SplitBatchModel
        self.views[id(view)] = original
        return view

    def generator(self, seed: int) -> torch.Generator:
        return self._env.generator(seed)


def _split_inputs(number: int, name: str, case: str) -> dict[str, Any]:
    """The case's inputs with activations computed in batch splits; models in them are the plain ones again."""
    check = _course().day(number).check(name)
    split_env = _SplitEnv(_env("cpu"))
    inputs = check.cases[case](split_env)

    def plain(value: Any) -> Any:
        if isinstance(value, _SplitBatchModel):
            return split_env.views[id(value)]
        if isinstance(value, ActivationCache):
            return ActivationCache(value.cache_dict, plain(value.model))
        return value

    return {key: plain(value) for key, value in inputs.items()}


@contextmanager
def _threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fresh(inputs: dict[str, Any]) -> dict[str, Any]:
    """`inputs` with every generator replaced by a copy in the same state (each run draws the same numbers)."""
    def copied(value: Any) -> Any:
        if isinstance(value, torch.Generator):
            return torch.Generator(device=value.device).set_state(value.get_state())
        return value

    return {key: copied(value) for key, value in inputs.items()}


def _margin_of(number: int, name: str, inputs: dict[str, Any], expected: Any) -> float:
    inputs = _fresh(inputs)
    env = _env("cpu")
    env.prepare()
    try:
        output = _solution(number, name)(**inputs)
    finally:
        env.audit()
    return output_margin(_as_reference_types(output, expected), expected, name)


def _as_reference_types(output: Any, expected: Any) -> Any:
    """float64 results in the reference's float dtype, so that only their values are compared."""
    if isinstance(output, torch.Tensor) and isinstance(expected, torch.Tensor) and output.dtype.is_floating_point:
        return output.to(expected.dtype)
    if isinstance(output, (list, tuple)) and isinstance(expected, (list, tuple)):
        return type(output)(_as_reference_types(o, e) for o, e in zip(output, expected))
    if isinstance(output, dict) and isinstance(expected, dict):
        return {k: _as_reference_types(v, expected.get(k)) for k, v in output.items()}
    return output


VARIANTS = ("float64", "1 thread", "2 threads", "batch split")


@pytest.mark.parametrize("number, name, case", _cases(), ids=[f"{n}-{c}" for _, n, c in _cases()])
def test_solution_stays_far_inside_the_tolerance(number, name, case):
    inputs, expected = built_inputs(name, case)
    found = {
        "float64": _margin_of(number, name, _in_float64(inputs), expected),
        "1 thread": _run_with_threads(1, number, name, inputs, expected),
        "2 threads": _run_with_threads(2, number, name, inputs, expected),
        "batch split": _margin_of(number, name, _split_inputs(number, name, case), expected),
    }
    assert all(math.isfinite(m) and m <= CORRECT_MARGIN for m in found.values()), found


def _run_with_threads(count: int, number: int, name: str, inputs: dict[str, Any], expected: Any) -> float:
    with _threads(count):
        return _margin_of(number, name, inputs, expected)
