"""The course's pytest plugin: `pytest --day N` grades day N.

pytest loads the entry module `mechinterp_course_pytest` (pytest11), which declares the options (`--day N | 1,2 |
all`, `--solutions`, `--learner PATH`, `--course-device cpu|cuda`, `--course-limits`, `--course-hints`, `--grade-json
PATH`; ini options `course_root`, `course_models` and `course_limits`) and registers this module only when `--day` is
given; `checks.frontends.options` resolves and checks them.

Without `--day` the plugin does nothing and pytest runs the project's own tests. With `--day`, collection is
replaced: one item per exercise (`day1::induction_scores`), nothing from `tests/`. Outcomes map to pytest's:
passed -> passed; failed -> failed (the message says why); not started -> skipped (not a failure, exit code 0);
stale reference and course errors -> error (the course's fault, never the learner's: the message gives the command
that rebuilds the references). The logic lives in `checks.frontends.session` (and below it `checks.isolation`); hooks
stay thin.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from checks.pipeline.outcome import Status

_SESSION = pytest.StashKey["Any"]()


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("day") is None:  # registered by hand (`-p`) rather than by the entry module
        return
    refuse_distributed_runs(config)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from checks.course import Course, CourseError
    from checks.frontends.options import GradingOptions
    from checks.frontends.session import GradingSession, parse_days

    root = config.getini("course_root")
    base = config.inipath.parent if config.inipath else config.rootpath
    course = Course((base / root).resolve(), config.getini("course_models")) if root else Course.default()
    try:
        with _collector_paused():  # resolving the device imports torch: with the collector paused too
            options = GradingOptions.resolve(device=config.getoption("course_device"), device_flag="--course-device",
                                             limits=config.getoption("course_limits") or config.getini("course_limits"),
                                             hints=config.getoption("course_hints"))
            grading = GradingSession(course, parse_days(config.getoption("day"), course), device=options.device,
                                     limits=options.limits, hint_tiers=options.hints,
                                     solutions=config.getoption("solutions"), learner=config.getoption("learner"),
                                     prestarted=True)
    except (CourseError, ValueError) as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[_SESSION] = grading
    _freeze_garbage_collector(config)


def refuse_distributed_runs(config: pytest.Config) -> None:
    """pytest-xdist (`-n N`) runs the items in worker processes: each would grade the whole day, and the process that
    writes the table and `--grade-json` would have graded nothing. Grading already runs exercises side by side, so
    `--day` with xdist is a usage error rather than an empty report."""
    numprocesses = getattr(config.option, "numprocesses", None)
    distributed = getattr(config.option, "dist", "no") not in (None, "no")
    if numprocesses or distributed or hasattr(config, "workerinput"):
        raise pytest.UsageError("--day does not run under pytest-xdist (-n/--dist): grading already runs two "
                                "exercises side by side on two cores; run `pytest --day N` without -n")


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection while the grading session starts: it imports torch and forks the worker, making only
    long-lived objects, which each collection would scan again (about a second in all)."""
    import gc

    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _freeze_garbage_collector(config: pytest.Config) -> None:
    """Leave what is imported by now (torch's objects, hundreds of thousands) out of garbage collection for the rest
    of the session: pytest collects five times as it ends, and the interpreter again as it exits, each pass over all
    of them (1-2 s in all, measured with torch and transformer_lens imported). This process runs no learner code; the
    objects made from here on are collected as usual, and all are unfrozen when pytest has finished (a cleanup added
    before pytest's own, so it runs after them), so nothing outlives a session run in-process."""
    import atexit
    import gc

    gc.freeze()
    config.add_cleanup(gc.unfreeze)
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)  # and as the interpreter exits


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
    if not session.config.option.collectonly:  # grade what remains after deselection, ahead of pytest's loop
        grading.plan([(item.parent.day, item.name) for item in items if isinstance(item, ExerciseItem)])
    session.items = items
    session.testscollected = len(items)
    hook.pytest_collection_finish(session=session)
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """An exercise's reported duration is its grading time, as the table shows it (grading may have run ahead of
    pytest's loop, while the item itself only waited); the setup that fetched the outcome and the teardown take none
    of it, so JUnit's time, their sum, is the table's."""
    report = yield
    outcome = getattr(item, "outcome", None)
    if isinstance(item, ExerciseItem) and outcome is not None:
        if call.when == "teardown" or (call.when == "setup" and report.passed):
            report.duration = 0.0
        elif call.when in ("setup", "call"):
            report.duration = outcome.duration_s
        if call.when == "call" and report.failed and item.reason_said_elsewhere:
            # Counted as failed (pytest's summary, the table), but its block in FAILURES would only repeat that the
            # day's file cannot be graded: pytest leaves out the blocks of reports marked as already shown.
            report._pdbshown = True
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    grading = config.stash.get(_SESSION, None)
    if grading is None or not grading.outcomes:
        return
    from checks.frontends.session import graded_file_report

    terminalreporter.section("course grades")
    for day in grading.days:  # which file was graded, and why (the learner's workspace copy, or the pristine stub)
        for line in graded_file_report(day, solutions=grading.solutions, learner=grading.learner):
            terminalreporter.write_line(line)
    for line in grading.table().splitlines():
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    grading = session.config.stash.get(_SESSION, None)
    if grading is None:
        return
    grading.close()  # every worker is gone before the report is written
    path = session.config.getoption("grade_json")
    if path is not None:
        grading.write_json(Path(path))


def pytest_unconfigure(config: pytest.Config) -> None:
    grading = config.stash.get(_SESSION, None)
    if grading is not None:
        grading.close()


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

    reason_said_elsewhere = False  # failed because the day's file cannot be graded, as another exercise's block says

    def setup(self) -> None:
        grading = self.config.stash[_SESSION]
        self.outcome = grading.grade_exercise(self.parent.day, self.name)
        if self.outcome.status.is_course_problem:
            raise CourseProblem(f"[{self.outcome.status}] {self.outcome.message}")

    def runtest(self) -> None:
        if self.outcome.status is Status.NOT_STARTED:
            pytest.skip(f"not started: {self.outcome.message}")
        if self.outcome.status is Status.FAILED:
            first = self.config.stash[_SESSION].reason_given_at(self.parent.day)
            self.reason_said_elsewhere = first not in (None, self.name)
            raise ExerciseFailed(self._shown_message(file_failed=first is not None))

    def _shown_message(self, file_failed: bool) -> str:
        """The diagnosis; the course's hints 1..N only with --course-hints N (see `checks.judging.hints`). When the day's file
        cannot be graded (`file_failed`), no exercise ran and no hint helps: the first exercise says why, and that
        every exercise of the day fails for it."""
        from checks.judging.hints import tiered_message

        if file_failed:
            if self.reason_said_elsewhere:
                return self.outcome.message
            return (f"{self.outcome.message}\nEvery exercise of day {self.parent.day.number} fails until its file can "
                    "be graded: each counts as failed (see the table), and this reason is not repeated for each.")
        number, hints = self.parent.day.number, self.parent.day.check(self.name).hints
        return tiered_message(self.outcome, hint=self.config.getoption("course_hints"), hints=hints,
                              ask_for_hint=f"Stuck? `pytest --day {number} --course-hints` (or `check({self.name}, "
                                           f"hint=1)` in the notebook) adds the course's first hint; "
                                           f"`--course-hints {len(hints)}` shows all {len(hints)}.")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, (ExerciseFailed, CourseProblem)):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        source = self.config.stash[_SESSION].source(self.parent.day)
        return source or self.path, None, f"day {self.parent.day.number}: {self.name}"
