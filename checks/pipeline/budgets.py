"""Budgets of forward passes: for exercises whose point is batching, a bound on how many forward passes of a model one
call may run (`Check.forward_passes`).

The count is kept by the grader, outside the learner's code: while the exercise runs, `HookedTransformer.forward` is
replaced at the class level by a wrapper that counts every call (however it is reached: `model(...)`,
`run_with_cache`, `run_with_hooks`, `model.forward`), then restored. Removing hooks or resetting the model does not
touch it; code that replaces the class's `forward` itself is caught (the exercise fails saying so). Like the other
audits made in the worker, it can be defeated by code that rewrites the grader's own objects: a budget checks how an
answer was computed, while the answer itself is still judged in the supervisor.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

STOP_FACTOR = 4  # a call that runs this many times its budget is stopped there (it would only run into its time limit)


class BudgetExceeded(BaseException):
    """Raised in a forward pass far beyond the budget. A BaseException, so that `except Exception` in the learner's
    code does not swallow it; grading turns it into the budget's message."""


class ForwardPasses:
    """A context manager counting forward passes of every HookedTransformer while it is active (only when
    `budget` is set): `count`, and `complaint(name)` once it has exited."""

    def __init__(self, budget: int | None) -> None:
        self.budget = budget
        self.count = 0
        self.replaced = False
        self._cls: Any = None
        self._original: Any = None
        self._wrapper: Any = None

    def __enter__(self) -> "ForwardPasses":
        if self.budget is None:
            return self
        from transformer_lens import HookedTransformer

        original = HookedTransformer.__dict__["forward"]

        budget = self.budget

        def forward(model: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            if self.count > STOP_FACTOR * budget:
                raise BudgetExceeded(f"more than {STOP_FACTOR * budget} forward passes")
            return original(model, *args, **kwargs)

        forward.__name__, forward.__qualname__, forward.__doc__ = "forward", original.__qualname__, original.__doc__
        self._cls, self._original, self._wrapper = HookedTransformer, original, forward
        HookedTransformer.forward = forward
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._cls is not None:
            self.replaced = self._cls.__dict__.get("forward") is not self._wrapper
            self._cls.forward = self._original
            self._cls = None

    def complaint(self, name: str) -> str | None:
        """Why the call broke its budget, in a sentence that names the count and the budget; None when it kept it."""
        if self.budget is None:
            return None
        if self.replaced:
            return (f"{name} replaced HookedTransformer.forward, through which grading counts forward passes: run the "
                    "model as it is (its forward was restored).")
        if self.count > self.budget:
            passes = "one forward pass" if self.budget == 1 else f"at most {self.budget} forward passes"
            ran = (f"ran {self.count}" if self.count <= STOP_FACTOR * self.budget
                   else f"was stopped at {STOP_FACTOR * self.budget}")
            advice = ("read everything you need from that one run (one cache, or hooks on every layer involved)"
                      if self.budget == 1 else "the point is to batch the work (stack the runs along the batch "
                      "dimension) rather than loop over runs")
            return f"{name} {ran} forward passes of the model, and this exercise allows {passes}: {advice}."
        return None
