"""What a check spec is: the inputs an exercise is graded on and how its output is compared.

Each day has a module `checks/specs/dayN.py` that defines `DAY = N` and `CHECKS: list[Check]`, one per exercise of
the day's single source `solutions/dayN_<topic>.py`, in teaching order (the day's module name comes from that file; a
spec may still say `MODULE = "dayN_<topic>"`, which must then agree). Every exercise has a check and every check an
exercise, or the course refuses to grade (see `checks.course`).

An exercise is graded on several named input cases, chosen so that every parameter and model dimension it reads
takes different values between cases (a value hard-coded from one case then fails another). It passes only when
every case passes; a failure names the case. A case wrapped in `Raises` is one on which the docstring says the
exercise raises an exception: there the exception is the expected outcome, and returning a value fails.

A check never calls the solution itself: the reference output is computed once by
`python -m checks references --day N` and stored under `checks/references/`; grading runs only the learner's function.

This module is the day specs' whole vocabulary (with `checks.specs.common`, the models and shared batches): a spec
imports from here and nowhere else in `checks`, so the grader's own layout can change without touching the specs.
Besides what is defined here: random-draw contracts (`Contract`, `Choice`, `uniform_choice_test`,
`with_fresh_generators`, `with_seeded_generators`, from `checks.judging.contracts`) and the cache audit
(`watch_caching`, `cache_complaint`, from `checks.pipeline.audits`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

import torch

from checks.judging.contracts import (Choice, Contract, uniform_choice_test, with_fresh_generators,
                                      with_seeded_generators)
from checks.pipeline.audits import cache_complaint, watch_caching

__all__ = ["Check", "Choice", "Contract", "GradingEnv", "InputsBuilder", "Mistake", "Raises", "Validator",
           "cache_complaint", "expected_exception", "uniform_choice_test", "watch_caching", "with_fresh_generators",
           "with_seeded_generators"]

if TYPE_CHECKING:  # the grading supervisor never imports transformer_lens (only its workers do)
    from transformer_lens import HookedTransformer


class GradingEnv(Protocol):
    """What an inputs builder may use. The grader provides it (see `checks.pipeline.env`)."""

    device: torch.device

    def model(self, name: str) -> HookedTransformer:
        """A pristine zoo model (hooks removed, weights verified), shared across exercises of a session."""
        ...

    def generator(self, seed: int) -> torch.Generator:
        """A fresh CPU `torch.Generator` seeded with `seed`: inputs never depend on global RNG state."""
        ...


InputsBuilder = Callable[[GradingEnv], dict[str, Any]]
Validator = Callable[[Any, dict[str, Any]], "str | None"]


@dataclass(frozen=True)
class Mistake:
    """A mistake learners make on one exercise, declared by its check so that the grader can name it.

    `computed_by` names the function of `solutions/oracles/dayN.py` that computes what the mistaken function returns
    on a case's inputs (with plain torch, never solution code). It runs when the references are built, and its
    output is stored with them; when a failing output equals that stored output (under the check's tolerances),
    `message` is added to the diagnosis, e.g. "this is the loss read one position late". The code lives beside the
    solutions, not here, because a learner distribution ships the specs: a near-answer must not ship with them. A
    test makes each mistake and asserts its message.
    """

    message: str
    computed_by: str

    def __post_init__(self) -> None:
        if not isinstance(self.computed_by, str) or not self.computed_by.isidentifier():
            raise TypeError(f"Mistake.computed_by must name a function of solutions/oracles, got {self.computed_by!r}")


@dataclass(frozen=True)
class Raises:
    """An input case on which the exercise's docstring promises an exception (e.g. a ValueError for a layer out of
    range): its expected outcome is that exception, and its reference records the solution raising it."""

    exception: type[Exception]
    inputs: InputsBuilder

    def __call__(self, env: GradingEnv) -> dict[str, Any]:
        return self.inputs(env)


def expected_exception(case: InputsBuilder) -> type[Exception] | None:
    """The exception a case expects (see `Raises`), or None when it expects a value."""
    return case.exception if isinstance(case, Raises) else None


@dataclass(frozen=True)
class Check:
    """How one exercise is graded.

    name: the exercise function's name in the day module (unique across the course).
    cases: label -> inputs builder. Each builder makes the keyword arguments of one call, deterministically, from
        the grading env; the label says what the case varies (e.g. "batch 3, half_len 7, layer 0").
    atol, rtol: tolerances for floating-point tensors and numbers (element-wise |a - e| <= atol + rtol * |e|).
    unordered: compare sequences as multisets (order does not matter).
    hints: the course's hints, in tiers a learner asks for one at a time: (1) a nudge, a question or the concept to
        revisit, no code; (2) the approach in words; (3) the near-code recipe.
    hint: (older form) one sentence shown on failure; a check with `hints` gets its first tier here.
    validate: optional extra check on (learner output, inputs); returns a message when it fails, else None. Used
        for what the output alone cannot show (e.g. "use hooks, not a cache"); it runs after the comparison passes.
    expected_from: where more than one output is right (a learner's own predictor of a model's behaviour), the
        reference is what this function of `solutions/oracles/dayN.py` (named here) computes from a case's inputs
        when the references are built (e.g. the model's behaviour), not the solution's output; the solution must
        pass against it like any learner. Use with `min_agreement`.
    min_agreement: judge integer outputs by agreement (`checks.judging.compare.agreement`): at least this fraction of
        the elements equal the reference's in every column of the last dimension. Judged in the supervisor, on plain
        data, as every comparison is.
    mistakes: known mistakes (`Mistake`) whose message is added when a failing output matches one of them.
    exact_types: the output's types must be the reference's exactly, not only its values: a tensor's dtype (int64
        is not int32, float64 not float32) and a tensor where the reference has one, a Python number where it has
        one. Set it where the docstring names the type or dtype.
    timeout_s: wall-clock budget for one call of the learner's function.
    contract: for an exercise that draws at random, judge each case by properties (validity, reproducibility, and a
        statistical test of the draws over many generator seeds) instead of the solution's exact draw: see
        `checks.judging.contracts`. Raises cases are still judged by their exception.
    forward_passes: the most forward passes of a model one call may run (counted on `HookedTransformer.forward`,
        outside the learner's code: see `checks.pipeline.budgets`), for exercises whose point is batching; None: no
        bound.
    axes: names of a tensor output's dimensions, for messages (e.g. ("layer", "position", "head")): an index
        [3, 13, 3] then also reads "(head a3.h3 at position 13)".
    """

    name: str
    cases: Mapping[str, InputsBuilder] = field(hash=False)
    atol: float = 1e-4
    rtol: float = 1e-3
    unordered: bool = False
    exact_types: bool = False
    hint: str = ""
    hints: tuple[str, ...] = ()
    validate: Validator | None = None
    expected_from: str | None = None
    min_agreement: float | None = None
    mistakes: tuple[Mistake, ...] = ()
    timeout_s: float = 60.0
    contract: "Contract | None" = field(default=None, hash=False)
    forward_passes: int | None = None
    axes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.cases, Mapping) or not self.cases:
            raise TypeError(f"check {self.name!r}: cases must be a non-empty dict of label -> inputs builder")
        for label, builder in self.cases.items():
            if not isinstance(label, str) or not label or not callable(builder):
                raise TypeError(f"check {self.name!r}: case {label!r} must map a non-empty label to a callable")
        if self.expected_from is not None and not (isinstance(self.expected_from, str)
                                                   and self.expected_from.isidentifier()):
            raise TypeError(f"check {self.name!r}: expected_from must name a function of solutions/oracles")
        if not all(isinstance(mistake, Mistake) for mistake in self.mistakes):
            raise TypeError(f"check {self.name!r}: mistakes must be checks.spec.Mistake")
        object.__setattr__(self, "cases", dict(self.cases))
        object.__setattr__(self, "hints", tuple(self.hints) or ((self.hint,) if self.hint else ()))
        if self.hints and not self.hint:
            object.__setattr__(self, "hint", self.hints[0])
