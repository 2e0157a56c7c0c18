"""Grading exercises side by side (`Limits.parallel`, `checks.isolation.lookahead`): the outcomes are those of grading one
at a time, in order; an incident beside another exercise (a course file restored, the worker's parent lost) gets
both exercises graded again alone, and grading stays one at a time after it."""

from __future__ import annotations

import contextlib
import os
import signal
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

import checks.isolation.supervisor as supervisor_module
from checks.isolation.limits import Limits
from checks.isolation.reaper import children as _children
from checks.isolation.supervisor import Supervisor
from checks.frontends.session import GradingSession

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@contextlib.contextmanager
def _session(course, learner: Path | None, parallel: int):
    day = course.days[1]
    session = GradingSession(course, [day], device="cpu", solutions=learner is None, learner=learner,
                             limits=Limits(parallel=parallel))
    try:
        session.plan([(day, check.name) for check in day.checks])
        yield session, day
    finally:
        session.close()


def _grade_all(session: GradingSession, day) -> list[tuple[str, str, str]]:
    return [(o.exercise, str(o.status), o.message) for o in (session.grade_exercise(day, c.name) for c in day.checks)]


@pytest.fixture
def overlaps(monkeypatch) -> list[bool]:
    """Whether each exercise ran beside another, in the order they ended."""
    seen: list[bool] = []
    slot = supervisor_module._Gate.slot

    @contextlib.contextmanager
    def watched(self, alone):
        with slot(self, alone) as admitted:
            yield admitted
            seen.append(admitted.beside_another)

    monkeypatch.setattr(supervisor_module._Gate, "slot", watched)
    return seen


def _learner(tmp: Path, course, extra: str) -> Path:
    path = tmp / "learner_day1.py"
    path.write_text(course.days[1].solution_path.read_text() + "\n\n" + textwrap.dedent(extra) + "\n")
    return path


def test_side_by_side_gives_the_outcomes_of_one_at_a_time(built_course, tmp_path, overlaps):
    learner = _learner(tmp_path, built_course, """
        def count_repeats(tokens):
            return -1

        def describe_shape(tokens):
            raise ValueError("not written yet")""")
    with _session(built_course, learner, parallel=1) as (session, day):
        alone = _grade_all(session, day)
    assert not any(overlaps)
    overlaps.clear()
    with _session(built_course, learner, parallel=2) as (session, day):
        side_by_side = _grade_all(session, day)
    assert side_by_side == alone
    assert [status for _, status, _ in alone].count("failed") == 2
    assert overlaps[0] is False  # the first exercise of a file runs alone (it says why, if the file cannot import)
    assert sum(overlaps) >= 2, overlaps  # and the others did run side by side


def test_a_file_that_cannot_be_imported_is_explained_once_side_by_side(built_course, tmp_path):
    learner = _learner(tmp_path, built_course, "@undefined_decorator\ndef half_written():\n    pass")
    with _session(built_course, learner, parallel=1) as (session, day):
        alone = _grade_all(session, day)
    for _ in range(3):  # the exercise that says why is the first, every time
        with _session(built_course, learner, parallel=2) as (session, day):
            assert _grade_all(session, day) == alone
    assert "NameError: name 'undefined_decorator' is not defined" in alone[0][2]
    assert all(message.startswith("not graded") and alone[0][0] in message for _, _, message in alone[1:])


def test_a_file_restored_beside_another_exercise_is_judged_alone(built_course, monkeypatch):
    """A course file found changed (and restored) at the end of an exercise that ran beside another cannot be blamed
    on either: both are graded again alone. Simulated: the check after an exercise reports a restore once."""
    real, calls, sessions = supervisor_module.restore_changed, [], []

    def restore_changed(*args):
        calls.append(real(*args))
        gate = sessions[-1].supervisor._gate
        incident = len(calls) == 2 if sessions[-1].limits.parallel == 1 else len(gate._running) == 2
        if incident and "reported" not in calls:
            calls.append("reported")
            return ["models.py"]
        return calls[-1]

    monkeypatch.setattr(supervisor_module, "restore_changed", restore_changed)
    with _session(built_course, None, parallel=1) as (session, day):
        sessions.append(session)
        alone = _grade_all(session, day)
    assert "changed the course's files (models.py)" in alone[1][2]  # one at a time, the exercise is to blame
    calls.clear()
    with _session(built_course, None, parallel=2) as (session, day):
        sessions.append(session)
        outcomes = _grade_all(session, day)
        assert session.supervisor._parallel == 1  # one at a time from the incident on
    assert all(status == "passed" for _, status, _ in outcomes), outcomes
    checked = [call for call in calls if call != "reported"]
    assert len(checked) == len(day.checks) + 2  # the two exercises side by side at the incident ran again


def test_a_worker_parent_lost_under_two_exercises_is_replaced_and_both_are_judged_alone(built_course, tmp_path):
    learner = _learner(tmp_path, built_course, """
        import time
        _count_repeats = count_repeats
        _describe_shape = describe_shape

        def count_repeats(tokens):
            time.sleep(0.5)
            return _count_repeats(tokens)

        def describe_shape(tokens):
            time.sleep(0.5)
            return _describe_shape(tokens)""")
    with _session(built_course, learner, parallel=2) as (session, day):
        names = [check.name for check in day.checks]
        assert names.index("describe_shape") == names.index("count_repeats") + 1  # graded side by side
        zygote = session.supervisor._zygote.pid

        def kill_the_zygote_under_two_children() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(_running_exercises(zygote)) < 2:
                time.sleep(0.02)
            os.kill(zygote, signal.SIGKILL)  # e.g. the kernel's out-of-memory killer

        killer = threading.Thread(target=kill_the_zygote_under_two_children)
        killer.start()
        outcomes = _grade_all(session, day)
        killer.join()
        assert all(status == "passed" for _, status, _ in outcomes), outcomes  # first: it says what happened
        assert session.supervisor._zygote is not None and session.supervisor._zygote.pid != zygote, outcomes


