"""The course's pytest plugin: `pytest --day N` grades day N (registered through the `pytest11` entry point).

Options (all here): `--day N | 1,2 | all`, `--solutions`, `--learner PATH`, `--device cpu|cuda`, `--grade-json PATH`;
ini options `course_root` and `course_models` say which course to grade (default: this repository and its zoo).

Without `--day` the plugin does nothing and pytest runs the project's own tests. With `--day`, collection is
replaced: one item per exercise (`day1::induction_scores`), nothing from `tests/`. Outcomes map to pytest's:
passed -> passed; failed -> failed (the message says why); not started -> skipped (not a failure, exit code 0);
stale reference and course errors -> error (the course's fault, never the learner's: the message gives the command
that rebuilds the references). The logic lives in `checks.session` and `checks.grading`; hooks stay thin.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from checks.outcome import Status

_SESSION = pytest.StashKey["Any"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("course", "grading the course's exercises")
    group.addoption("--day", metavar="N", help="grade day N; '1,2' for several days, 'all' for every day")
    group.addoption("--solutions", action="store_true", help="grade the reference solutions (solutions/dayN_*.py)")
    group.addoption("--learner", metavar="PATH", type=Path,
                    help="grade this .py module or .ipynb notebook (with several days: a folder of day files)")
    group.addoption("--device", choices=("cpu", "cuda"), help="device to grade on (default: cuda if available)")
    group.addoption("--grade-json", metavar="PATH", type=Path, help="also write the results as JSON to PATH")
    parser.addini("course_root", "folder of the course to grade (default: this repository)", default="")
    parser.addini("course_models", "zoo loader, 'module:function' or 'file.py:function'",
                  default="curriculum.models:load_model")


def pytest_configure(config: pytest.Config) -> None:
    options = ("solutions", "learner", "grade_json")
    if config.getoption("day") is None:
        used = [f"--{name.replace('_', '-')}" for name in options if config.getoption(name)]
        if used:
            raise pytest.UsageError(f"{', '.join(used)} only make sense with --day N")
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from checks.course import Course, CourseError
    from checks.session import GradingSession, parse_days

    device = config.getoption("device")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError("--device cuda: no CUDA device is available here; use --device cpu")
    root = config.getini("course_root")
    base = config.inipath.parent if config.inipath else config.rootpath
    course = Course((base / root).resolve(), config.getini("course_models")) if root else Course.default()
    try:
        grading = GradingSession(course, parse_days(config.getoption("day"), course),
                                 device=device or _default_device(),
                                 solutions=config.getoption("solutions"), learner=config.getoption("learner"))
    except CourseError as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[_SESSION] = grading


def _default_device() -> str:
    from checks.grading import default_device

    return default_device()


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> bool | None:
    grading = session.config.stash.get(_SESSION, None)
    if grading is None:
        return None
    hook = session.config.hook
    items: list[pytest.Item] = []
    for day in grading.days:
        node = DayNode.from_parent(session, name=f"day{day.number}", nodeid=f"day{day.number}", day=day)
        hook.pytest_collectstart(collector=node)
        day_items = node.collect()
        hook.pytest_collectreport(report=pytest.CollectReport(node.nodeid, "passed", None, day_items))
        items.extend(day_items)
    hook.pytest_collection_modifyitems(session=session, config=session.config, items=items)
    session.items = items
    session.testscollected = len(items)
    hook.pytest_collection_finish(session=session)
    return True


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    grading = config.stash.get(_SESSION, None)
    if grading is None or not grading.outcomes:
        return
    terminalreporter.section("course grades")
    for line in grading.table().splitlines():
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    grading = session.config.stash.get(_SESSION, None)
    path = session.config.getoption("grade_json")
    if grading is not None and path is not None:
        grading.write_json(Path(path))


class CourseProblem(Exception):
    """A stale reference or a broken check: reported as a pytest error, not a learner failure."""


class ExerciseFailed(Exception):
    """The learner's function was graded and failed."""


class DayNode(pytest.Collector):
    """The exercises of one day."""

    def __init__(self, *, day: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.day = day

    def collect(self) -> list[pytest.Item]:
        return [ExerciseItem.from_parent(self, name=check.name) for check in self.day.checks]


class ExerciseItem(pytest.Item):
    """One exercise: graded in setup (so a course problem is an error), reported in the call phase."""

    def setup(self) -> None:
        grading = self.config.stash[_SESSION]
        self.outcome = grading.grade(self.parent.day, self.name)
        if self.outcome.status.is_course_problem:
            raise CourseProblem(f"[{self.outcome.status}] {self.outcome.message}")

    def runtest(self) -> None:
        if self.outcome.status is Status.NOT_STARTED:
            pytest.skip(f"not started: {self.outcome.message}")
        if self.outcome.status is Status.FAILED:
            hint = f"\nHint from the course: {self.outcome.hint}" if self.outcome.hint else ""
            raise ExerciseFailed(self.outcome.message + hint)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, (ExerciseFailed, CourseProblem)):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        source = self.config.stash[_SESSION].source(self.parent.day)
        return source or self.path, None, f"day {self.parent.day.number}: {self.name}"
