"""Grading for the course: `check(fn)` in a notebook, `pytest --day N` in a terminal.

    from checks import check
    check(induction_scores)             # shows the verdict once: passed, or what differs (where, by how much)
    check(induction_scores, hint=True)  # the same, plus the course's first hint (a nudge)
    check(induction_scores, hint=3)     # hints 1 to 3: the nudge, the approach, the recipe

`grade(fn)` returns the `Outcome` without showing anything. Both find the exercise by the function's name across
all days (pass `name=` to grade a function under another name), and run it with autograd on, as `pytest --day N`
does, whatever the notebook switched off. This module stays light: torch and transformer_lens load on the first
grading call, not on `import checks`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from checks.course import Course
    from checks.pipeline.grading import Grader
    from checks.pipeline.outcome import Outcome

__all__ = ["check", "grade"]

_graders: dict[tuple[Any, str], "Grader"] = {}


def grade(fn: Callable[..., Any], *, name: str | None = None, device: str | None = None,
          course: "Course | None" = None) -> "Outcome":
    """Grade `fn` against the stored reference of the exercise called `name` (default: `fn.__name__`).

    device: "cpu" or "cuda" (default: CUDA when present). course: which course to look in (default: this one).
    Models are loaded once per (course, device) and reused by later calls.
    """
    from checks.course import Course
    from checks.pipeline.grading import Grader, default_device

    course = course or Course.default()
    exercise = name or getattr(fn, "__name__", None)
    if not exercise:
        raise TypeError(f"cannot tell which exercise {fn!r} is: pass name='...'")
    day, spec = course.find(exercise)
    device = device or default_device()
    key = (course, device)
    if key not in _graders:
        _graders[key] = Grader(course, device)
    import torch

    with torch.enable_grad():  # the state `pytest --day N` grades in, whatever the notebook set
        return _graders[key].grade_function(fn, day, spec)


def check(fn: Callable[..., Any], *, hint: bool | int = False, name: str | None = None, device: str | None = None,
          course: "Course | None" = None) -> None:
    """Grade `fn` (see `grade`) and print the verdict: passed, or the diagnosis of what differs; with `hint=N`, also
    the course's hints 1 to N (`hint=True` is 1: see `checks.judging.hints`). Returns None, so a notebook shows the
    verdict once (use `grade` for the Outcome)."""
    from checks.judging.hints import tiered_message

    outcome = grade(fn, name=name, device=device, course=course)
    exercise = outcome.exercise
    call = exercise if name is None else f"{exercise}, name={name!r}"
    print(f"{exercise}: {outcome.status.value.upper()} ({outcome.duration_s:.2f} s)")
    from checks.course import Course

    hints = (course or Course.default()).find(exercise)[1].hints
    text = tiered_message(outcome, hint=hint, hints=hints,
                          ask_for_hint=f"Stuck? check({call}, hint=1) adds the course's first hint (up to "
                                       f"hint={len(hints)}).")
    if text:
        print(text)
