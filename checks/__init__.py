"""Grading for the course: `check(fn)` in a notebook, `pytest --day N` in a terminal.

    from checks import check
    check(induction_scores)          # prints a verdict, returns an Outcome

`grade(fn)` does the same without printing. Both find the exercise by the function's name across all days (pass
`name=` to grade a function under another name). This module stays light: torch and transformer_lens load on the
first grading call, not on `import checks` (which pytest does on every run through the plugin entry point).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from checks.course import Course
    from checks.outcome import Outcome

__all__ = ["check", "grade"]

_graders: dict[tuple[Any, str], "Grader"] = {}


def grade(fn: Callable[..., Any], *, name: str | None = None, device: str | None = None,
          course: "Course | None" = None) -> "Outcome":
    """Grade `fn` against the stored reference of the exercise called `name` (default: `fn.__name__`).

    device: "cpu" or "cuda" (default: CUDA when present). course: which course to look in (default: this one).
    Models are loaded once per (course, device) and reused by later calls.
    """
    from checks.course import Course
    from checks.grading import Grader, default_device

    course = course or Course.default()
    exercise = name or getattr(fn, "__name__", None)
    if not exercise:
        raise TypeError(f"cannot tell which exercise {fn!r} is: pass name='...'")
    day, spec = course.find(exercise)
    device = device or default_device()
    key = (course, device)
    if key not in _graders:
        _graders[key] = Grader(course, device)
    return _graders[key].grade(fn, day, spec)


def check(fn: Callable[..., Any], *, name: str | None = None, device: str | None = None,
          course: "Course | None" = None) -> "Outcome":
    """Grade `fn` (see `grade`), print a short verdict, and return the Outcome."""
    outcome = grade(fn, name=name, device=device, course=course)
    print(f"{outcome.exercise}: {outcome.status.value.upper()} ({outcome.duration_s:.2f} s)")
    if outcome.message:
        print(outcome.message)
    if outcome.hint:
        print(f"Hint from the course: {outcome.hint}")
    return outcome
