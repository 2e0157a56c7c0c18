"""What a check spec is: the inputs an exercise is graded on and how its output is compared.

Each day has a module `checks/specs/dayN.py` that defines `DAY = N`, `MODULE = "dayN_<topic>"` (the module name in
`solutions/` and `curriculum/`) and `CHECKS: list[Check]`, one per graded exercise, in teaching order.

An exercise is graded on several named input cases, chosen so that every parameter and model dimension it reads
takes different values between cases (a value hard-coded from one case then fails another). It passes only when
every case passes; a failure names the case.

A check never calls the solution itself: the reference output is computed once by
`python -m checks references --day N` and stored under `checks/references/`; grading runs only the learner's function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import torch
from transformer_lens import HookedTransformer


class GradingEnv(Protocol):
    """What an inputs builder may use. The grader provides it (see `checks.env`)."""

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
class Check:
    """How one exercise is graded.

    name: the exercise function's name in the day module (unique across the course).
    cases: label -> inputs builder. Each builder makes the keyword arguments of one call, deterministically, from
        the grading env; the label says what the case varies (e.g. "batch 3, half_len 7, layer 0").
    atol, rtol: tolerances for floating-point tensors and numbers (element-wise |a - e| <= atol + rtol * |e|).
    unordered: compare sequences as multisets (order does not matter).
    hint: one sentence shown on failure, pointing at the usual mistake.
    validate: optional extra check on (learner output, inputs); returns a message when it fails, else None. Used
        for what the output alone cannot show (e.g. "use hooks, not a cache"); it runs after the comparison passes.
    timeout_s: wall-clock budget for one call of the learner's function.
    """

    name: str
    cases: Mapping[str, InputsBuilder] = field(hash=False)
    atol: float = 1e-4
    rtol: float = 1e-3
    unordered: bool = False
    hint: str = ""
    validate: Validator | None = None
    timeout_s: float = 60.0
    tags: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not isinstance(self.cases, Mapping) or not self.cases:
            raise TypeError(f"check {self.name!r}: cases must be a non-empty dict of label -> inputs builder")
        for label, builder in self.cases.items():
            if not isinstance(label, str) or not label or not callable(builder):
                raise TypeError(f"check {self.name!r}: case {label!r} must map a non-empty label to a callable")
        object.__setattr__(self, "cases", dict(self.cases))