def test_a_worker_parent_started_by_a_thread_that_ends_keeps_serving(built_course, tmp_path):
    """Exercises are graded from the lookahead's threads, which end when the plan runs out: a worker parent one of
    them started (to replace a lost one) must outlive that thread, for the exercises other threads grade on it. The
    order forced here: a thread grades an exercise on a fresh worker parent and ends while the next exercise runs."""
    learner = _learner(tmp_path, built_course, """
        import time
        _count_repeats = count_repeats

        def count_repeats(tokens):
            time.sleep(1.0)
            return _count_repeats(tokens)""")
    day = built_course.days[1]
    supervisor = Supervisor(built_course, [day], "cpu", limits=Limits(parallel=1))
    try:
        supervisor._stop_zygote()  # lost: the next exercise starts a fresh one
        outcomes, graded, end = {}, threading.Event(), threading.Event()

        def grade(name: str, then: Callable[[], None] = lambda: None) -> threading.Thread:
            def run() -> None:
                outcomes[name] = supervisor.grade_file(day, day.check(name), learner)
                then()
            thread = threading.Thread(target=run)
            thread.start()
            return thread

        first = grade("mean_logit", then=lambda: (graded.set(), end.wait(60)))  # starts the fresh worker parent
        assert graded.wait(120), "the first exercise was not graded"
        zygote = supervisor._zygote
        assert zygote is not None and outcomes["mean_logit"].status == "passed", outcomes
        second = grade("count_repeats")
        deadline = time.monotonic() + 60
        while not _running_exercises(zygote.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        end.set()  # the thread that started the worker parent ends while count_repeats runs on it
        first.join(60)
        second.join(120)
        assert outcomes["count_repeats"].status == "passed", outcomes["count_repeats"].message
        assert supervisor._zygote is zygote and zygote.alive()
    finally:
        supervisor.close()


def test_a_worker_parent_lost_while_the_file_is_imported_leaves_the_file_gradable(built_course, tmp_path):
    """The worker's parent lost (e.g. to the kernel's out-of-memory killer) while an exercise imports the learner's
    file says nothing about the file: the exercises after it are graded, not failed as "cannot be imported"."""
    learner = _learner(tmp_path, built_course, """
        import time

        def _pause():
            print("the import has begun", flush=True)
            time.sleep(2.0)
            return 2.0

        _PAUSED = _pause()  # a name a function uses: the loader runs this at import

        def paused():
            return _PAUSED""")
    day, log = built_course.days[1], tmp_path / "worker.log"
    supervisor = Supervisor(built_course, [day], "cpu", limits=Limits(parallel=1), worker_log=log)
    try:
        zygote, outcomes = supervisor._zygote.pid, {}
        first = threading.Thread(target=lambda: outcomes.__setitem__(
            "mean_logit", supervisor.grade_file(day, day.check("mean_logit"), learner)))
        first.start()
        deadline = time.monotonic() + 120
        while "the import has begun" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(zygote, signal.SIGKILL)  # while mean_logit's child imports the file
        first.join(120)
        assert "parent process died while importing your module" in outcomes["mean_logit"].message, outcomes
        after = supervisor.grade_file(day, day.check("count_repeats"), learner)
        assert after.status == "passed", after.message
    finally:
        supervisor.close()


def _running_exercises(zygote: int) -> list[int]:
    """The zygote's children still running (an exercise's child that ended is a zombie until the zygote reaps it:
    counting it, the zygote was once killed under a single exercise, which is then rightly not graded again)."""
    running = []
    for child in _children(zygote):
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.append(child)
    return running


def test_closing_with_exercises_still_ahead_stops_everything(built_course, tmp_path):
    """E.g. `pytest -x` stopping at the first failure while later exercises are being graded ahead."""
    learner = _learner(tmp_path, built_course, """
        import time

        def slow_sum(tokens):
            time.sleep(600)""")
    with _session(built_course, learner, parallel=2) as (session, day):
        assert session.grade_exercise(day, day.checks[0].name).status == "passed"
        zygote = session.supervisor._zygote.pid
        while not _children(zygote):  # something is running ahead
            time.sleep(0.02)
    assert not any(thread.is_alive() for thread in session._lookahead._threads)
    with pytest.raises(ProcessLookupError):
        os.kill(zygote, 0)


def test_lookahead_grades_two_at_a_time_the_first_of_a_group_first_and_hands_over_errors():
    from checks.isolation.lookahead import Lookahead

    events, lock, running, most = [], threading.Lock(), [], []

    def grade(key):
        with lock:
            running.append(key)
            most.append(len(running))
            events.append(("start", key))
        time.sleep(0.05)
        with lock:
            running.remove(key)
            events.append(("end", key))
        if key == ("b", 2):
            raise ValueError("a course bug")
        return f"outcome {key}"

    plan = [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]
    lookahead = Lookahead(plan, grade, width=2, group=lambda key: key[0])
    assert [lookahead.outcome(key) for key in plan[:5]] == [f"outcome {key}" for key in plan[:5]]
    with pytest.raises(ValueError, match="a course bug"):
        lookahead.outcome(("b", 2))
    lookahead.join()
    for group in "ab":
        first_ends = events.index(("end", (group, 0)))
        assert all(events.index(("start", (group, n))) > first_ends for n in (1, 2))
    assert max(most) == 2  # two at a time, never more
